"""The shipped tiny models load through their libraries' own APIs and agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import open_clip
import torch
from diffusers import StableDiffusionPipeline
from transformers import CLIPTokenizer

from align.models import SHIPPED, WEIGHTS
from align.shapes.oracle import judge
from align.shapes.prompts import prompt_set
from align.shapes.tiny_models import text_encoder_from_open_clip

CLIP_DIR, SD_DIR = SHIPPED["shapes-tiny-clip"], SHIPPED["shapes-tiny-sd"]
PARSEABLE_FLOOR = 0.85  # README: 92.8% of 502 images; on 64 images one standard error is about 3 points


def test_weights_fit_the_size_budget():
    total = sum(path.stat().st_size for path in WEIGHTS.rglob("*") if path.is_file())
    assert total <= 40 * 2**20, f"{total / 2**20:.1f} MB"


def test_plain_from_pretrained_runs_with_guidance():
    pipeline = StableDiffusionPipeline.from_pretrained(SD_DIR)
    assert {"vae", "unet", "text_encoder", "tokenizer", "scheduler"} <= set(pipeline.components)
    assert type(pipeline.scheduler).__name__ == "DDIMScheduler"
    output = pipeline(
        ["two red circles on a black background", "a blue square"],
        num_inference_steps=10,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert [image.size for image in output.images] == [(64, 64), (64, 64)]
    # a drawing, not noise: the oracle finds a background and objects in at least one
    assert any(judge(image, "one circle").parse.background for image in output.images)


def test_pipeline_draws_shapes_the_oracle_can_parse():
    """The baseline's parseable share (README) on a smaller sample: 64 training prompts, fixed seeds."""
    pipeline = StableDiffusionPipeline.from_pretrained(SD_DIR)
    pipeline.set_progress_bar_config(disable=True)
    prompts = [p.text for p in prompt_set("train")][::4][:64]
    images = pipeline(prompts, num_inference_steps=20, guidance_scale=5.0, generator=torch.Generator().manual_seed(0)).images
    parseable = sum(judge(image, prompt).parseable for image, prompt in zip(images, prompts)) / len(prompts)
    assert parseable >= PARSEABLE_FLOOR, f"{parseable:.1%} of {len(prompts)} images parseable"


def test_tokenizer_matches_open_clip_bpe():
    ours = CLIPTokenizer.from_pretrained(SD_DIR / "tokenizer")
    reference = open_clip.get_tokenizer(f"local-dir:{CLIP_DIR}")
    texts = [p.text for p in prompt_set("all")] + ["A photo of Two DOGS, on the grass!"]
    expected = reference(texts)
    got = ours(texts, padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ours.model_max_length == 77
    for a, b in zip(expected, got):
        end = int((a == ours.eos_token_id).nonzero()[0]) + 1
        assert torch.equal(a[:end], b[:end])


def test_text_encoder_is_the_tiny_clip_text_tower():
    clip, _, _ = open_clip.create_model_and_transforms(f"local-dir:{CLIP_DIR}")
    pipeline_encoder = StableDiffusionPipeline.from_pretrained(SD_DIR).text_encoder
    converted = text_encoder_from_open_clip(clip.float())
    ids = CLIPTokenizer.from_pretrained(SD_DIR / "tokenizer")(
        ["three diamonds on a gray background"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        shipped = pipeline_encoder(ids).last_hidden_state
        fresh = converted(ids).last_hidden_state
        tower = clip.ln_final(clip.transformer(clip.token_embedding(ids) + clip.positional_embedding, attn_mask=clip.attn_mask))
    assert torch.allclose(shipped, fresh, atol=1e-2)
    assert torch.allclose(fresh, tower, atol=1e-4)


def test_tiny_clip_prefers_the_true_caption():
    clip, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{CLIP_DIR}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{CLIP_DIR}")
    import random

    from align.shapes.prompts import parse_prompt, scene_for
    from align.shapes.world import render

    rng = random.Random(0)
    prompts = [p.text for p in prompt_set("train") if p.category == "color"]
    images = torch.stack([preprocess(render(scene_for(parse_prompt(t), rng))) for t in prompts])
    with torch.no_grad():
        similarity = clip.encode_image(images, normalize=True) @ clip.encode_text(tokenizer(prompts), normalize=True).T
    top1 = (similarity.argmax(dim=1) == torch.arange(len(prompts))).float().mean()
    assert top1 >= 0.5, f"top-1 {top1:.2f} over {len(prompts)} colour prompts"


def test_vae_reconstructions_stay_readable():
    """experiments/vae_reconstruction.py runs; clean renders all parse and the VAE keeps most of them."""
    script = Path(__file__).resolve().parents[1] / "experiments" / "vae_reconstruction.py"
    result = subprocess.run([sys.executable, str(script), "--images", "32"], capture_output=True, text=True, check=True)
    shares = dict(re.findall(r"(clean renders|VAE reconstructions): parseable ([\d.]+)%", result.stdout))
    assert float(shares["clean renders"]) == 100.0
    assert float(shares["VAE reconstructions"]) >= 90.0, result.stdout
