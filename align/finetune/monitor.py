"""What a fine-tuning run watches: images of fixed prompts and seeds on both splits, judged by
the oracle (alignment, with a 95% interval over prompts), the reward, and fidelity to clean
renders; an image grid; and the warning that matters most: the reward rising while oracle
alignment on unseen prompts falls, i.e. reward hacking.

The splits are those of the evaluation protocol: **unseen** (`eval.prompts`, the held-out set)
and **seen** (a fixed sample of the fine-tuning prompts, drawn with fresh seeds). Images are
drawn with the deployment sampler (`eval.steps`, `eval.guidance`, `eval.eta`: DDIM as
`t2i-align generate` draws, generator seeded `seed + i`), not the training sampler, so epoch 0
is the baseline the targets compare against. Every record carries the reward queries so far
(images the reward scored for training; evaluations are not counted) and the optimizer steps.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from align.evaluation import paired
from align.finetune.config import FinetuneConfig
from align.finetune.rewards import to_pil
from align.generation.prompts import load_prompts


def _sample(prompts: str, count: int, seed: int) -> list[str]:
    """The prompt set's texts, or a fixed sample of `count` of them (0: all)."""
    texts = [p.text for p in load_prompts(prompts)]
    return sorted(random.Random(seed).sample(texts, count)) if 0 < count < len(texts) else texts


class Monitor:
    def __init__(self, config: FinetuneConfig, out: Path, pipeline, reward_fn, device):
        self.config, self.out, self.pipeline, self.reward_fn = config, out, pipeline, reward_fn
        e = config.eval
        self.splits = {"unseen": (self._repeat(_sample(e.prompts, e.prompt_count, e.seed)), e.seed)}
        if e.seen_prompts:
            self.splits["seen"] = (self._repeat(_sample(e.seen_prompts, e.seen_prompt_count, e.seen_seed)), e.seen_seed)
        self.fidelity = {}
        if e.fidelity:
            from align.evaluation.fidelity import FidelityMeter

            self.fidelity = {split: FidelityMeter(e.clip_model, device, prompts, seed) for split, (prompts, seed) in self.splits.items()}

    def _repeat(self, prompts: list[str]) -> list[str]:
        return [p for p in prompts for _ in range(self.config.eval.images_per_prompt)]

    @torch.no_grad()
    def images(self, prompts: list[str], seed: int, batch_size: int = 32) -> torch.Tensor:
        e, pipe = self.config.eval, self.pipeline
        was_training = pipe.unet.training
        pipe.unet.eval()
        batches = []
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            generators = [torch.Generator(pipe.device).manual_seed(seed + start + i) for i in range(len(batch))]
            batches.append(pipe(batch, num_inference_steps=e.steps, guidance_scale=e.guidance, eta=e.eta,
                                generator=generators, output_type="pt").images.float().cpu())
        pipe.unet.train(was_training)
        return torch.cat(batches)

    def evaluate(self, epoch: int) -> dict:
        """Both splits' metrics of the current model; also writes OUT/grids/epoch_NNNN.png (unseen prompts)."""
        metrics: dict = {}
        for split, (prompts, seed) in self.splits.items():
            images = self.images(prompts, seed)
            pil = to_pil(images)
            if self.config.eval.oracle:
                from align.shapes.oracle import judge

                aligned = [float(judge(im, p).aligned) for im, p in zip(pil, prompts)]
                estimate = paired.mean(aligned, prompts)
                metrics[f"eval/{split}/oracle_alignment"] = estimate.value
                if estimate.low is not None:
                    metrics[f"eval/{split}/oracle_alignment_low"] = estimate.low
                    metrics[f"eval/{split}/oracle_alignment_high"] = estimate.high
            if self.reward_fn is not None:
                metrics[f"eval/{split}/reward_mean"] = float(self.reward_fn(images, prompts, [{}] * len(pil)).mean())
            if split in self.fidelity:
                metrics[f"eval/{split}/fidelity_frechet"] = self.fidelity[split](pil)
            if split == "unseen":
                self._grid(images[: self.config.eval.grid_size], epoch)
        return metrics

    def _grid(self, images: torch.Tensor, epoch: int) -> None:
        from torchvision.utils import make_grid

        grid = make_grid(images, nrow=int(np.ceil(np.sqrt(len(images)))), padding=1)
        folder = self.out / "grids"
        folder.mkdir(exist_ok=True)
        to_pil(grid[None])[0].resize((grid.shape[2] * 2, grid.shape[1] * 2), 0).save(folder / f"epoch_{epoch:04d}.png")
        self.last_grid = grid


def log_grid(accelerator, grid: torch.Tensor, step: int) -> None:
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({"eval/grid": grid[None].numpy()}, step=step, dataformats="NCHW")
        else:
            tracker.log_images({"eval/grid": to_pil(grid[None])}, step=step)


def reward_hacking(history: list[dict], tolerance: float) -> str | None:
    """A sentence when the latest evaluation's reward is above the reward at the best oracle
    alignment so far while alignment has fallen more than `tolerance` below that best (unseen prompts)."""
    alignment, reward = "eval/unseen/oracle_alignment", "eval/unseen/reward_mean"
    judged = [h for h in history if alignment in h and reward in h]
    if len(judged) < 2:
        return None
    best = max(judged[:-1], key=lambda h: h[alignment])
    now = judged[-1]
    if now[reward] > best[reward] and now[alignment] < best[alignment] - tolerance:
        return (
            f"reward hacking: at epoch {now['epoch']} the reward rose to {now[reward]:.3f} "
            f"(from {best[reward]:.3f} at epoch {best['epoch']}) while oracle alignment on unseen "
            f"prompts fell to {now[alignment]:.1%} (from {best[alignment]:.1%})"
        )
    return None


def evaluate_and_record(accelerator, monitor, counters, metrics, log, config):
    """Held-out evaluation (main process), then record; warn when the reward is being hacked."""
    if accelerator.is_main_process:
        with accelerator.autocast():
            metrics = {**metrics, **monitor.evaluate(counters.epoch)}
        log_grid(accelerator, monitor.last_grid, counters.epoch)
    record(accelerator, counters, metrics, log)
    warning = reward_hacking(counters.history, config.eval.hacking_tolerance)
    if warning and accelerator.is_main_process:
        log.warning(warning)
        accelerator.log({"eval/reward_hacking": 1.0}, step=counters.epoch)


def end_epoch(accelerator, monitor, counters, metrics, log, config):
    """Record the finished epoch, with a held-out evaluation every eval.every epochs and after the last."""
    every = config.eval.every
    if every and counters.epoch % every == 0 or counters.epoch == config.epochs:
        evaluate_and_record(accelerator, monitor, counters, metrics, log, config)
    else:
        record(accelerator, counters, metrics, log)


def record(accelerator, counters, metrics, log):
    """One epoch's numbers, with the budget spent so far, into the history, the trackers and the run log."""
    from accelerate.utils import gather_object

    metrics = {**metrics, "queries": counters.queries, "optimizer_steps": counters.optimizer_steps}
    metrics = gather_object([metrics])[0]  # the main process's evaluation, so every rank keeps the same history
    counters.history.append(metrics)
    accelerator.log({k: v for k, v in metrics.items() if k != "epoch"}, step=metrics["epoch"])
    log.info("epoch %d: %s", metrics["epoch"], ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch"))
