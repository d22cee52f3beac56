"""Best-of-n curves: the share of aligned images when a scorer picks the best of n, n = 1..8.

A pool is a run directory with several images per prompt (a best-of-n run's candidates/, or
any generated run). For every prompt and n, every n-subset of its pool counts equally
(reward_models.metrics.best_of_n), so a curve needs no resampling and no new image. The
scorers are the learned reward and CLIP score; the oracle's ceiling is the share of prompts'
n-subsets holding at least one aligned image, and n = 1 is drawing one image at random.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from align.errors import BadInput
from align.rundir import read_samples
from align.shapes.oracle_labels import check_shapes_prompts, with_oracle_labels
from reward_models.embedding_cache import EmbeddingCache
from reward_models.metrics import best_of_n
from reward_models.reward_model import RewardModel

MAX_N = 8
SPLIT_NAMES = {"train": "seen prompts", "heldout": "unseen prompts"}


def scored_pools(pools: list[Path], model: RewardModel, cache: EmbeddingCache) -> pd.DataFrame:
    """One row per pool image: prompt, split, the reward, CLIP score and the oracle's verdict."""
    frames = []
    for pool in pools:
        samples = read_samples(pool)
        samples = samples.assign(image_path=[str(pool / p) for p in samples["image_path"]], run_dir=str(pool))
        check_shapes_prompts(samples, f"pool {pool}")
        images = cache.image_embeddings(pool, list(samples["image_path"]))
        texts = cache.text_embeddings(pool, list(samples["prompt"]))
        pooled = images[:, 0] if images.ndim == 3 else images
        with torch.no_grad():
            if model.backbone.trainable:  # its unfrozen blocks make other embeddings than the cache's
                reward = model([Image.open(p).convert("RGB") for p in samples["image_path"]], list(samples["prompt"])).cpu().numpy()
            else:
                reward = model.rewards_from_embeddings(images, texts).cpu().numpy()
        frames.append(with_oracle_labels(samples.assign(reward=reward, clip_score=(100 * (pooled * texts).sum(-1).clamp(min=0)).numpy())))
    return pd.concat(frames, ignore_index=True)


def curves(pooled: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """Per split ("seen prompts", "unseen prompts"): per scorer, the aligned share at n = 1, 2, ..."""
    result = {}
    for split, part in pooled.groupby("split", sort=True):
        smallest = int(part.groupby("prompt").size().min())
        if smallest < 2:
            raise BadInput(f"the pool's {SPLIT_NAMES.get(split, split)} have prompts with a single image; best-of-n needs several")
        ns = range(1, min(MAX_N, smallest) + 1)
        truth, prompts = part["oracle_label"].to_numpy(), part["prompt"].to_numpy()
        result[SPLIT_NAMES.get(split, split)] = {
            "learned reward": [best_of_n(part["reward"].to_numpy(), truth, prompts, n) for n in ns],
            "CLIP score": [best_of_n(part["clip_score"].to_numpy(), truth, prompts, n) for n in ns],
            "oracle (ceiling)": [best_of_n(truth, truth, prompts, n) for n in ns],
            "prompts": part["prompt"].nunique(),
            "pool per prompt": smallest,
        }
    return result


def pools_table(result: dict) -> str:
    """Rows: split and scorer; columns: n."""
    widest = max(len(c["oracle (ceiling)"]) for c in result.values())
    head = "".join(f"<th>n = {n}</th>" for n in range(1, widest + 1))
    rows = []
    for split, by_scorer in result.items():
        for scorer in ("learned reward", "CLIP score", "oracle (ceiling)"):
            cells = "".join(f"<td>{100 * v:.1f}%</td>" for v in by_scorer[scorer])
            rows.append(f"<tr><td>{split} ({by_scorer['prompts']} prompts, {by_scorer['pool per prompt']}+ images each)</td>"
                        f"<td>{scorer}</td>{cells}</tr>")
    return f"<table><tr><th>prompts</th><th>picked by</th>{head}</tr>{''.join(rows)}</table>"
