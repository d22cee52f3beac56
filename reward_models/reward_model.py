"""RewardModel: a CLIP backbone and a reward head; a directory on disk, a callable in code.

    model = RewardModel.from_pretrained("runs/reward")
    rewards = model(images, prompts)                      # 1-D float tensor, no grad
    rewards = model(images, prompts, differentiable=True)  # gradients flow to tensor images

Images are a list of PIL images or a float tensor batch in [0, 1], N x 3 x H x W. The reward
is a logit: higher means "raters would call this image aligned with its prompt". With the
default head (combine: product), sigmoid(reward) is the predicted probability that a rater
gives a thumbs up and every attribute is right; with combine: thumbs, of a thumbs up alone.
Per attribute (count, shape, colour, background, malformed), the probability that it is right:

    model.attribute_probabilities(images, prompts)         # {"thumbs_up": tensor, "count": tensor, ...}

A model directory holds config.json, model.safetensors (the head, plus the backbone's
unfrozen blocks if any) and metrics.json. The backbone's weights are referenced, not copied,
and checked by fingerprint when loading, so a head never silently meets other embeddings.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from reward_models.backbones import BackboneConfig, ClipBackbone
from reward_models.config import HeadConfig
from reward_models.errors import RewardModelError
from reward_models.head import RewardHead, combine
from reward_models.labels import ATTRIBUTES

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"


class RewardModel(nn.Module):
    def __init__(self, backbone: ClipBackbone, head_config: HeadConfig, embed_dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.clip = backbone.model  # registered, so .to() and .parameters() see the backbone
        self.head_config = head_config
        self.embed_dim = embed_dim or backbone.embed_dim
        self.head = RewardHead(self.embed_dim, head_config).to(backbone.device)
        self.metrics: dict = {}
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        self.backbone.device = next(self.head.parameters()).device
        return self

    @property
    def uses_patches(self) -> bool:
        return self.head_config.image_features == "patches"

    def _logits(self, images, prompts: list[str], differentiable: bool, batch_size: int) -> torch.Tensor:
        if len(images) != len(prompts):
            raise RewardModelError(f"got {len(images)} images but {len(prompts)} prompts")
        if len(prompts) == 0:
            return torch.zeros(0, self.head.similarity.out_features, device=self.device)
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            logits = [
                self.head(
                    self.backbone.encode_images(images[start : start + batch_size], self.uses_patches),
                    self.backbone.encode_texts(list(prompts[start : start + batch_size])),
                )
                for start in range(0, len(prompts), batch_size)
            ]
        return torch.cat(logits)

    def forward(
        self,
        images: list[Image.Image] | torch.Tensor,
        prompts: list[str],
        differentiable: bool = False,
        batch_size: int = 64,
    ) -> torch.Tensor:
        return combine(self._logits(images, prompts, differentiable, batch_size), self.head_config.combine)

    @torch.no_grad()
    def attribute_probabilities(self, images, prompts: list[str], batch_size: int = 64) -> dict[str, torch.Tensor]:
        """P(thumbs up) and, if the head has them, P(attribute right) for each of labels.ATTRIBUTES."""
        return probabilities(self._logits(images, prompts, False, batch_size))

    def rewards_from_embeddings(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """The reward of already encoded pairs (the embedding cache's path)."""
        return self.head.reward(image_embeddings.to(self.device), text_embeddings.to(self.device))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        state |= {f"backbone.{k}": p for k, p in self.backbone.trainable_parameters().items()}
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "backbone": dataclasses.asdict(self.backbone.config),
            "backbone_fingerprint": self.backbone.fingerprint(),
            "head": dataclasses.asdict(self.head_config),
            "embed_dim": self.embed_dim,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        save_file(self.trainable_state(), str(directory / WEIGHTS_FILE))
        (directory / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> RewardModel:
        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise RewardModelError(f"{directory} is not a reward model directory: it lacks {CONFIG_FILE} or {WEIGHTS_FILE}")
        config = json.loads((directory / CONFIG_FILE).read_text())
        backbone = ClipBackbone(BackboneConfig(**config["backbone"]), device)
        if backbone.fingerprint() != config["backbone_fingerprint"]:
            raise RewardModelError(
                f"the backbone {backbone.config.name} has changed since the reward model in {directory} was trained;"
                " retrain it with `t2i-align train-reward`"
            )
        head = {"attributes": False} | config["head"]  # directories from before the attribute heads
        model = cls(backbone, HeadConfig(**head), config["embed_dim"])
        state = load_file(str(directory / WEIGHTS_FILE))
        model.head.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")})
        backbone_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        if backbone_state:
            missing = backbone.model.load_state_dict(backbone_state, strict=False).unexpected_keys
            if missing:
                raise RewardModelError(f"{directory}/{WEIGHTS_FILE} has backbone weights this backbone lacks: {missing[0]}")
        if (directory / METRICS_FILE).is_file():
            model.metrics = json.loads((directory / METRICS_FILE).read_text())
        return model.to(device).eval()


def probabilities(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    names = ("thumbs_up", *ATTRIBUTES)[: logits.shape[1]]
    return {name: torch.sigmoid(logits[:, i]) for i, name in enumerate(names)}
