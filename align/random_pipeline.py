"""A Stable Diffusion pipeline directory with a published architecture and random weights.

A model's speed depends on its architecture, not on its trained weights, so a pipeline built from
Stable Diffusion v1.5's own component configs (align/configs/sd15/architecture/: its UNet, VAE and
CLIP ViT-L/14 text encoder, and its DDIM schedule) is a fair speed benchmark where the weights
cannot be downloaded. The weights are drawn at run time and never shipped; the tokenizer is the
shipped one (the same CLIP BPE vocabulary of 49,408 tokens, 77 positions).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from align.models import DTYPES, resolve

SD15_ARCHITECTURE = "sd15/architecture"


def architecture_config(component: str, architecture: str = SD15_ARCHITECTURE) -> dict:
    """One component's config (unet, vae, text_encoder, scheduler) as shipped in align/configs."""
    return json.loads(resources.files("align").joinpath("configs", architecture, f"{component}.json").read_text())


def build_components(architecture: str = SD15_ARCHITECTURE, latent_size: int | None = None):
    """UNet, VAE, text encoder and scheduler with the architecture's configs and random weights.
    `latent_size` draws smaller images with the same layers (for a quick check on a CPU)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_config = architecture_config("unet", architecture)
    vae_config = architecture_config("vae", architecture)
    if latent_size:
        unet_config["sample_size"] = latent_size
        vae_config["sample_size"] = latent_size * 2 ** (len(vae_config["block_out_channels"]) - 1)
    unet = UNet2DConditionModel.from_config(unet_config)
    vae = AutoencoderKL.from_config(vae_config)
    text_config = architecture_config("text_encoder", architecture)
    text_encoder = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_config.items() if k not in ("architectures", "model_type")}))
    scheduler = DDIMScheduler.from_config(architecture_config("scheduler", architecture))
    return unet, vae, text_encoder, scheduler


def build_random_pipeline(out: Path, architecture: str = SD15_ARCHITECTURE, latent_size: int | None = None,
                          dtype: str = "float32", seed: int = 0) -> Path:
    """Write a StableDiffusionPipeline directory at `out` that `load_pipeline(str(out))` loads."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    unet, vae, text_encoder, scheduler = build_components(architecture, latent_size)
    tokenizer = CLIPTokenizer.from_pretrained(Path(resolve("shapes-tiny-sd")) / "tokenizer")
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.to(DTYPES[dtype]).save_pretrained(out)
    return out
