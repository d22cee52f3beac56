"""Print metrics.json files side by side as a markdown table (oracle alignment per category).

    python -m align.evaluation.baseline_table runs/demo/baseline-train/metrics.json runs/demo/baseline-heldout/metrics.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from align.shapes.prompts import CATEGORIES


def table(paths: list[str]) -> str:
    header = ["run", "images", "parseable", *CATEGORIES, "overall", "CLIP score"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in paths:
        metrics = json.loads(Path(path).read_text())
        oracle = metrics["oracle"]
        alignment = oracle["alignment"]["all"]
        cells = [Path(path).parent.name, str(oracle["images"]), f"{oracle['parseable']:.1%}"]
        cells += [f"{alignment[c]:.1%}" if c in alignment else "-" for c in CATEGORIES]
        cells += [f"{alignment['overall']:.1%}", f"{metrics['clip_score']['mean']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1:]))
