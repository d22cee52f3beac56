"""Inter-rater agreement on samples rated more than once: Krippendorff's alpha and pairwise agreement.

A "unit" is the list of labels one sample received; units with fewer than two labels carry
no information about agreement and are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import combinations


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal labels, any number of raters per unit; None when undefined."""
    coincidences: Counter = Counter()
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        for a, b in combinations(labels, 2):
            coincidences[a, b] += 1 / (m - 1)
            coincidences[b, a] += 1 / (m - 1)
    totals: Counter = Counter()
    for (c, _), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    observed = sum(w for (c, k), w in coincidences.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n <= 1 or expected == 0:
        return None  # fewer than two pairable values, or every label identical: no variation to agree on
    return 1.0 - (n - 1) * observed / expected


def pairwise_agreement(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Share of rater pairs on the same sample that gave the same label; None without any pair."""
    agree = pairs = 0
    for labels in units:
        for a, b in combinations(labels, 2):
            pairs += 1
            agree += a == b
    return agree / pairs if pairs else None
