"""DDPO throughput: this project's loop vs TRL 0.23's DDPOTrainer (the baseline), same settings, one script.

    python benchmarks/ddpo_vs_trl.py [--reward DIR] [--epochs 3]

Settings (issue 5): the shipped tiny pipeline, 20 DDIM steps, eta 1, guidance 5, sample batch
16 x 2 batches per epoch, train batch 16, LoRA rank 4 on to_q/k/v/out, per-prompt stat tracking,
CPU, one process; the same training prompts and the same reward function for both (the learned
RewardModel given with --reward, else the oracle). Samples per second = samples of an epoch /
wall time of that epoch (sampling + reward + PPO); the first epoch is warm-up, the rest are
averaged. Both are `t2i-align finetune` backends: t2i-align (align/finetune/ddpo.py) and trl
(align/finetune/ddpo_trl.py, TRL 0.23's DDPOTrainer, installed with the `trl` and `dev` extras).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from align.config import load_config
from align.finetune.config import FinetuneConfig
from align.finetune.rewards import make_reward_fn

ROOT = Path(__file__).resolve().parent.parent

STEPS, SAMPLE_BATCH, BATCHES, TRAIN_BATCH, GUIDANCE = 20, 16, 2, 16, 5.0


def samples_per_second(backend: str, reward_fn, epochs: int, tmp: Path) -> float:
    """One backend's DDPO run; per-epoch samples/s (sampling + reward + PPO, no evaluation)."""
    from align.finetune.ddpo import train as native
    from align.finetune.ddpo_trl import train as through_trl

    prompts = tmp / "eval.txt"
    prompts.write_text("a blue square\n")  # the loop's own held-out check, kept out of the timing
    config = load_config(FinetuneConfig, ROOT / "configs/shapes/ddpo.yaml", [
        f"backend={backend}", f"epochs={epochs}", f"sampling.steps={STEPS}", f"sampling.batch_size={SAMPLE_BATCH}",
        f"sampling.batches_per_epoch={BATCHES}", f"train.batch_size={TRAIN_BATCH}", f"sampling.guidance={GUIDANCE}",
        "sampling.eta=1.0", "train.timestep_fraction=1.0", "save_every=0", "eval.every=0", "eval.fidelity=false",
        f"eval.prompts={prompts}", "reward.kind=oracle", "log_with=tensorboard",
    ])
    config.check()
    train = through_trl if backend == "trl" else native
    result = train(config, tmp / backend, reward_fn, None)
    speeds = [h["perf/samples_per_second"] for h in result["history"] if "perf/samples_per_second" in h]
    return sum(speeds[1:]) / len(speeds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reward", help="RewardModel directory (default: the shapes oracle)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trainer; the first is warm-up")
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = load_config(FinetuneConfig, None, ["reward.kind=learned", f"reward.path={args.reward}"] if args.reward else ["reward.kind=oracle"])
    reward_fn = make_reward_fn(settings.reward, torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        mine = samples_per_second("t2i-align", reward_fn, args.epochs, Path(tmp))
        theirs = samples_per_second("trl", reward_fn, args.epochs, Path(tmp))
    print(f"reward: {args.reward or 'shapes oracle'}; threads: {torch.get_num_threads()}; epochs averaged: {args.epochs - 1}")
    print(f"t2i-align DDPO      {mine:8.2f} samples/s")
    print(f"TRL 0.23 DDPOTrainer {theirs:8.2f} samples/s (baseline)")
    print(f"ratio               {mine / theirs:8.2f}x (target >= 2.0x)")


if __name__ == "__main__":
    main()
