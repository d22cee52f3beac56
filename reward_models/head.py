"""The reward head: an MLP on a CLIP image embedding, a text embedding and their product -> one logit."""

from __future__ import annotations

import torch
from torch import nn

from reward_models.config import HeadConfig


class RewardHead(nn.Module):
    def __init__(self, embed_dim: int, config: HeadConfig):
        super().__init__()
        self.use_similarity = config.similarity_skip
        # logit = a * cos(image, text) + b + MLP(...): starts from CLIP score's ranking, learns a correction
        self.similarity = nn.Linear(1, 1)
        inputs = 3 * embed_dim
        if config.hidden > 0:
            self.layers = nn.Sequential(
                nn.Linear(inputs, config.hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, 1)
            )
        else:
            self.layers = nn.Linear(inputs, 1)

    def forward(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        product = image_embeddings * text_embeddings
        features = torch.cat([image_embeddings, text_embeddings, product], dim=-1)
        logits = self.layers(features).squeeze(-1)
        if self.use_similarity:
            logits = logits + self.similarity(product.sum(-1, keepdim=True)).squeeze(-1)
        return logits
