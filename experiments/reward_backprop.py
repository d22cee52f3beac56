"""Does reward backpropagation align the tiny model in the demo's budget, where DDPO and RWR did not?

    python experiments/reward_backprop.py [--out runs/bench-backprop] [--reward runs/demo/reward-r1] [--epochs 40] [--arms ...]

Hypothesis: the learned reward's gradient carries far more information per image than DDPO's
one scalar per trajectory, so in the demo's budget (1,280 reward queries: 40 epochs x 32
images) reward backpropagation raises oracle alignment on the prompts it trains on, and some of
it carries to unseen prompts. Arms change one thing each from configs/shapes/reward_backprop.yaml;
the demo's DDPO, if runs/demo holds it, is compared on the same images. Every final model and
the shipped one draw the same seen and unseen prompts (align/evaluation/paired_arms.py), paired by
`t2i-align compare` with 95% intervals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from align.evaluation.paired_arms import run_arms

ROOT = Path(__file__).resolve().parent.parent

FAST = ["eval.every=0", "eval.fidelity=false"]
ARMS = {
    "backprop K in 1-20, lr 1e-3": [],
    "backprop K in 1-20, lr 1e-2": ["train.lr=1e-2"],
    "backprop K 1 (DRaFT-1), lr 1e-2": ["backprop.max_steps=1", "train.lr=1e-2"],
    "backprop K in 1-20, lr 3e-3": ["train.lr=3e-3"],
    "backprop K 1 (DRaFT-1), lr 1e-3": ["backprop.max_steps=1"],
    "backprop lr 1e-3, LoRA + convs": ["lora.targets=[to_q,to_k,to_v,to_out.0,conv1,conv2]"],
    # experiments/gradient_noise_scale.py: noise scale about 180 samples, so a step of 8 is mostly noise
    "backprop lr 1e-3, 128 samples a step": ["sampling.batches_per_epoch=16", "train.accumulation=16", "epochs=10"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-backprop")
    parser.add_argument("--reward", default=str(ROOT / "runs/demo/reward-r1"), help="a reward model directory")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--arms", nargs="*", help="only these arms (default: all)")
    args = parser.parse_args()
    demo_ddpo = ROOT / "runs/demo/ddpo/final"
    run_arms(Path(args.out), "configs/shapes/reward_backprop.yaml", ARMS, [f"epochs={args.epochs}", f"reward.path={args.reward}", *FAST],
             args.arms, others={"demo DDPO": demo_ddpo} if demo_ddpo.is_dir() else None)


if __name__ == "__main__":
    main()
