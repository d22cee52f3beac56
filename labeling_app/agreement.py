"""Inter-rater agreement on samples rated more than once: Krippendorff's alpha and pairwise agreement.

A "unit" is the list of labels one sample received; units with fewer than two labels carry
no information about agreement and are ignored.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import combinations

import krippendorff
import numpy as np


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal labels, any number of raters per unit; None when undefined."""
    pairable = [list(labels) for labels in units if len(labels) >= 2]
    codes = {label: code for code, label in enumerate(sorted({label for labels in pairable for label in labels}, key=repr))}
    if len(codes) < 2:
        return None  # nothing rated twice, or every label identical: no variation to agree on
    # Nominal alpha depends only on the labels within each unit, not on who gave them: row j of
    # the library's raters x units matrix holds each unit's j-th label, NaN where it has fewer.
    matrix = np.full((max(map(len, pairable)), len(pairable)), np.nan)
    for unit, labels in enumerate(pairable):
        matrix[: len(labels), unit] = [codes[label] for label in labels]
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))


def pairwise_agreement(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Share of rater pairs on the same sample that gave the same label; None without any pair."""
    agree = pairs = 0
    for labels in units:
        for a, b in combinations(labels, 2):
            pairs += 1
            agree += a == b
    return agree / pairs if pairs else None
