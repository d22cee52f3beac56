"""A placebo for the paired experiments: does a LoRA with no learnt direction "gain" on seen prompts?

Hypothesis (experiments/guidance_scale.py: the sweeps' seen baseline images are an unlucky draw, 50.6%
where the same prompts at the demo's seeds give 60.7%): any model that redraws part of those
images recovers part of the baseline's bad luck, so it gains on the sweeps' seen split with no
alignment learnt, and not on the demo's splits. The placebo is a fine-tuned LoRA with the entries
of each of its tensors shuffled (fixed seed): the same sizes of weights, no direction. Shuffled,
its up-projections no longer line up with its down-projections, so it changes the images less;
`--scale K` multiplies its up-projections (lora_B) by K, to change them as much as the trained
LoRA does (the script prints both mean absolute pixel changes on the seen split). Refuted if a
placebo of the same pixel change gains no more on the sweeps' seen split than on the demo's.

    .venv/bin/python experiments/placebo_lora.py --lora "runs/bench-backprop/consistency steps 10x16x8, eta 0.002/final" --demo runs/demo [--scale 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from align.evaluation.paired_arms import DEPLOYED_GUIDANCE, Splits, compare_runs, print_versus_baseline

WEIGHTS = "pytorch_lora_weights.safetensors"


def shuffled(lora: Path, out: Path, scale: float, seed: int = 0) -> Path:
    """`lora` with every tensor's entries permuted and its up-projections times `scale`, written to `out`."""
    if not (out / WEIGHTS).is_file():
        generator = torch.Generator().manual_seed(seed)
        tensors = {}
        for name, tensor in sorted(load_file(str(lora / WEIGHTS)).items()):
            flat = tensor.flatten()[torch.randperm(tensor.numel(), generator=generator)]
            tensors[name] = (flat * (scale if "lora_B" in name else 1.0)).reshape(tensor.shape).contiguous()
        out.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(out / WEIGHTS))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lora", type=Path, required=True, help="a fine-tuned LoRA directory to shuffle")
    parser.add_argument("--demo", type=Path, required=True, help="a finished demo directory: its splits")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-guidance"), help="shares guidance_scale.py's images")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the shuffled up-projections")
    args = parser.parse_args()
    name = "placebo" if args.scale == 1 else f"placebo x{args.scale:g}"
    placebo = shuffled(args.lora, args.out / f"{name.replace(' ', '-')}-lora", args.scale)
    for demo in (None, args.demo):
        splits = Splits(args.out, demo)
        result = compare_runs(splits.draw(DEPLOYED_GUIDANCE) + splits.draw(DEPLOYED_GUIDANCE, name, placebo),
                              splits.folder / f"compare-{name}.json")
        print("\nthe demo's splits:" if demo else "\nthe sweeps' splits:")
        print_versus_baseline(result, [splits.label(DEPLOYED_GUIDANCE, name)])
        if not demo:
            shipped = splits.seen_pixels(DEPLOYED_GUIDANCE)
            for model in (name, "consistency"):
                if (splits.folder / f"{splits.label(DEPLOYED_GUIDANCE, model)}-seen").is_dir():
                    change = np.abs(splits.seen_pixels(DEPLOYED_GUIDANCE, model) - shipped).mean()
                    print(f"  {model}: seen images' mean absolute pixel change from the shipped pipeline's {change:.4f}")


if __name__ == "__main__":
    main()
