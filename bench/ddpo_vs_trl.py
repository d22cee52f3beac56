"""DDPO throughput: this project's loop vs TRL 0.23's DDPOTrainer, same settings, one script.

    python bench/ddpo_vs_trl.py [--reward DIR] [--epochs 2] [--trl-path .venv-trl]

Settings (issue 5): the shipped tiny pipeline, 20 DDIM steps, eta 1, guidance 5, sample batch
16 x 2 batches per epoch, train batch 16, LoRA rank 4 on to_q/k/v/out, per-prompt stat tracking,
CPU, one process; the same training prompts and the same reward function for both (the learned
RewardModel given with --reward, else the oracle). Samples per second = samples of an epoch /
wall time of that epoch (sampling + reward + PPO); the first epoch is warm-up, the rest are
averaged. TRL 0.23 (the last release with DDPOTrainer) lives in its own folder:
    pip install --no-deps --target .venv-trl trl==0.23.1
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from align.config import load_config  # noqa: E402
from align.finetune_config import FinetuneConfig  # noqa: E402
from align.models import resolve  # noqa: E402
from align.prompts import load_prompts  # noqa: E402
from align.rewards import make_reward_fn  # noqa: E402

STEPS, SAMPLE_BATCH, BATCHES, TRAIN_BATCH, GUIDANCE = 20, 16, 2, 16, 5.0


def ours(reward_fn, epochs: int, tmp: Path) -> float:
    from align.ddpo import train

    prompts = tmp / "eval.txt"
    prompts.write_text("a blue square\n")  # the loop's own held-out check, kept out of the timing
    config = load_config(FinetuneConfig, ROOT / "configs/shapes/ddpo.yaml", [
        f"epochs={epochs}", f"sampling.steps={STEPS}", f"sampling.batch_size={SAMPLE_BATCH}",
        f"sampling.batches_per_epoch={BATCHES}", f"train.batch_size={TRAIN_BATCH}", f"sampling.guidance={GUIDANCE}",
        "sampling.eta=1.0", "save_every=0", "eval.every=0", "eval.fidelity=false", f"eval.prompts={prompts}",
        "reward.kind=oracle",
    ])
    result = train(config, tmp / "ours", reward_fn, None)
    speeds = [h["perf/samples_per_second"] for h in result["history"] if "perf/samples_per_second" in h]
    return sum(speeds[1:]) / len(speeds[1:])


def trl(reward_fn, epochs: int, tmp: Path, trl_path: Path) -> float:
    sys.path.insert(0, str(trl_path))
    from trl import DDPOConfig, DDPOTrainer, DefaultDDPOStableDiffusionPipeline

    prompts = [p.text for p in load_prompts("train")]
    rng = random.Random(0)
    config = DDPOConfig(
        num_epochs=epochs, sample_num_steps=STEPS, sample_eta=1.0, sample_guidance_scale=GUIDANCE,
        sample_batch_size=SAMPLE_BATCH, sample_num_batches_per_epoch=BATCHES, train_batch_size=TRAIN_BATCH,
        train_gradient_accumulation_steps=1, train_learning_rate=3e-4, train_timestep_fraction=1.0,
        per_prompt_stat_tracking=True, per_prompt_stat_tracking_buffer_size=32, per_prompt_stat_tracking_min_count=16,
        mixed_precision="no", save_freq=10**6, log_with=None, project_kwargs={"project_dir": str(tmp / "trl")},
    )
    pipeline = DefaultDDPOStableDiffusionPipeline(resolve("shapes-tiny-sd"), use_lora=True)
    trainer = DDPOTrainer(
        config,
        lambda images, prompts, metadata: (reward_fn(images.float(), list(prompts), metadata), {}),
        lambda: (rng.choice(prompts), {}),
        pipeline,
    )
    per_epoch = SAMPLE_BATCH * BATCHES
    speeds, global_step = [], 0
    for epoch in range(epochs):
        began = time.perf_counter()
        global_step = trainer.step(epoch, global_step)
        speeds.append(per_epoch / (time.perf_counter() - began))
    return sum(speeds[1:]) / len(speeds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reward", help="RewardModel directory (default: the shapes oracle)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trainer; the first is warm-up")
    parser.add_argument("--trl-path", default=str(ROOT / ".venv-trl"))
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = load_config(FinetuneConfig, None, ["reward.kind=learned", f"reward.path={args.reward}"] if args.reward else ["reward.kind=oracle"])
    reward_fn = make_reward_fn(settings.reward, torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        mine = ours(reward_fn, args.epochs, Path(tmp))
        theirs = trl(reward_fn, args.epochs, Path(tmp), Path(args.trl_path))
    print(f"reward: {args.reward or 'shapes oracle'}; threads: {torch.get_num_threads()}; epochs averaged: {args.epochs - 1}")
    print(f"t2i-align DDPO      {mine:8.2f} samples/s")
    print(f"TRL 0.23 DDPOTrainer {theirs:8.2f} samples/s")
    print(f"ratio               {mine / theirs:8.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
