"""Does the shipped model align better when the sampler follows the text harder?

Hypothesis (issue 15: no fine-tuning method moves unseen prompts): the tiny model's errors on
unseen attribute pairs are in part too weak a pull of the text, a direction that is the same for
every prompt; if so, a larger classifier-free guidance scale raises oracle alignment on unseen
prompts as well as seen ones, and a fine-tuned model has a prompt-general direction to find.
Refuted if no scale above the deployment's 5 lifts the unseen interval above zero.

Every scale draws the sweeps' fixed splits (paired_arms: 89 seen prompts x 2, the 89 held-out x 2,
fresh seeds) with the shipped pipeline, 20 DDIM steps, eta 0, and `compare` pairs it with scale 5.

With `--lora NAME=DIR` a fine-tuned LoRA is drawn at each scale too and paired with the shipped
pipeline at the same scale: a gain that is only a shift of the effective guidance vanishes at the
scale it shifts to. Its seen images are also compared in pixels with the shipped pipeline's at each
scale (mean absolute difference, same prompt and seed): which scale's images it moved towards.

    .venv/bin/python bench/guidance_scale.py [--out runs/bench-guidance] [--scales 1 3 7.5 10 15]
    .venv/bin/python bench/guidance_scale.py --scales 3 --lora "consistency=runs/bench-backprop/consistency steps 10x16x8, eta 0.002/final"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from paired_arms import SEEN_SEED, UNSEEN_SEED, cli, compare_runs, print_versus_baseline, seen_sample

DEPLOYED = 5.0


def draw(out: Path, scale: float, seen_prompts: Path, name: str = "", lora: Path | None = None) -> list[str]:
    """The two splits at this guidance scale, with the shipped pipeline or `lora`; their `compare` arguments."""
    runs = []
    for split, prompts, seed in (("seen", str(seen_prompts), SEEN_SEED), ("unseen", "heldout", UNSEEN_SEED)):
        images = out / f"{name + '-' if lora else ''}guidance-{scale:g}-{split}"
        if not (images / "samples.parquet").is_file():
            cli("generate", "--out", str(images), "--resume", f"prompts={prompts}", "images_per_prompt=2",
                f"seed={seed}", f"sampling.guidance={scale}", *([f"lora={lora}"] if lora else []))
        runs += ["--run", f"{name + ' ' if lora else ''}guidance {scale:g}={images}"]
    return runs


def pixels(run: Path) -> np.ndarray:
    """The run's images in (prompt, seed) order, as floats in [0, 1]."""
    samples = pd.read_parquet(run / "samples.parquet").sort_values(["prompt", "seed"])
    return np.stack([np.asarray(Image.open(run / path), dtype=np.float32) / 255 for path in samples["image_path"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-guidance"))
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 7.5, 10.0, 15.0])
    parser.add_argument("--lora", help="NAME=DIR: a fine-tuned LoRA, drawn at every scale and paired at equal scale")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seen_prompts = args.out / "seen_prompts.txt"
    if not seen_prompts.is_file():
        seen_prompts.write_text("\n".join(seen_sample()) + "\n")
    others = [s for s in args.scales if s != DEPLOYED]
    runs = draw(args.out, DEPLOYED, seen_prompts)
    for scale in others:
        runs += draw(args.out, scale, seen_prompts)
    result = compare_runs(runs, args.out / "compare.json")
    print(f"\n{'scale':<8}" + "".join(f"{split + ': ' + what:>24}" for split in ("seen", "unseen")
                                     for what in ("alignment", "count acc.", "shape acc.", "fidelity")))
    for scale in sorted({DEPLOYED, *args.scales}):
        splits = result["models"][f"guidance {scale:g}"]["splits"]
        cells = []
        for split in ("seen", "unseen"):
            s = splits[split]
            cells += [f"{s['alignment']['overall']['value']:.1%}", f"{s['attribute_accuracy']['count']['value']:.1%}",
                      f"{s['attribute_accuracy']['shape']['value']:.1%}", f"{s['fidelity_frechet']:.3f}"]
        print(f"{scale:<8g}" + "".join(f"{c:>24}" for c in cells))
    print_versus_baseline(result, [f"guidance {s:g}" for s in others])
    if args.lora:
        name, lora = args.lora.split("=", 1)
        for scale in sorted({DEPLOYED, *args.scales}):
            paired = compare_runs(draw(args.out, scale, seen_prompts) + draw(args.out, scale, seen_prompts, name, Path(lora)),
                                  args.out / f"compare-{name}-{scale:g}.json")
            print_versus_baseline(paired, [f"{name} guidance {scale:g}"])
        scales = sorted({DEPLOYED, *args.scales})
        against_deployed = compare_runs(draw(args.out, DEPLOYED, seen_prompts) + sum(
            (draw(args.out, scale, seen_prompts, name, Path(lora)) for scale in scales), []),
            args.out / f"compare-{name}-against-{DEPLOYED:g}.json")
        print(f"\nagainst the shipped pipeline at {DEPLOYED:g}:")
        print_versus_baseline(against_deployed, [f"{name} guidance {scale:g}" for scale in scales])
        tuned = pixels(args.out / f"{name}-guidance-{DEPLOYED:g}-seen")
        deployed = pixels(args.out / f"guidance-{DEPLOYED:g}-seen")
        print("\nseen images, mean absolute pixel difference from the shipped pipeline's at each scale:")
        for scale in sorted({DEPLOYED, *args.scales}):
            shipped = pixels(args.out / f"guidance-{scale:g}-seen")
            print(f"  scale {scale:g}: {name} at {DEPLOYED:g} {np.abs(tuned - shipped).mean():.4f}, "
                  f"shipped at {DEPLOYED:g} {np.abs(deployed - shipped).mean():.4f}")

if __name__ == "__main__":
    main()
