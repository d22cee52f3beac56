"""What the admin tab shows: ratings per rater and category, thumbs-up rate, pace, agreement."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from labeling_app.agreement import krippendorff_alpha_nominal, pairwise_agreement
from labeling_app.store import LabelStore


def summary_markdown(store: LabelStore) -> str:
    ratings = pd.DataFrame(store.live_ratings())
    progress = store.progress(rater="")
    broken = store.broken_samples()
    head = (
        f"**{progress.run_total}** ratings · **{progress.remaining}** still needed · overlap {store.overlap}"
        f" · {len(broken)} sample(s) left out for unreadable images"
    )
    if ratings.empty:
        return head + "\n\nNo ratings yet."
    ratings["created_at"] = pd.to_datetime(ratings["created_at"], utc=True)
    sections = [head, _table("Per rater", _by(ratings, ["rater", "rater_kind"]))]
    sections.append(_table("Per category", _by(ratings, ["category"])))
    hourly = ratings.set_index("created_at").resample("1h").size().rename("ratings").tail(24)
    hourly.index = hourly.index.strftime("%Y-%m-%d %H:00 UTC")
    sections.append(_table("Ratings per hour (last 24 hours with ratings)", hourly.to_frame()))
    sections.append(agreement_markdown(ratings))
    return "\n\n".join(sections)


def agreement_markdown(ratings: pd.DataFrame) -> str:
    units: dict[str, list[int]] = defaultdict(list)
    for sample_id, label in zip(ratings["sample_id"], ratings["label"]):
        units[sample_id].append(int(label))
    shared = [labels for labels in units.values() if len(labels) > 1]
    if not shared:
        return "### Agreement\n\nNo sample has more than one rating yet."
    alpha = krippendorff_alpha_nominal(shared)
    pairwise = pairwise_agreement(shared)
    alpha_text = "undefined (every label identical)" if alpha is None else f"{alpha:.3f}"
    return (
        f"### Agreement\n\nOver {len(shared)} samples rated more than once: Krippendorff's alpha (nominal)"
        f" **{alpha_text}**, pairwise percent agreement **{100 * pairwise:.1f}%**."
    )


def _by(ratings: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = ratings.groupby(keys)["label"]
    table = pd.DataFrame({"ratings": grouped.size(), "thumbs up": (100 * grouped.mean()).round(1).astype(str) + "%"})
    return table


def _table(title: str, frame: pd.DataFrame) -> str:
    frame = frame.reset_index()
    header = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return f"### {title}\n\n" + "\n".join([header, rule, *body])


# Characters that end a table cell or start Markdown or HTML markup.
_MARKUP = set("\\|`*_[]<>#~&!")


def _cell(value: object) -> str:
    """A table cell that shows its text literally, whatever it holds (categories and names come from the run
    dir): one line, markup characters escaped, so a `|` cannot split the row and spoof its figures."""
    return "".join("\\" + c if c in _MARKUP else c for c in " ".join(str(value).split()))
