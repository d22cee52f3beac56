"""Does the shipped model align better when the sampler follows the text harder?

Hypothesis (issue 15: no fine-tuning method moves unseen prompts): the tiny model's errors on
unseen attribute pairs are in part too weak a pull of the text, a direction that is the same for
every prompt; if so, a larger classifier-free guidance scale raises oracle alignment on unseen
prompts as well as seen ones, and a fine-tuned model has a prompt-general direction to find.
Refuted if no scale above the deployment's 5 lifts the unseen interval above zero.

Every scale draws the sweeps' fixed splits (align/evaluation/paired_arms.py: 89 seen prompts x 2, the 89 held-out x 2,
fresh seeds) with the shipped pipeline, 20 DDIM steps, eta 0, and `compare` pairs it with scale 5.

With `--lora NAME=DIR` a fine-tuned LoRA is drawn at each scale too and paired with the shipped
pipeline at the same scale: a gain that is only a shift of the effective guidance vanishes at the
scale it shifts to. Its seen images are also compared in pixels with the shipped pipeline's at each
scale (mean absolute difference, same prompt and seed): which scale's images it moved towards.

With `--demo DIR` (a finished `make demo`) the models draw that demo's own splits instead (every
training prompt x 2 at its seen seed, the held-out prompts x 5 at its held-out seed): a second,
larger sample of images, to check a sweep's finding.

    .venv/bin/python experiments/guidance_scale.py [--out runs/bench-guidance] [--scales 1 3 7.5 10 15]
    .venv/bin/python experiments/guidance_scale.py --scales 3 --lora "consistency=runs/bench-backprop/consistency steps 10x16x8, eta 0.002/final" [--demo runs/demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from align.evaluation.paired_arms import DEPLOYED_GUIDANCE, Splits, compare_runs, print_versus_baseline, seen_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-guidance"))
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 7.5, 10.0, 15.0])
    parser.add_argument("--lora", help="NAME=DIR: a fine-tuned LoRA, drawn at every scale and paired at equal scale")
    parser.add_argument("--demo", type=Path, help="a finished demo directory: draw its seen and unseen splits")
    args = parser.parse_args()
    splits = Splits(args.out, args.demo)
    scales = sorted({DEPLOYED_GUIDANCE, *args.scales})
    order = [DEPLOYED_GUIDANCE] + [s for s in scales if s != DEPLOYED_GUIDANCE]  # compare's first model is the baseline
    result = compare_runs(sum((splits.draw(scale) for scale in order), []), splits.folder / "compare.json")
    print(f"\n{'scale':<8}" + "".join(f"{split + ': ' + what:>24}" for split in ("seen", "unseen")
                                     for what in ("alignment", "count acc.", "shape acc.", "fidelity")))
    for scale in scales:
        cells = []
        for split in ("seen", "unseen"):
            s = result["models"][splits.label(scale)]["splits"][split]
            cells += [f"{s['alignment']['overall']['value']:.1%}", f"{s['attribute_accuracy']['count']['value']:.1%}",
                      f"{s['attribute_accuracy']['shape']['value']:.1%}", f"{s['fidelity_frechet']:.3f}"]
        print(f"{scale:<8g}" + "".join(f"{c:>24}" for c in cells))
    print_versus_baseline(result, [splits.label(s) for s in order[1:]])
    labels = [splits.label(s) for s in scales]
    if args.lora:
        name, lora = args.lora.split("=", 1)
        compare_lora(splits, scales, name, Path(lora))
        labels += [splits.label(s, name) for s in scales]
    if args.demo:  # how the sweeps' seen prompts fare at the demo's seeds: is the sweeps' seen baseline a typical draw?
        ours = set(seen_sample())
        print("\nthe demo's seen split: alignment on the sweeps' 89 seen prompts / on the other training prompts")
        for label in labels:
            scores = pd.read_parquet(splits.folder / f"{label}-seen" / "scores.parquet")
            mine = scores["prompt"].isin(ours)
            print(f"  {label}: {scores['aligned'][mine].mean():.1%} / {scores['aligned'][~mine].mean():.1%}")


def compare_lora(splits: Splits, scales: list[float], name: str, lora: Path) -> None:
    """The LoRA against the shipped pipeline at each scale and at the deployed one; pixels moved."""
    for scale in scales:
        paired = compare_runs(splits.draw(scale) + splits.draw(scale, name, lora),
                              splits.folder / f"compare-{name}-{scale:g}.json")
        print_versus_baseline(paired, [splits.label(scale, name)])
    tuned = sum((splits.draw(scale, name, lora) for scale in scales), [])
    against_deployed = compare_runs(splits.draw(DEPLOYED_GUIDANCE) + tuned,
                                    splits.folder / f"compare-{name}-against-{DEPLOYED_GUIDANCE:g}.json")
    print(f"\nagainst the shipped pipeline at {DEPLOYED_GUIDANCE:g}:")
    print_versus_baseline(against_deployed, [splits.label(scale, name) for scale in scales])
    moved, deployed = splits.seen_pixels(DEPLOYED_GUIDANCE, name), splits.seen_pixels(DEPLOYED_GUIDANCE)
    print("\nseen images, mean absolute pixel difference from the shipped pipeline's at each scale:")
    for scale in scales:
        shipped = splits.seen_pixels(scale)
        print(f"  scale {scale:g}: {name} at {DEPLOYED_GUIDANCE:g} {np.abs(moved - shipped).mean():.4f}, "
              f"shipped at {DEPLOYED_GUIDANCE:g} {np.abs(deployed - shipped).mean():.4f}")


if __name__ == "__main__":
    main()
