"""CLIP backbones behind one interface: open_clip models and transformers CLIPModel directories.

    BackboneConfig(kind="open_clip", name="ViT-L-14", pretrained="openai")      # real CLIP
    BackboneConfig(kind="open_clip", name="local-dir:/path/to/tiny-clip")       # open_clip folder
    BackboneConfig(kind="transformers", name="openai/clip-vit-large-patch14")   # CLIPModel dir or hub id

Embeddings come back L2-normalised, one row per image or text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image

from reward_models.errors import RewardModelError


@dataclass
class BackboneConfig:
    kind: Literal["open_clip", "transformers"] = "open_clip"
    name: str = "ViT-L-14"
    pretrained: str | None = None  # open_clip pretrained tag or checkpoint file


class ClipBackbone:
    """encode_images / encode_texts for either library, frozen and in eval mode."""

    def __init__(self, config: BackboneConfig, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        if config.kind == "open_clip":
            self._load_open_clip(config)
        else:
            self._load_transformers(config)
        self.model.to(self.device).eval().requires_grad_(False)

    def _load_open_clip(self, config: BackboneConfig) -> None:
        import open_clip

        name = config.name
        if not name.startswith(("local-dir:", "hf-hub:")) and name.replace("/", "-") not in open_clip.list_models():
            raise RewardModelError(f"open_clip does not know a model named '{name}'")
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(name, pretrained=config.pretrained)
        except (RuntimeError, OSError, ValueError) as exc:
            where = f"{name} / {config.pretrained}" if config.pretrained else name
            raise RewardModelError(f"could not load open_clip model {where}: {_first_line(exc)}") from None
        self.tokenizer = open_clip.get_tokenizer(name)
        self._encode_image = self.model.encode_image
        self._encode_text = lambda tokens: self.model.encode_text(tokens)
        self._tokenize = lambda texts: self.tokenizer(texts)

    def _load_transformers(self, config: BackboneConfig) -> None:
        from transformers import CLIPModel, CLIPProcessor

        try:
            self.model = CLIPModel.from_pretrained(config.name)
            processor = CLIPProcessor.from_pretrained(config.name)
        except OSError as exc:
            raise RewardModelError(f"could not load transformers CLIPModel {config.name}: {_first_line(exc)}") from None
        self.preprocess = lambda image: processor(images=image, return_tensors="pt").pixel_values[0]
        self._encode_image = lambda pixels: self.model.get_image_features(pixel_values=pixels)
        self._encode_text = lambda tokens: self.model.get_text_features(input_ids=tokens)
        self._tokenize = lambda texts: processor.tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt").input_ids

    def image_tensors(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(image.convert("RGB")) for image in images])

    def encode_images(self, images: list[Image.Image] | torch.Tensor) -> torch.Tensor:
        pixels = images if isinstance(images, torch.Tensor) else self.image_tensors(images)
        features = self._encode_image(pixels.to(self.device))
        return torch.nn.functional.normalize(_as_tensor(features).float(), dim=-1)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        features = self._encode_text(self._tokenize(list(texts)).to(self.device))
        return torch.nn.functional.normalize(_as_tensor(features).float(), dim=-1)


def _as_tensor(features) -> torch.Tensor:
    """transformers 5 returns model outputs where transformers 4 returned tensors."""
    return features if isinstance(features, torch.Tensor) else features.pooler_output


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
