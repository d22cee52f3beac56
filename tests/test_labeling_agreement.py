"""Agreement statistics against published values."""

from __future__ import annotations

import pytest

from labeling_app.agreement import krippendorff_alpha_nominal, pairwise_agreement


def test_krippendorff_alpha_matches_krippendorffs_own_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders, 12 units,
    # missing values omitted; nominal alpha = 0.743.
    units = [
        [1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
        [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3],
    ]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_extremes():
    assert krippendorff_alpha_nominal([[1, 1], [0, 0], [1, 1]]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([[1, 0], [0, 1]]) < 0  # systematic disagreement
    assert krippendorff_alpha_nominal([[1, 1], [1, 1]]) is None  # no variation at all
    assert krippendorff_alpha_nominal([[1], [0]]) is None  # nothing rated twice


def test_pairwise_agreement_counts_pairs():
    assert pairwise_agreement([[1, 1, 0], [0, 0]]) == pytest.approx(2 / 4)
    assert pairwise_agreement([[1]]) is None
