"""The reward head: CLIP image features and a text embedding -> a thumbs-up logit and one logit per attribute.

Outputs, one row per pair: column 0 is the logit of a thumbs up; with `attributes`, columns
1.. are the logits that each attribute of labels.ATTRIBUTES (count, shape, colour, background,
malformed) is right. `reward` folds them into the one number fine-tuning uses (HeadConfig.combine).

Image features are the pooled embedding (N x D), or with `image_features: patches` the pooled
embedding followed by the patch tokens projected into the same space (N x (1 + P) x D). A
patch branch then looks at every patch beside the text, and pools what it finds three ways:
mean and max (how much, and whether anywhere), and attention weighted by the text (where).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reward_models.config import HeadConfig
from reward_models.labels import ATTRIBUTES


class PatchBranch(nn.Module):
    def __init__(self, embed_dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.per_patch = nn.Sequential(nn.Linear(3 * embed_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.where = nn.Linear(hidden, 1)
        self.out_dim = 3 * hidden

    def forward(self, patches: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        patches = self.norm(patches)
        text = text_embeddings.unsqueeze(1).expand(-1, patches.shape[1], -1)
        found = self.per_patch(torch.cat([patches, text, patches * text], dim=-1))
        weights = self.where(found).softmax(dim=1)
        return torch.cat([found.mean(1), found.amax(1), (weights * found).sum(1)], dim=-1)


class RewardHead(nn.Module):
    def __init__(self, embed_dim: int, config: HeadConfig):
        super().__init__()
        self.config = config
        outputs = 1 + (len(ATTRIBUTES) if config.attributes else 0)
        self.patches = PatchBranch(embed_dim, config.patch_hidden) if config.image_features == "patches" else None
        inputs = 3 * embed_dim + (self.patches.out_dim if self.patches else 0)
        # each logit = a * cos(image, text) + b + MLP(...): starts from CLIP score's ranking, learns a correction
        self.similarity = nn.Linear(1, outputs)
        if config.hidden > 0:
            self.layers = nn.Sequential(
                nn.Linear(inputs, config.hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, outputs)
            )
        else:
            self.layers = nn.Linear(inputs, outputs)

    def forward(self, image_features: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """All logits, N x (1 + attributes)."""
        pooled = image_features[:, 0] if image_features.ndim == 3 else image_features
        product = pooled * text_embeddings
        features = [pooled, text_embeddings, product]
        if self.patches is not None:
            features.append(self.patches(image_features[:, 1:], text_embeddings))
        logits = self.layers(torch.cat(features, dim=-1))
        if self.config.similarity_skip:
            logits = logits + self.similarity(product.sum(-1, keepdim=True))
        return logits

    def reward(self, image_features: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        return combine(self(image_features, text_embeddings), self.config.combine)


def combine(logits: torch.Tensor, how: str) -> torch.Tensor:
    """The reward from all logits: the thumbs-up logit ("thumbs"), or ("product") the logit of
    P(thumbs up) x P(every attribute right), so sigmoid(reward) stays a probability."""
    if how == "thumbs" or logits.shape[1] == 1:
        return logits[:, 0]
    log_p = F.logsigmoid(logits).sum(-1).clamp(max=-1e-6)
    return log_p - torch.log(-torch.expm1(log_p))
