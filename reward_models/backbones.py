"""CLIP backbones behind one interface: open_clip models and transformers CLIPModel directories.

    BackboneConfig(kind="open_clip", name="ViT-L-14", pretrained="openai")      # real CLIP
    BackboneConfig(kind="open_clip", name="local-dir:/path/to/tiny-clip")       # open_clip folder
    BackboneConfig(kind="open_clip", name="shapes-tiny-clip")                   # a folder a package ships, by name
    BackboneConfig(kind="transformers", name="openai/clip-vit-large-patch14")   # CLIPModel dir or hub id

Embeddings come back L2-normalised, one row per image or text. Images are a list of PIL
images (the library's own preprocessing) or a float tensor batch in [0, 1], NCHW, which is
resized and normalised in torch so gradients can flow back to the pixels. The backbone is
frozen unless `unfreeze_last_blocks` > 0, which makes the last N transformer blocks of both
towers (and the final norms and projections) trainable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image

from reward_models.errors import RewardModelError


@dataclass
class BackboneConfig:
    kind: Literal["open_clip", "transformers"] = "open_clip"
    name: str = "ViT-L-14"
    pretrained: str | None = None  # open_clip pretrained tag or checkpoint file
    unfreeze_last_blocks: int = 0  # 0: frozen; N: the last N blocks of each tower train with the head


class ClipBackbone:
    """encode_images / encode_texts for either library; eval mode, frozen unless configured."""

    def __init__(self, config: BackboneConfig, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        if config.kind == "open_clip":
            self._load_open_clip(config)
        else:
            self._load_transformers(config)
        self.model.to(self.device).eval().requires_grad_(False)
        if config.unfreeze_last_blocks > 0:
            for parameter in self._last_parameters(config.unfreeze_last_blocks):
                parameter.requires_grad_(True)

    @property
    def trainable(self) -> bool:
        return self.config.unfreeze_last_blocks > 0

    def _load_open_clip(self, config: BackboneConfig) -> None:
        import open_clip

        name = open_clip_name(config.name)
        if name.startswith("local-dir:") and not Path(name.removeprefix("local-dir:")).is_dir():
            raise RewardModelError(f"open_clip model folder {name.removeprefix('local-dir:')} does not exist")
        if not name.startswith(("local-dir:", "hf-hub:")) and name.replace("/", "-") not in open_clip.list_models():
            raise RewardModelError(f"open_clip does not know a model named '{name}'")
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(name, pretrained=config.pretrained)
        except (RuntimeError, OSError, ValueError) as exc:
            where = f"{name} / {config.pretrained}" if config.pretrained else name
            raise RewardModelError(f"could not load open_clip model {where}: {_first_line(exc)}") from None
        tokenizer = open_clip.get_tokenizer(name)
        cfg = self.model.visual.preprocess_cfg
        self.image_size = tuple(cfg["size"]) if isinstance(cfg["size"], (tuple, list)) else (cfg["size"],) * 2
        self.mean, self.std = cfg["mean"], cfg["std"]
        self._encode_image = self.model.encode_image
        self._encode_text = self.model.encode_text
        self._tokenize = lambda texts: tokenizer(texts)

    def _load_transformers(self, config: BackboneConfig) -> None:
        from transformers import CLIPModel, CLIPProcessor

        try:
            self.model = CLIPModel.from_pretrained(config.name)
            processor = CLIPProcessor.from_pretrained(config.name)
        except (OSError, ValueError) as exc:
            raise RewardModelError(f"could not load transformers CLIPModel {config.name}: {_first_line(exc)}") from None
        image_processor = processor.image_processor
        size = image_processor.crop_size or image_processor.size
        side = size.get("height") or size.get("shortest_edge")
        self.image_size = (side, side)
        self.mean, self.std = image_processor.image_mean, image_processor.image_std
        self.preprocess = lambda image: processor(images=image, return_tensors="pt").pixel_values[0]
        self._encode_image = lambda pixels: self.model.get_image_features(pixel_values=pixels)
        self._encode_text = lambda tokens: self.model.get_text_features(input_ids=tokens)
        self._tokenize = lambda texts: processor.tokenizer(
            texts, padding="max_length", truncation=True, return_tensors="pt"
        ).input_ids

    def _last_parameters(self, n: int) -> list[torch.nn.Parameter]:
        """What `unfreeze_last_blocks` = n makes trainable: last n blocks per tower, final norms, projections."""
        m = self.model
        if self.config.kind == "open_clip":
            modules = [*m.visual.transformer.resblocks[-n:], *m.transformer.resblocks[-n:], m.visual.ln_post, m.ln_final]
            loose = [p for p in (m.visual.proj, m.text_projection) if isinstance(p, torch.nn.Parameter)]
        else:
            modules = [*m.vision_model.encoder.layers[-n:], *m.text_model.encoder.layers[-n:],
                       m.vision_model.post_layernorm, m.text_model.final_layer_norm, m.visual_projection,
                       m.text_projection]
            loose = []
        return [p for module in modules for p in module.parameters()] + loose

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {name: p for name, p in self.model.named_parameters() if p.requires_grad}

    def pixels(self, images: list[Image.Image] | torch.Tensor) -> torch.Tensor:
        """Model-ready pixels: PIL through the library's preprocessing, tensors through torch ops."""
        if isinstance(images, torch.Tensor):
            return self.pixels_from_tensor(images)
        return torch.stack([self.preprocess(image.convert("RGB")) for image in images]).to(self.device)

    def pixels_from_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] NCHW -> resized (shorter side), centre-cropped, normalised; differentiable."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise RewardModelError(f"image tensors must be N x 3 x H x W in [0, 1], got shape {tuple(images.shape)}")
        images = images.to(self.device, torch.float32)
        height, width = images.shape[-2:]
        target_h, target_w = self.image_size
        if (height, width) != (target_h, target_w):
            scale = max(target_h / height, target_w / width)
            size = (max(target_h, round(height * scale)), max(target_w, round(width * scale)))
            images = F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)
            top, left = (size[0] - target_h) // 2, (size[1] - target_w) // 2
            images = images[:, :, top : top + target_h, left : left + target_w]
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def encode_pixels(self, pixels: torch.Tensor, patches: bool = False) -> torch.Tensor:
        """N x D pooled embeddings; with patches, N x (1 + P) x D: the pooled one, then every patch token."""
        pixels = pixels.to(self.device)
        if not patches:
            return F.normalize(_as_tensor(self._encode_image(pixels)).float(), dim=-1)
        pooled, tokens = self._encode_image_tokens(pixels)
        return F.normalize(torch.cat([pooled.unsqueeze(1), tokens], dim=1).float(), dim=-1)

    def _encode_image_tokens(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled embedding, patch tokens), both through the final norm and the projection into the joint space."""
        if self.config.kind == "open_clip":
            visual = self.model.visual
            out = visual.forward_intermediates(pixels, indices=1, output_fmt="NLC", normalize_intermediates=True)
            tokens = out["image_intermediates"][-1]
            return out["image_features"], tokens @ visual.proj if visual.proj is not None else tokens
        vision = self.model.vision_model(pixel_values=pixels)
        tokens = self.model.vision_model.post_layernorm(vision.last_hidden_state[:, 1:])
        return self.model.visual_projection(vision.pooler_output), self.model.visual_projection(tokens)

    def encode_images(self, images: list[Image.Image] | torch.Tensor, patches: bool = False) -> torch.Tensor:
        return self.encode_pixels(self.pixels(images), patches)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        features = self._encode_text(self._tokenize(list(texts)).to(self.device))
        return F.normalize(_as_tensor(features).float(), dim=-1)

    @property
    def embed_dim(self) -> int:
        return int(self.encode_texts(["a"]).shape[-1])

    def fingerprint(self) -> str:
        """Identifies these weights: a content hash of local files, else the name and tag."""
        config = self.config
        folder = Path(open_clip_name(config.name).removeprefix("local-dir:"))
        digest = hashlib.sha256(f"{config.kind}|{config.name}|{config.pretrained}".encode())
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        if config.pretrained and Path(config.pretrained).is_file():
            files.append(Path(config.pretrained))
        if files:
            digest = hashlib.sha256(config.kind.encode())  # same bytes, same embeddings, wherever the folder is
            for path in files:
                digest.update(path.name.encode())
                with path.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(chunk)
        return digest.hexdigest()[:16]


NAMED_BACKBONES = "reward_models.named_backbones"


def open_clip_name(name: str) -> str:
    """A backbone name as open_clip takes it. A name that an installed package ships under (an entry point
    of the group `reward_models.named_backbones`, returning the folder) becomes `local-dir:FOLDER`, so a
    model directory that names it loads wherever the package and the directory are."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=NAMED_BACKBONES, name=name):
        return "local-dir:" + str(entry.load()())
    return name


def _as_tensor(features) -> torch.Tensor:
    """transformers 5 returns model outputs where transformers 4 returned tensors."""
    return features if isinstance(features, torch.Tensor) else features.pooler_output


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
