"""Simulated raters: the shapes-world oracle's verdict, flipped with probability `noise`.

They rate through the same LabelStore calls as people (lease the next sample, rate it) with
rater kind "simulated", so overlap and "never the same sample twice" hold for them too.
"""

from __future__ import annotations

import random

from PIL import Image
from tqdm import tqdm

from align.errors import BadInput
from align.shapes.oracle import judge
from align.shapes.prompts import parse_prompt
from labeling_app.store import LabelStore

# The oracle's failed attribute -> the reason tag a human would tick.
REASON_OF_ATTRIBUTE = {"count": "wrong count", "color": "wrong colour", "background": "wrong background", "shape": "wrong shape"}


def oracle_verdict(store: LabelStore, sample_id: str) -> tuple[int, list[str]]:
    """(label, reason tags) the oracle gives this sample."""
    sample = store.sample(sample_id)
    with Image.open(sample.image_file(store.run_dir)) as image:
        try:
            judgement = judge(image.convert("RGB"), sample.prompt)
        except ValueError:
            raise BadInput(
                f"sample {sample_id} has the prompt {sample.prompt!r}, which is not a shapes-world prompt;"
                " simulated raters only judge shapes-world runs"
            ) from None
    if judgement.aligned:
        return 1, []
    failed = [a for a, ok in judgement.attributes.items() if ok is False]
    asked = parse_prompt(sample.prompt).shape
    if "shape" in failed and all(o.shape in (None, asked) for o in judgement.parse.objects):
        failed.remove("shape")  # only shapeless objects: that is "malformed", not a wrong shape
    reasons = [REASON_OF_ATTRIBUTE[a] for a in failed]
    if not judgement.parseable and "malformed" not in reasons:
        reasons.append("malformed")
    return 0, reasons


def simulate(store: LabelStore, raters: int, noise: float, seed: int = 0, prefix: str = "sim") -> dict[str, int]:
    """Rate until no simulated rater has anything left; returns ratings written per rater."""
    rng = random.Random(seed)
    names = [f"{prefix}-{i + 1}" for i in range(raters)]
    counts = dict.fromkeys(names, 0)
    verdicts: dict[str, tuple[int, list[str]]] = {}
    active = list(names)
    with tqdm(total=store.progress("").remaining, desc="simulated ratings", unit="rating") as bar:
        while active:
            for name in list(active):  # round robin, so raters share the samples as people would
                sample_id = store.next_sample(name)
                if sample_id is None:
                    active.remove(name)
                    continue
                if sample_id not in verdicts:
                    verdicts[sample_id] = oracle_verdict(store, sample_id)
                label, reasons = verdicts[sample_id]
                if rng.random() < noise:
                    label, reasons = 1 - label, []  # a slip of the rater: no reason behind it
                store.rate(name, sample_id, label, reasons, kind="simulated")
                counts[name] += 1
                bar.update()
    return counts
