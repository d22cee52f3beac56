"""What the shipped tiny VAE alone lets the oracle read: the ceiling on the pipeline's parseable share.

    .venv/bin/python experiments/vae_reconstruction.py [--images 256] [--vae DIR]

Renders clean scenes of training prompts (fixed seed), encodes them with the VAE, decodes
the latent means, and judges the originals and the reconstructions with the oracle. No
UNet can draw better than its autoencoder decodes, so the reconstructions' parseable and
aligned shares bound those of generated images.
"""

from __future__ import annotations

import argparse
import random

import torch
from diffusers import AutoencoderKL
from PIL import Image

from align.models import SHIPPED
from align.shapes import oracle
from align.shapes.pretrain import render_batch, training_specs


def to_image(pixels: torch.Tensor) -> Image.Image:
    return Image.fromarray(((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())


def shares(images: torch.Tensor, specs) -> tuple[float, float]:
    judgements = [oracle.judge(to_image(image), spec) for image, spec in zip(images, specs)]
    return (
        sum(j.parseable for j in judgements) / len(judgements),
        sum(j.aligned for j in judgements) / len(judgements),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--vae", default=str(SHIPPED["shapes-tiny-sd"] / "vae"))
    args = parser.parse_args()
    vae = AutoencoderKL.from_pretrained(args.vae, torch_dtype=torch.float32).eval()
    images, specs = render_batch(training_specs(), random.Random(5), args.images)
    with torch.no_grad():
        reconstructions = vae.decode(vae.encode(images).latent_dist.mean).sample
    for name, batch in (("clean renders", images), ("VAE reconstructions", reconstructions)):
        parseable, aligned = shares(batch, specs)
        print(f"{name:>20}: parseable {parseable:.1%}, aligned {aligned:.1%} ({args.images} images)")


if __name__ == "__main__":
    main()
