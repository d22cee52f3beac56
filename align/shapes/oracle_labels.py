"""The oracle's clean verdict for every rated sample: the truth the reward model is measured against."""

from __future__ import annotations

import numpy as np
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


# The reward's attribute names (reward_models.labels.ATTRIBUTES) -> the oracle's.
ORACLE_ATTRIBUTE = {"count": "count", "shape": "shape", "colour": "color", "background": "background"}


def with_oracle_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """labels plus `oracle_label` (1 aligned, 0 not) and, per attribute, `oracle_<attribute>` (1 right,
    0 wrong, NaN when the prompt does not state it; `oracle_malformed` is 1 when the image parses), judged once per image."""
    samples = labels.drop_duplicates("image_path")
    verdicts = {}
    for path, prompt in tqdm(zip(samples["image_path"], samples["prompt"]), total=len(samples), desc="oracle verdicts"):
        with Image.open(path) as image:
            judgement = judge(image.convert("RGB"), prompt)
        attributes = {name: judgement.attributes[oracle] for name, oracle in ORACLE_ATTRIBUTE.items()}
        attributes["malformed"] = judgement.parseable
        verdicts[path] = {"oracle_label": int(judgement.aligned)} | {
            f"oracle_{name}": np.nan if right is None else float(right) for name, right in attributes.items()}
    columns = pd.DataFrame.from_dict(verdicts, orient="index")
    return labels.join(columns, on="image_path")
