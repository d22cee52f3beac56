"""The reward head: an MLP on a CLIP image embedding, a text embedding and their product -> one logit."""

from __future__ import annotations

import torch
from torch import nn

from reward_models.config import HeadConfig


class RewardHead(nn.Module):
    def __init__(self, embed_dim: int, config: HeadConfig):
        super().__init__()
        inputs = 3 * embed_dim
        if config.hidden > 0:
            self.layers = nn.Sequential(
                nn.Linear(inputs, config.hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, 1)
            )
        else:
            self.layers = nn.Linear(inputs, 1)

    def forward(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        features = torch.cat([image_embeddings, text_embeddings, image_embeddings * text_embeddings], dim=-1)
        return self.layers(features).squeeze(-1)
