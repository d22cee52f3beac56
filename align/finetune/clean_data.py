"""The pre-training term: the denoising loss on clean renders of training prompts, captioned as the
model's own pretraining data was (the shapes world's stand-in for LAION), which keeps a fine-tuned
model near that data. A model pretrained on loose captions has its caption model beside it
(captions.yaml, written by align/shapes/pretrain.py); then the term's captions carry the same
mistakes, so that the term cannot undo on its own what the captions taught. RWR weighs it by
rwr.pretrain_beta, reward backpropagation by backprop.pretrain_beta."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from align.generation.prompts import load_prompts
from align.models import native_image_size, resolve
from align.shapes.captions import CaptionModel, load_caption_model
from align.shapes.prompts import parse_prompt, scene_for
from align.shapes.world import render


def clean_prompts(prompt_set: str) -> list:
    """The prompts of a set that the shapes world can render: the pre-training term's captions."""
    return [p for p in load_prompts(prompt_set) if parse_prompt(p.text)]


def pretraining_captions(model: str) -> CaptionModel:
    """The caption model a model was pretrained with: captions.yaml in its directory or the one above
    (the pretraining command's output folder); exact captions when there is none."""
    path = Path(resolve(model))
    found = next((folder / "captions.yaml" for folder in (path, path.parent) if (folder / "captions.yaml").is_file()), None)
    return load_caption_model(found)


def training_scheduler(pipeline):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipeline.scheduler.config)


def denoising_loss(unet, noise_scheduler, latents, embeds, generator, timesteps: range | None = None) -> torch.Tensor:
    """Per-sample epsilon-prediction MSE at a random timestep (of `timesteps`, default all)."""
    return denoising_losses(unet, noise_scheduler, [(latents, embeds, timesteps)], generator)[0]


def denoising_losses(unet, noise_scheduler, parts, generator) -> tuple[torch.Tensor, ...]:
    """denoising_loss of several batches (latents, embeds, timestep range or None) in one UNet call, which
    is faster on a CPU than one call each (benchmarks/cpu_speedups.py); the draws are those of one call each."""
    noisy, noises, steps = [], [], []
    for latents, _, timesteps in parts:
        timesteps = timesteps or range(noise_scheduler.config.num_train_timesteps)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
        t = torch.randint(timesteps.start, timesteps.stop, (len(latents),), generator=generator).to(latents.device)
        noisy.append(noise_scheduler.add_noise(latents, noise, t))
        noises.append(noise)
        steps.append(t)
    predicted = unet(torch.cat(noisy), torch.cat(steps), torch.cat([embeds for _, embeds, _ in parts])).sample
    losses = F.mse_loss(predicted.float(), torch.cat(noises).float(), reduction="none").mean(dim=(1, 2, 3))
    return losses.split([len(latents) for latents, _, _ in parts])


@torch.no_grad()
def encode(pipeline, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] to scaled VAE latents (the distribution's mean: no sampling noise)."""
    vae = pipeline.vae
    pixels = (images * 2 - 1).to(pipeline.device, vae.dtype)
    return (vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor).float()


def clean_batch(pipeline, prompts, size: int, rng: random.Random,
                captions: CaptionModel = CaptionModel()) -> tuple[torch.Tensor, list[str]]:
    """Fresh renders of random training prompts, as latents, with their captions under `captions` (the
    prompts themselves under exact captions; drawn as in pretraining, rare pairs rarely, otherwise)."""
    specs = [parse_prompt(p.text) for p in prompts]
    weights = captions.prompt_weights(specs)
    chosen = rng.choices(specs, weights, k=size) if weights else [rng.choice(specs) for _ in range(size)]
    texts = captions.texts(chosen, rng)
    pixels = np.stack([np.asarray(render(scene_for(spec, rng))) for spec in chosen])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    side = native_image_size(pipeline)
    if images.shape[-1] != side:  # a model at another resolution than the renderer's
        images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True).clamp(0, 1)
    return encode(pipeline, images), texts
