"""Embeddings computed once per backbone and stored in the run directory they belong to.

    RUN/embeddings/<backbone fingerprint>/images.safetensors          image content sha256 -> embedding
    RUN/embeddings/<backbone fingerprint>/images-patches.safetensors  ... -> pooled + patch tokens
    RUN/embeddings/<backbone fingerprint>/texts.safetensors           text sha256 -> embedding

Keys are content hashes, so a regenerated image or retrained backbone never reads a stale
row, and the head's training epochs touch no image at all.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from reward_models.backbones import ClipBackbone
from reward_models.errors import RewardModelError

FOLDER = "embeddings"


def file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise RewardModelError(f"image {path} is missing") from None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class EmbeddingCache:
    def __init__(self, backbone: ClipBackbone, batch_size: int = 64, patches: bool = False):
        self.backbone = backbone
        self.batch_size = batch_size
        self.patches = patches  # image rows are (1 + P) x D: the pooled embedding, then the patch tokens
        self.key = backbone.fingerprint()
        self._stores: dict[Path, dict[str, torch.Tensor]] = {}

    def folder(self, run_dir: str | Path) -> Path:
        return Path(run_dir) / FOLDER / self.key

    def image_embeddings(self, run_dir: str | Path, paths: Sequence[str | Path]) -> torch.Tensor:
        """One row per image file, computed only for images this backbone has not seen."""
        keys = [file_hash(Path(p)) for p in paths]
        name = "images-patches" if self.patches else "images"
        return self._lookup(self.folder(run_dir) / f"{name}.safetensors", keys, dict(zip(keys, map(Path, paths))), self._encode_images)

    def text_embeddings(self, run_dir: str | Path, texts: Sequence[str]) -> torch.Tensor:
        keys = [text_hash(t) for t in texts]
        return self._lookup(self.folder(run_dir) / "texts.safetensors", keys, dict(zip(keys, texts)), self._encode_texts)

    def _lookup(self, path: Path, keys: list[str], sources: dict, encode) -> torch.Tensor:
        store = self._load(path)
        missing = [k for k in dict.fromkeys(keys) if k not in store]
        if missing:
            for start in tqdm(range(0, len(missing), self.batch_size), desc=f"embedding {path.stem}", unit="batch"):
                batch = missing[start : start + self.batch_size]
                with torch.no_grad():
                    rows = encode([sources[k] for k in batch]).cpu()
                store.update(zip(batch, rows))
            self._save(path, store)
        if not keys:
            return torch.zeros(0, 0)
        return torch.stack([store[k] for k in keys])

    def _encode_images(self, paths: list[Path]) -> torch.Tensor:
        images = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except (UnidentifiedImageError, OSError):
                raise RewardModelError(f"image {path} is corrupt or not an image") from None
        return self.backbone.encode_images(images, self.patches)

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.backbone.encode_texts(texts)

    def _load(self, path: Path) -> dict[str, torch.Tensor]:
        if path not in self._stores:
            self._stores[path] = load_file(str(path)) if path.is_file() else {}
        return self._stores[path]

    @staticmethod
    def _save(path: Path, store: dict[str, torch.Tensor]) -> None:
        """Atomic, so an interrupted run leaves the previous cache whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        save_file({k: v.contiguous() for k, v in store.items()}, str(partial))
        os.replace(partial, path)
