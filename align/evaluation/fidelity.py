"""Fidelity: Frechet distance, in tiny-CLIP image-embedding space, from generated images to clean
renders of the same prompts (the shapes world's ground truth). An FID with a CLIP encoder
(Kynkaanniemi et al. 2023); fine-tuning that hacks the reward drifts away from clean scenes.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import torch
from PIL import Image
from scipy import linalg

from align.shapes.prompts import parse_prompt, scene_for
from align.shapes.world import render


def clean_renders(prompts: list[str], seed: int) -> list[Image.Image]:
    """One fresh render per prompt, with its own seeded layout."""
    return [render(scene_for(parse_prompt(p), random.Random(seed + i), allow_heldout=True)) for i, p in enumerate(prompts)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between two sets of row vectors."""
    # The formula over scipy's sqrtm, as pytorch-fid computes it: the libraries that package FID
    # (torchmetrics, clean-fid) tie it to Inception features, whose weights come from a hub.
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # singular products are expected with few images; handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # near-singular covariances (fewer images than dimensions)
        offset = np.eye(len(mu_a)) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


class FidelityMeter:
    """Frechet distance of a batch of images to clean renders of its prompts (renders cached)."""

    def __init__(self, clip_model: str, device: torch.device, prompts: list[str], seed: int):
        from align.models import clip_backbone_config
        from reward_models.backbones import ClipBackbone

        self.backbone = ClipBackbone(clip_backbone_config(clip_model), device)
        self.reference = self._embed(clean_renders(prompts, seed))

    @torch.no_grad()
    def _embed(self, images: list[Image.Image]) -> np.ndarray:
        return self.backbone.encode_images(images).cpu().double().numpy()

    def __call__(self, images: list[Image.Image]) -> float:
        return frechet_distance(self._embed(images), self.reference)
