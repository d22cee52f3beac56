"""Can this DDPO raise a reward that is easy to learn? The share of red in the image, on the tiny pipeline.

    python experiments/ddpo_planted_reward.py [--out runs/bench-planted] [--epochs 20]

Hypothesis: DDPO with the demo's settings cannot move even a dense, easy reward within a few
hundred samples, so its failure on oracle alignment (experiments/ddpo_grouping.py) is the optimiser's
budget and step size, not the alignment reward's sparsity. Reward: mean over pixels of
max(0, R - (G + B) / 2), a number in [0, 1] that any colour shift towards red raises. Each arm is
this project's DDPO (align/finetune/ddpo.py) with one setting changed; reported: the mean reward of
each epoch's training samples, first five epochs against last five, with the difference's
95% interval (a bootstrap over the samples of those epochs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from align.config import load_config
from align.finetune.config import FinetuneConfig

ROOT = Path(__file__).resolve().parent.parent

BASE = ["eval.every=0", "eval.oracle=false", "eval.fidelity=false", "eval.seen_prompts=null", "train.timestep_fraction=0.5",
        "save_every=0"]
# name: (overrides, sign of the reward DDPO is given; the reported reward is always redness itself)
ARMS = {
    "demo settings (lr 3e-4)": ([], 1),
    "lr 3e-3": (["train.lr=3e-3"], 1),
    "lr 3e-3, groups of 8": (["train.lr=3e-3", "sampling.group_size=8"], 1),
    "lr 3e-3, clip 1e-2": (["train.lr=3e-3", "train.clip_range=1e-2"], 1),
    "lr 1e-2, clip 1e-2": (["train.lr=1e-2", "train.clip_range=1e-2"], 1),
    "lr 1e-2, clip 1e-2, negated": (["train.lr=1e-2", "train.clip_range=1e-2"], -1),  # must move the other way
}


def redness(images: torch.Tensor, prompts, metadata) -> torch.Tensor:
    r, g, b = images.float().unbind(1)
    return (r - (g + b) / 2).clamp(min=0).mean(dim=(1, 2))


def main() -> None:
    from align.finetune.ddpo import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-planted")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    eval_prompts = out / "eval.txt"
    eval_prompts.write_text("a blue square\n")
    results = {}
    for arm, (overrides, sign) in ARMS.items():
        run = out / arm.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        if not (run / "history.json").is_file():
            config = load_config(FinetuneConfig, ROOT / "configs/shapes/ddpo.yaml",
                                 [f"epochs={args.epochs}", "reward.kind=clip", f"eval.prompts={eval_prompts}", *BASE, *overrides])
            config.check()
            rewards = []

            def recorded(images, prompts, metadata):
                values = redness(images, prompts, metadata)
                if len(prompts) == config.sampling.batch_size:  # a training batch, not the monitor's one image
                    rewards.append(values.numpy())
                return sign * values

            train(config, run, recorded, None)
            (run / "history.json").write_text(json.dumps([r.tolist() for r in rewards]))
        per_batch = [np.array(r) for r in json.loads((run / "history.json").read_text())]
        batches_per_epoch = len(per_batch) // args.epochs
        epochs = [np.concatenate(per_batch[i : i + batches_per_epoch]) for i in range(0, len(per_batch), batches_per_epoch)]
        first, last = np.concatenate(epochs[:5]), np.concatenate(epochs[-5:])
        rng = np.random.default_rng(0)
        boot = [rng.choice(last, last.size).mean() - rng.choice(first, first.size).mean() for _ in range(2000)]
        results[arm] = (first.mean(), last.mean(), *np.percentile(boot, [2.5, 97.5]))
    print(f"\n{'arm':<28}{'first 5 epochs':>16}{'last 5 epochs':>16}{'change [95% interval]':>30}")
    for arm, (first, last, low, high) in results.items():
        print(f"{arm:<28}{first:>16.4f}{last:>16.4f}{last - first:>+12.4f} [{low:+.4f}, {high:+.4f}]")


if __name__ == "__main__":
    main()
