"""CLIP score, the baseline the learned reward is compared with: 100 x max(cos(image, text), 0)."""

from __future__ import annotations

import torch
from PIL import Image

from reward_models.backbones import ClipBackbone


@torch.no_grad()
def clip_scores(backbone: ClipBackbone, images: list[Image.Image], prompts: list[str], batch_size: int = 64) -> torch.Tensor:
    """One score per (image, prompt) pair, batched."""
    scores = []
    for start in range(0, len(images), batch_size):
        image_features = backbone.encode_images(images[start : start + batch_size])
        text_features = backbone.encode_texts(prompts[start : start + batch_size])
        scores.append(100 * (image_features * text_features).sum(dim=-1).clamp(min=0))
    return torch.cat(scores) if scores else torch.zeros(0)
