"""What a fine-tuning run watches: held-out images from fixed prompts and seeds, judged by the
oracle (alignment), the reward, and fidelity to clean renders; an image grid; and the warning
that matters most: the reward rising while oracle alignment falls, i.e. reward hacking.

Evaluation images are drawn exactly as `t2i-align generate` draws them (DDIM with eta 0,
generator seeded `eval.seed + i`), so epoch 0 is the baseline the targets compare against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from align.finetune.config import FinetuneConfig
from align.finetune.rewards import to_pil
from align.generation.prompts import load_prompts


class Monitor:
    def __init__(self, config: FinetuneConfig, out: Path, pipeline, reward_fn, device):
        self.config, self.out, self.pipeline, self.reward_fn = config, out, pipeline, reward_fn
        prompts = [p.text for p in load_prompts(config.eval.prompts)]
        self.prompts = [p for p in prompts for _ in range(config.eval.images_per_prompt)]
        self.fidelity = None
        if config.eval.fidelity:
            from align.evaluation.fidelity import FidelityMeter

            self.fidelity = FidelityMeter(config.eval.clip_model, device, self.prompts, config.eval.seed)

    @torch.no_grad()
    def images(self, batch_size: int = 32) -> torch.Tensor:
        s, pipe = self.config.sampling, self.pipeline
        was_training = pipe.unet.training
        pipe.unet.eval()
        batches = []
        for start in range(0, len(self.prompts), batch_size):
            prompts = self.prompts[start : start + batch_size]
            generators = [torch.Generator(pipe.device).manual_seed(self.config.eval.seed + start + i) for i in range(len(prompts))]
            batches.append(pipe(prompts, num_inference_steps=s.steps, guidance_scale=s.guidance, eta=0.0,
                                generator=generators, output_type="pt").images.float().cpu())
        pipe.unet.train(was_training)
        return torch.cat(batches)

    def evaluate(self, epoch: int) -> dict:
        """Held-out metrics of the current model; also writes OUT/grids/epoch_NNNN.png."""
        images = self.images()
        pil = to_pil(images)
        metrics: dict = {}
        if self.config.eval.oracle:
            from align.shapes.oracle import judge

            metrics["eval/oracle_alignment"] = float(np.mean([judge(im, p).aligned for im, p in zip(pil, self.prompts)]))
        if self.reward_fn is not None:
            metrics["eval/reward_mean"] = float(self.reward_fn(images, self.prompts, [{}] * len(pil)).mean())
        if self.fidelity is not None:
            metrics["eval/fidelity_frechet"] = self.fidelity(pil)
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
    alignment so far while alignment has fallen more than `tolerance` below that best."""
    judged = [h for h in history if "eval/oracle_alignment" in h and "eval/reward_mean" in h]
    if len(judged) < 2:
        return None
    best = max(judged[:-1], key=lambda h: h["eval/oracle_alignment"])
    now = judged[-1]
    if now["eval/reward_mean"] > best["eval/reward_mean"] and now["eval/oracle_alignment"] < best["eval/oracle_alignment"] - tolerance:
        return (
            f"reward hacking: at epoch {now['epoch']} the reward rose to {now['eval/reward_mean']:.3f} "
            f"(from {best['eval/reward_mean']:.3f} at epoch {best['epoch']}) while oracle alignment on held-out "
            f"prompts fell to {now['eval/oracle_alignment']:.1%} (from {best['eval/oracle_alignment']:.1%})"
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
    """One epoch's numbers into the history, the trackers and the run log."""
    from accelerate.utils import gather_object

    metrics = gather_object([metrics])[0]  # the main process's evaluation, so every rank keeps the same history
    counters.history.append(metrics)
    accelerator.log({k: v for k, v in metrics.items() if k != "epoch"}, step=metrics["epoch"])
    log.info("epoch %d: %s", metrics["epoch"], ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch"))
