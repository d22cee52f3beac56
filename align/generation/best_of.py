"""Best-of-n (rejection) sampling: draw n candidates per requested image, keep the one the reward likes best.

Candidate k of the image with seed s is drawn with seed s for k = 0 (so best_of=1 is plain
generation, and a best-of-n run pairs seed for seed with its baseline) and, for k > 0, with
a seed derived from (s, k). Candidates are a run directory of their own, RUN/candidates/
(images/ + samples.parquet with `request` and `reward`): what rejection sampling threw away
can be looked at, rated, or used as a pool for best-of-n curves. RUN/images/ holds the
winners, and RUN/samples.parquet keeps the requested seed, with the winner's `candidate_seed`,
its `reward` and `best_of`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from reward_models.reward_model import RewardModel

CANDIDATES = "candidates"
KEPT_FIELDS = [pa.field("best_of", pa.int64()), pa.field("candidate_seed", pa.int64()), pa.field("reward", pa.float64())]
CANDIDATE_FIELDS = [pa.field("request", pa.string()), pa.field("reward", pa.float64())]


def candidate_seed(seed: int, k: int) -> int:
    if k == 0:
        return seed
    return int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0] >> 1)  # fits int64


def plan_candidates(rows: list[dict], n: int) -> list[dict]:
    return [
        row | {"id": f"{row['id']}-{k}", "seed": candidate_seed(row["seed"], k), "image_path": f"images/{row['id']}-{k}.png",
               "request": row["id"]}
        for row in rows
        for k in range(n)
    ]


@torch.no_grad()
def score(reward: RewardModel, run: Path, rows: list[dict], batch_size: int = 64) -> np.ndarray:
    scores = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = []
        for row in batch:
            with Image.open(run / row["image_path"]) as image:
                images.append(image.convert("RGB"))
        scores.append(reward(images, [row["prompt"] for row in batch]).float().cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def keep_best(out: Path, rows: list[dict], candidates: list[dict], reward: RewardModel) -> list[dict]:
    """Score every candidate, copy each request's best into out/images; the rows to write for both runs."""
    rewards = score(reward, out / CANDIDATES, candidates)
    for candidate, value in zip(candidates, rewards):
        candidate["reward"] = float(value)
    n = len(candidates) // len(rows)
    kept = []
    for i, row in enumerate(rows):
        mine = candidates[i * n : (i + 1) * n]
        best = max(range(n), key=lambda k: mine[k]["reward"])  # the first of equals: k = 0 on a tie
        shutil.copyfile(out / CANDIDATES / mine[best]["image_path"], out / row["image_path"])
        kept.append(row | {"best_of": n, "candidate_seed": mine[best]["seed"], "reward": mine[best]["reward"]})
    return kept
