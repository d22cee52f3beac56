"""Statistics of a method's gradient across independent batches, for the gradient experiments.

experiments/gradient_directions.py steps along the consistency of measured batch gradients;
experiments/consistency_steps.py trains by repeating such steps.
"""

from __future__ import annotations

import torch


def consistency(batches: torch.Tensor) -> torch.Tensor:
    """Weight by weight, the mean gradient over its root-mean-square across the batches (rows):
    near +-1 where every batch agrees, near 0 where the gradient is noise, so noisy weights barely move."""
    return batches.mean(0) / (batches.pow(2).mean(0).sqrt() + 1e-12)
