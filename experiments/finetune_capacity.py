"""Can fine-tuning move the tiny model at all, given the best signal there is, and is LoRA's size the limit?

    python experiments/finetune_capacity.py [--out runs/bench-capacity] [--epochs 8] [--arms ...]

Hypothesis (the fine-tuning issue, item 4): no method moves the shipped model because a rank-8
LoRA on the attention projections (a few percent of the UNet's weights) cannot express what
would align it; a LoRA that also adapts the ResNet convolutions, or the full UNet, trained on the
same data raises seen alignment where the attention LoRA does not. The data is the strongest
signal the loop can have: RWR with the oracle as reward on the starting model's own samples
(4 of each of the 251 training prompts, 1,004 reward queries, inside the demo's 1,280), that is
fine-tuning on the images that are right (weights 0 / 1: filtered supervised fine-tuning,
expert iteration's first round), plus the clean-render term. Every arm trains the same number of
optimizer steps on the same data; the final models and the shipped one then draw the same seen
and unseen prompts, paired by `t2i-align compare` (align/evaluation/paired_arms.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from align.evaluation.paired_arms import run_arms
from align.finetune.config import ATTENTION, EVERY_LAYER_TYPE

ORACLE_RWR = ["reward.kind=oracle", "rwr.images_per_prompt=4", "eval.every=0", "eval.fidelity=false"]
LEARNED_REWARD = "runs/demo/reward-r1"  # the demo's round-1 reward (10%-noise simulated ratings)
ALL_LAYERS = [f"lora.targets=[{','.join(EVERY_LAYER_TYPE)}]", "lora.rank=16", "lora.alpha=16"]
NO_ATTENTION = [f"lora.targets=[{','.join(t for t in EVERY_LAYER_TYPE if t not in ATTENTION)}]", "lora.rank=16", "lora.alpha=16"]
ATTENTION_R8 = [f"lora.targets=[{','.join(ATTENTION)}]", "lora.rank=8", "lora.alpha=8"]  # rwr.yaml's, spelled out
ARMS = {
    "LoRA r8 attention (rwr.yaml)": ATTENTION_R8,
    "LoRA r16 attention + convs + MLPs": [*ALL_LAYERS],
    "full UNet, lr 1e-4": ["lora.enabled=false", "train.lr=1e-4"],
    "full UNet, lr 1e-4, no clean term": ["lora.enabled=false", "train.lr=1e-4", "rwr.pretrain_beta=0"],
    # second round: where is the signal, and does drawing again from the tuned model help?
    "LoRA r8 attention, t 500-999": [*ATTENTION_R8, "rwr.min_timestep=500"],
    "LoRA r16 all layers, t 500-999": [*ALL_LAYERS, "rwr.min_timestep=500"],
    "LoRA r16 all layers, online 2 x 502": [*ALL_LAYERS, "rwr.images_per_prompt=2",
                                            "rwr.resample_every=4", "train.epochs_per_dataset=2"],
    # third round: the same 1,004 queries, four times the optimizer steps
    "LoRA r8 attention, 32 epochs": [*ATTENTION_R8, "epochs=32"],
    "LoRA r16 all layers, 32 epochs": [*ALL_LAYERS, "epochs=32"],
    # fourth round: does the 32-epoch all-layer arm hold with another seed, and with the learned reward instead of the oracle?
    "LoRA r16 all layers, 32 epochs, seed 1": [*ALL_LAYERS, "epochs=32", "seed=1"],
    "LoRA r16 all layers, 32 epochs, learned reward": [*ALL_LAYERS, "epochs=32",
                                                       "reward.kind=learned", f"reward.path={LEARNED_REWARD}"],
    # fifth round: the arms above were first drawn without their attention layers (a LoRA loading bug,
    # README), and did better that way; is a LoRA without attention layers the better one to train?
    "LoRA r16 convs + MLPs, 32 epochs": [*NO_ATTENTION, "epochs=32"],
    "LoRA r16 convs + MLPs, 32 epochs, seed 1": [*NO_ATTENTION, "epochs=32", "seed=1"],
    "LoRA r16 convs + MLPs, 32 epochs, learned reward": [*NO_ATTENTION, "epochs=32",
                                                         "reward.kind=learned", f"reward.path={LEARNED_REWARD}"],
    # sixth round: the high-noise arm drawn whole (+3.9 [+0.0, +7.9] seen at seed 0), at another seed
    "LoRA r16 all layers, t 500-999, seed 1": [*ALL_LAYERS, "rwr.min_timestep=500", "seed=1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-capacity")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--arms", nargs="*", help="only these arms (default: all)")
    parser.add_argument("--guidance", type=float, help="compare the models drawn at this guidance instead of generate.yaml's")
    args = parser.parse_args()
    sampler = (f"sampling.guidance={args.guidance}",) if args.guidance is not None else ()
    run_arms(Path(args.out), "configs/shapes/rwr.yaml", ARMS, [f"epochs={args.epochs}", *ORACLE_RWR], args.arms, sampler=sampler)


if __name__ == "__main__":
    main()
