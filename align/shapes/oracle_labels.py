"""The oracle's clean verdict for every rated sample: the truth the reward model is measured against."""

from __future__ import annotations

import pandas as pd
from PIL import Image
from tqdm import tqdm

from align.errors import BadInput
from align.shapes.oracle import judge
from align.shapes.prompts import parse_prompt


def check_shapes_prompts(labels: pd.DataFrame, source: str) -> None:
    outside = [p for p in labels["prompt"].unique() if parse_prompt(p) is None]
    if outside:
        raise BadInput(
            f"{source} comes from another prompt set: {len(outside)} prompt(s) such as {outside[0]!r} are not"
            " shapes-world prompts (use a config with world: none for them)"
        )


def with_oracle_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """labels plus `oracle_label` (1 aligned, 0 not), judged once per image."""
    samples = labels.drop_duplicates("image_path")
    verdicts = {}
    for path, prompt in tqdm(zip(samples["image_path"], samples["prompt"]), total=len(samples), desc="oracle verdicts"):
        with Image.open(path) as image:
            verdicts[path] = int(judge(image.convert("RGB"), prompt).aligned)
    return labels.assign(oracle_label=labels["image_path"].map(verdicts))
