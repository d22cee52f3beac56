"""Small, fast settings shared by the fine-tuning tests: the real tiny pipeline, a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

MODEL = "shapes-tiny-sd"
CLIP = "shapes-tiny-clip"
EVAL_PROMPTS = "two red circles on a black background\na blue square\ntwo diamonds\na triangle on a white background\n"


def quick(tmp: Path, *extra: str) -> list[str]:
    """DDPO/RWR overrides for a run of seconds: 3 DDIM steps, 4 samples per epoch, 4 eval prompts."""
    prompts = tmp / "eval_prompts.txt"
    prompts.write_text(EVAL_PROMPTS)
    return [
        f"model={MODEL}", "reward.kind=clip", f"reward.clip_model={CLIP}", f"eval.clip_model={CLIP}",
        f"eval.prompts={prompts}", "sampling.steps=3", "sampling.batch_size=2", "sampling.batches_per_epoch=2",
        "train.batch_size=2", "train.stat_min_count=2", "train.lr=3e-3", "train.clip_range=0.2", "eval.every=1",
        "eval.steps=3", "eval.seen_prompt_count=4",
        *extra,
    ]


def lora_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "pytorch_lora_weights.safetensors"))


def tiny_pipeline(lora: Path | None = None):
    """The shipped tiny Stable Diffusion pipeline, quiet; with `lora`, loaded by diffusers' own `load_lora_weights`."""
    from diffusers import StableDiffusionPipeline

    from align.models import resolve

    pipe = StableDiffusionPipeline.from_pretrained(resolve(MODEL), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora))
    return pipe


def assert_lora_changes_pipeline_images(run: Path) -> None:
    """The run's final LoRA loads with diffusers' own `load_lora_weights` and changes what the pipeline draws."""
    pipe = tiny_pipeline()
    draw = lambda: pipe("a blue square", num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt").images
    before = draw()
    pipe.load_lora_weights(str(run / "final"))
    assert (draw() - before).abs().max() > 1e-4


def summary(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())
