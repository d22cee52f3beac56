"""Stable Diffusion v1.5 at its own size on a GPU: DDPO (this project's and TRL 0.23's), reward
backpropagation and generation, on a pipeline with SD v1.5's architecture and random weights.

    python benchmarks/sd15_speed.py [--out runs/bench-sd15] [--epochs 2] [--cpu-check]

No download: align/random_pipeline.py builds the UNet, VAE and CLIP ViT-L/14 text encoder from
SD v1.5's own configs (align/configs/sd15/architecture/) with random weights, and the reward is a
RewardModel on open_clip's ViT-L-14 architecture, also random (speed depends on the architecture,
not the weights). Settings are configs/sd15/ddpo.yaml's and reward_backprop.yaml's: 512 px, 50
DDIM steps, LoRA, bf16, guidance 5 for DDPO (7.5 and gradient checkpointing for reward
backpropagation). Samples/s per GPU is an epoch's samples over its wall time (sampling, reward,
training), averaged over the epochs after the first; peak memory is torch's peak allocation in
that phase. Generation: `load_pipeline` in bf16, images/s at batch 1 and the best batch.
Baselines, measured in the same run: TRL 0.23's DDPOTrainer for this project's DDPO, and batch 1
for generation; `ratios` gives DDPO's samples/s over TRL's and the best batch's images/s over
batch 1's (reward backpropagation is reported on its own).

Without a GPU it says so in one sentence and exits 0. `--cpu-check` runs every phase on the CPU
at a tiny size (8 x 8 latents, 2 steps, batch 1) to check that the code paths work; its speeds
mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch

from align.config import load_config
from align.finetune.config import FinetuneConfig
from align.finetune.rewards import make_reward_fn
from align.models import load_pipeline
from align.random_pipeline import build_random_pipeline

ROOT = Path(__file__).resolve().parent.parent

TINY = ["sampling.steps=2", "sampling.batch_size=1", "sampling.batches_per_epoch=1", "train.batch_size=1",
        "train.accumulation=1", "eval.steps=2", "mixed_precision=no", "backprop.max_steps=2"]
GENERATION_BATCHES = (1, 2, 4, 8, 16)


def random_reward(out: Path) -> Path:
    """A RewardModel directory on open_clip's ViT-L-14 with random weights (and an untrained head)."""
    from reward_models.backbones import BackboneConfig, ClipBackbone
    from reward_models.config import HeadConfig
    from reward_models.reward_model import RewardModel

    if not (out / "config.json").is_file():
        torch.manual_seed(0)
        RewardModel(ClipBackbone(BackboneConfig(kind="open_clip", name="ViT-L-14")), HeadConfig()).save_pretrained(out)
    return out


def finetune_phase(name: str, config_file: str, overrides: list[str], out: Path) -> dict:
    """One `finetune` backend in this process: samples/s after the first epoch, peak GPU memory."""
    from align.finetune import ddpo, ddpo_trl, reward_backprop

    config = load_config(FinetuneConfig, ROOT / "configs" / config_file, overrides)
    config.check()
    train = {"ddpo": ddpo.train, "trl": ddpo_trl.train, "reward_backprop": reward_backprop.train}[name]
    reward_fn = make_reward_fn(config.reward, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    reset_memory()
    result = train(config, out / name, reward_fn, None)
    speeds = [h["perf/samples_per_second"] for h in result["history"] if "perf/samples_per_second" in h]
    timed = speeds[1:] or speeds
    return {"samples_per_second": sum(timed) / len(timed), "peak_gib": peak_memory_gib(), "epochs_timed": len(timed)}


def generation_phase(pipeline_dir: Path, steps: int, batches: tuple[int, ...]) -> dict:
    pipeline = load_pipeline(str(pipeline_dir), "bfloat16" if torch.cuda.is_available() else "float32")
    speeds = {}
    for batch in batches:
        prompts = ["two red circles on a black background"] * batch
        pipeline(prompts, num_inference_steps=steps, guidance_scale=5.0)  # warm-up
        sync()
        began = time.perf_counter()
        pipeline(prompts, num_inference_steps=steps, guidance_scale=5.0)
        sync()
        speeds[batch] = batch / (time.perf_counter() - began)
    best = max(speeds, key=speeds.get)
    return {"images_per_second": speeds, "batch_1": speeds[batches[0]], "best_batch": best, "best": speeds[best]}


def reset_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-sd15")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fine-tuning phase; the first is warm-up")
    parser.add_argument("--cpu-check", action="store_true", help="every phase on the CPU at a tiny size (speeds mean nothing)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu_check:
        print("No GPU here (torch.cuda.is_available() is False): the SD v1.5-size benchmark measures GPUs only; nothing was measured.")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipeline_dir = out / "sd15-random-weights"
    if not (pipeline_dir / "model_index.json").is_file():
        build_random_pipeline(pipeline_dir, latent_size=8 if args.cpu_check else None, dtype="bfloat16")
    prompts = out / "eval_prompts.txt"
    prompts.write_text("a blue square\n")  # the runs' own evaluation, outside the timed epochs
    common = [f"model={pipeline_dir}", f"reward.path={random_reward(out / 'reward-vit-l-14-random')}", f"epochs={args.epochs}",
              "save_every=0", "eval.every=0", f"eval.prompts={prompts}", "eval.seen_prompts=null",
              *(TINY if args.cpu_check else [])]
    results = {
        "date": date.today().isoformat(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (--cpu-check: speeds mean nothing)",
        "torch": torch.__version__,
        "ddpo": finetune_phase("ddpo", "sd15/ddpo.yaml", common, out),
        "trl": finetune_phase("trl", "sd15/ddpo.yaml", [*common, "backend=trl"], out),
        "reward_backprop": finetune_phase("reward_backprop", "sd15/reward_backprop.yaml", common, out),
        "generation": generation_phase(pipeline_dir, 2 if args.cpu_check else 50, (1, 2) if args.cpu_check else GENERATION_BATCHES),
    }
    results["ratios"] = {
        "ddpo_vs_trl": results["ddpo"]["samples_per_second"] / results["trl"]["samples_per_second"],
        "generation_best_batch_vs_batch_1": results["generation"]["best"] / results["generation"]["batch_1"],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
