"""What limits the tiny UNet's alignment: how long it was trained, or its architecture?

    python experiments/unet_pretraining.py [--out runs/bench-unet-pretraining] [--arms ...]

Hypotheses (the fine-tuning issue, item 4: "an under-trained UNet", "cross-attention only at
low resolution"), both tested with the strongest signal there is, the pretraining stage itself
(`align/shapes/pretrain.py`'s loss, EMA and schedule on fresh clean renders of training prompts
with their true captions, 32 an optimizer step; the results in docs/research/unet-pretraining.md
were measured with the one-cycle schedule of that time, commit a3825c7 and before, and the
pretraining stage now holds its rate constant after a warm-up, so a rerun differs):

1. Under-trained: going on from the shipped UNet raises seen alignment within a few thousand
   steps. If it does not, the model sits where its architecture and data put it, and no
   reward-driven method in a comparable number of steps can be expected to do better.
2. Architecture: a UNet with cross-attention at every resolution (16x16 latents included)
   trained from scratch reaches higher alignment than the shipped architecture trained from
   scratch for the same steps and seed.

The VAE, text encoder and tokenizer stay the shipped ones. Every arm's pipeline and the shipped
one draw the same seen and unseen prompts, paired by `t2i-align compare` (align/evaluation/paired_arms.py).
About 0.2 s a step here for the shipped architecture; finished arms are reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from align.evaluation.paired_arms import compare, compare_runs, print_versus_baseline
from align.models import resolve
from align.shapes.pretrain import SEED, THREADS, UNET_LR, save_with_unet, train_unet

ROOT = Path(__file__).resolve().parent.parent

EVERY_LEVEL_ATTENTION = {"down_block_types": ["CrossAttnDownBlock2D"] * 3, "up_block_types": ["CrossAttnUpBlock2D"] * 3}
ARMS = {  # name: (start: the shipped UNet, or a fresh one with these config changes; optimizer steps; lr)
    "+1000 steps, lr 1e-4": ("shipped", 1000, 1e-4),
    "+4000 steps, lr 1e-4": ("shipped", 4000, 1e-4),
    "from scratch, 3000 steps": ({}, 3000, UNET_LR),
    "from scratch, attention at every level, 3000 steps": (EVERY_LEVEL_ATTENTION, 3000, UNET_LR),
}


def trained_pipeline(out: Path, start: str | dict, steps: int, lr: float) -> Path:
    """A pipeline directory: the shipped one with its UNet trained `steps` further, or replaced by
    a fresh UNet of the shipped config with `start`'s changes, trained `steps`."""
    pipeline_dir = out / "tiny-sd"
    if (pipeline_dir / "model_index.json").is_file():
        return pipeline_dir
    shipped = resolve("shapes-tiny-sd")
    torch.set_num_threads(THREADS)
    pipeline = StableDiffusionPipeline.from_pretrained(shipped)
    assert pipeline.unet.dtype == torch.float32, "the UNet must train in fp32"
    unet = pipeline.unet
    if start != "shipped":
        torch.manual_seed(SEED + 2)  # every fresh arm starts from the same draws
        unet = UNet2DConditionModel.from_config({**pipeline.unet.config, **start})
    began = time.perf_counter()
    unet = train_unet(out / "work", steps, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer,
                      start=unet, lr=lr)
    print(f"{out.name}: {steps} steps in {time.perf_counter() - began:.0f} s", flush=True)
    save_with_unet(Path(shipped), unet, pipeline_dir)
    return pipeline_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-unet-pretraining")
    parser.add_argument("--arms", nargs="*", help="only these arms (default: all)")
    args = parser.parse_args()
    models: dict[str, Path | None] = {"baseline": None}
    for arm, (start, steps, lr) in ARMS.items():
        if not args.arms or arm in args.arms:
            models[arm] = trained_pipeline(args.out / arm, start, steps, lr)
    print_versus_baseline(compare(args.out, models), [m for m in models if m != "baseline"])
    fresh = [arm for arm in models if arm in ARMS and ARMS[arm][0] != "shipped"]
    if len(fresh) == 2:  # the two architectures paired with each other, on the images drawn above
        runs = [f"--run={arm}={args.out / 'images' / f'{arm}-{split}'}" for arm in fresh for split in ("seen", "unseen")]
        print_versus_baseline(compare_runs(runs, args.out / "compare-architectures.json"), fresh[1:])


if __name__ == "__main__":
    main()
