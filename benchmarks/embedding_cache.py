"""Per-epoch cost of the reward head's inputs: recomputed through the shipped tiny CLIP vs read from the cache.

    .venv/bin/python benchmarks/embedding_cache.py --labels runs/reward/labels.parquet [--epochs 3]

Both sides run in this process on the same rated images: "recompute", the baseline, opens every image,
preprocesses and encodes it and its prompt each epoch (what training would do without a
cache); "cached" loads the run's embedding cache from disk and gathers the rows. Prints the
ratio of the two per-epoch times (target: at least 20x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from align.models import clip_backbone_config
from reward_models.backbones import ClipBackbone
from reward_models.embedding_cache import EmbeddingCache
from reward_models.labels import read_labels


def recompute_epoch(backbone: ClipBackbone, paths: list[str], prompts: list[str], batch_size: int) -> None:
    from PIL import Image

    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            images = [Image.open(p).convert("RGB") for p in paths[start : start + batch_size]]
            backbone.encode_images(images)
            backbone.encode_texts(prompts[start : start + batch_size])


def cached_epoch(backbone: ClipBackbone, labels: pd.DataFrame) -> None:
    cache = EmbeddingCache(backbone)  # a fresh cache object: every epoch reads the files again
    for run_dir, part in labels.groupby("run_dir"):
        cache.image_embeddings(run_dir, list(part["image_path"]))
        cache.text_embeddings(run_dir, list(part["prompt"]))


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--clip", default="shapes-tiny-clip")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    labels = read_labels(args.labels)
    samples = labels.drop_duplicates("image_path")
    backbone = ClipBackbone(clip_backbone_config(args.clip))
    cached_epoch(backbone, samples)  # fills the cache if this backbone has not seen these images
    recompute = [timed(recompute_epoch, backbone, list(samples["image_path"]), list(samples["prompt"]), args.batch_size)
                 for _ in range(args.epochs)]
    cached = [timed(cached_epoch, backbone, samples) for _ in range(args.epochs)]
    r, c = statistics.median(recompute), statistics.median(cached)
    print(f"{len(samples)} images, torch threads {torch.get_num_threads()}, median of {args.epochs} epochs")
    print(f"recompute embeddings: {r:.3f} s/epoch (baseline)")
    print(f"embedding cache:      {c:.4f} s/epoch (reads and hashes every image file)")
    print(f"speed-up:             {r / c:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
