"""labels.parquet as training data: checks, splits by prompt, and ratings averaged or kept per rater.

Held-out prompts never appear in training or validation. When the labels mark a held-out
split (the `split` column of generated runs), that is the test set; otherwise a seeded
fraction of prompts is. Validation prompts, for early stopping, are a seeded fraction of the
remaining ones.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reward_models.errors import RewardModelError

REQUIRED_COLUMNS = ("sample_id", "run_dir", "prompt", "category", "image_path", "rater", "label")
PARTS = ("train", "val", "test")
# A thumbs down's reason tags, as the labeling app writes them, and the attribute each one blames.
ATTRIBUTE_OF_REASON = {"wrong count": "count", "wrong shape": "shape", "wrong colour": "colour",
                       "wrong background": "background", "malformed": "malformed"}
ATTRIBUTES = tuple(ATTRIBUTE_OF_REASON.values())


def read_labels(path: str | Path) -> pd.DataFrame:
    """A label table that can train a reward model, or one sentence saying why not."""
    path = Path(path)
    if not path.is_file():
        raise RewardModelError(f"label file {path} does not exist")
    try:
        labels = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError):
        raise RewardModelError(f"label file {path} is not a readable parquet file") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in labels.columns]
    if missing:
        raise RewardModelError(f"label file {path} lacks the column(s) {', '.join(missing)}; export it with `t2i-align export`")
    if labels.empty:
        raise RewardModelError(f"label file {path} has no ratings")
    if not labels["label"].isin([0, 1]).all():
        raise RewardModelError(f"label file {path} has labels other than 0 and 1")
    if labels["label"].nunique() < 2:
        only = "thumbs up" if labels["label"].iloc[0] == 1 else "thumbs down"
        raise RewardModelError(f"label file {path} has only {only} ratings; a reward model needs both classes")
    if "reasons" in labels:
        unknown = sorted({str(tag) for tags in labels["reasons"] for tag in _tags(tags)} - set(ATTRIBUTE_OF_REASON))
        if unknown:
            raise RewardModelError(f"label file {path} has the reason tag {unknown[0]!r}, which is not one of"
                                   f" {', '.join(ATTRIBUTE_OF_REASON)}")
    absent = [p for p in labels["image_path"].unique() if not Path(p).is_file()]
    if absent:
        raise RewardModelError(f"{len(absent)} image(s) of label file {path} are missing, e.g. {absent[0]}")
    return labels.reset_index(drop=True)


def split_prompts(labels: pd.DataFrame, val_fraction: float, heldout_fraction: float, seed: int) -> dict[str, list[str]]:
    """Prompts per part (train, val, test); the same seed and labels give the same split."""
    prompts = sorted(labels["prompt"].unique())
    rng = random.Random(seed)
    marked = labels.loc[labels.get("split", pd.Series(dtype=str)).eq("heldout"), "prompt"] if "split" in labels else []
    if len(marked):
        test = sorted(set(marked))
    else:
        test = sorted(rng.sample(prompts, max(1, round(heldout_fraction * len(prompts)))))
    rest = [p for p in prompts if p not in set(test)]
    if len(rest) < 2:
        raise RewardModelError(f"the labels have {len(rest)} training prompt(s) outside the held-out set; at least 2 are needed")
    val = sorted(rng.sample(rest, min(len(rest) - 1, max(1, round(val_fraction * len(rest))))))
    train = [p for p in rest if p not in set(val)]
    return {"train": train, "val": val, "test": test}


def _tags(tags) -> list:
    return [] if tags is None else list(tags)


def attribute_targets(labels: pd.DataFrame) -> pd.DataFrame:
    """Per rating and attribute: 1 right, 0 wrong, NaN unknown.

    A thumbs up says every attribute is right; a thumbs down with reasons says the tagged ones
    are wrong and the rest right; a thumbs down without reasons (a rater may skip them, and
    labels without a reasons column have none) says nothing about any one attribute.
    """
    targets = np.full((len(labels), len(ATTRIBUTES)), np.nan)
    tags = labels["reasons"] if "reasons" in labels else [None] * len(labels)
    for row, (label, reasons) in enumerate(zip(labels["label"], tags)):
        blamed = {ATTRIBUTE_OF_REASON[t] for t in _tags(reasons)}
        if label == 1 or blamed:
            targets[row] = [0.0 if a in blamed else 1.0 for a in ATTRIBUTES]
    return pd.DataFrame(targets, columns=[f"target_{a}" for a in ATTRIBUTES], index=labels.index)


def training_rows(labels: pd.DataFrame, ratings: str) -> pd.DataFrame:
    """One row per sample with the mean label as target ("mean"), or one row per rating ("per_rater").

    Attribute targets (target_count, ...) are averaged over the ratings that say something
    about that attribute, NaN where none does.
    """
    labels = labels.join(attribute_targets(labels))
    if ratings == "per_rater":
        return labels.assign(target=labels["label"].astype(float), n_ratings=1)
    grouped = labels.groupby("image_path", sort=False)
    rows = grouped.first().reset_index()
    rows["target"] = grouped["label"].mean().to_numpy()
    rows["n_ratings"] = grouped["label"].size().to_numpy()
    for column in (f"target_{a}" for a in ATTRIBUTES):
        rows[column] = grouped[column].mean().to_numpy()  # pandas' mean skips NaN
    return rows
