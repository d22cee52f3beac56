"""Does DDPO learn in the demo's budget when each image is compared with others of its prompt?

    python experiments/ddpo_grouping.py [--out runs/bench-grouping] [--reward oracle|DIR] [--epochs 40]

Hypothesis: with a prompt per image (250 training prompts, 32 samples an epoch), DDPO's
per-prompt normalisation never engages, advantages mostly measure prompt difficulty, and the
model does not learn; grouped sampling (8 images of each of 4 prompts an epoch, advantages
within the group) makes it learn on the prompts it trains on. Each arm is a `t2i-align finetune`
run with the demo's DDPO settings (40 epochs x 32 samples, half the timesteps) and one change;
the final LoRAs and the shipped model then draw the same seen prompts (a fixed sample of 89
training prompts x 2, fresh seeds) and unseen prompts (the 89 held-out x 2), and `t2i-align
compare` pairs them with 95% intervals. The reward is the oracle by default: the upper bound, so
a failure here is the optimiser's, not the reward's. A rerun reuses finished runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from align.evaluation.paired_arms import run_arms

DEMO_DDPO = ["train.timestep_fraction=0.5", "eval.every=0", "eval.fidelity=false"]
ARMS = {
    "prompt-per-image": [],
    "groups-of-8": ["sampling.group_size=8"],
    "groups-of-8-lr-1e-3": ["sampling.group_size=8", "train.lr=1e-3"],
    "prompt-per-image-lr-3e-3": ["train.lr=3e-3"],
    "groups-of-8-lr-3e-3": ["sampling.group_size=8", "train.lr=3e-3"],
    "groups-of-8-lr-1e-2": ["sampling.group_size=8", "train.lr=1e-2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-grouping")
    parser.add_argument("--reward", default="oracle", help="oracle, or a reward model directory")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    reward = ["reward.kind=oracle"] if args.reward == "oracle" else [f"reward.path={args.reward}"]
    run_arms(Path(args.out), "configs/shapes/ddpo.yaml", ARMS, [f"epochs={args.epochs}", *reward, *DEMO_DDPO])


if __name__ == "__main__":
    main()
