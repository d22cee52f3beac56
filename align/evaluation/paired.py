"""Means and paired differences with 95% intervals: a bootstrap over prompts (scipy's).

Images of one prompt are not independent (a prompt the model cannot draw fails at every seed),
so the unit of resampling is the prompt: a resample draws prompts with replacement and keeps
all their images. Two models drawn from the same prompts and seeds are compared image for
image, and both are resampled with the same prompts (scipy's `paired=True`): prompt difficulty
cancels out of the difference, whose interval is far narrower than either model's own.
Percentile intervals, which stay defined when nothing changed (every difference zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None  # None: a single prompt, no interval
    high: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def excludes(self, value: float) -> bool:
        """True when the whole interval lies on one side of `value`."""
        return self.low is not None and (self.low > value or self.high < value)


def mean(values, prompts, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """The mean of per-image values (e.g. 1 = aligned) with its interval."""
    counts, (sums,) = _per_prompt(prompts, values)
    return _bootstrap(lambda c, s, axis=-1: s.sum(axis) / c.sum(axis), (counts, sums), resamples, seed)


def difference(base, other, prompts, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """mean(other) - mean(base), the two paired image by image (same prompt, same seed)."""
    counts, (base_sums, other_sums) = _per_prompt(prompts, base, other)
    return _bootstrap(lambda c, b, o, axis=-1: (o.sum(axis) - b.sum(axis)) / c.sum(axis),
                      (counts, base_sums, other_sums), resamples, seed)


def gap_closed(base, other, prompts, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Share of the gap to perfect alignment that `other` closed: (other - base) / (1 - base)."""
    counts, (base_sums, other_sums) = _per_prompt(prompts, base, other)

    def statistic(c, b, o, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample where the base is perfect
            return (o.sum(axis) - b.sum(axis)) / (c.sum(axis) - b.sum(axis))

    return _bootstrap(statistic, (counts, base_sums, other_sums), resamples, seed)


def _per_prompt(prompts, *values) -> tuple[np.ndarray, list[np.ndarray]]:
    """Images per prompt and each value's sum per prompt: the bootstrap's units."""
    _, prompt_index = np.unique(np.asarray(prompts, dtype=object).astype(str), return_inverse=True)
    counts = np.bincount(prompt_index).astype(float)
    sums = [np.bincount(prompt_index, weights=np.asarray(v, dtype=float)) for v in values]
    return counts, sums


def _bootstrap(statistic, columns: tuple[np.ndarray, ...], resamples: int, seed: int) -> Estimate:
    value = float(statistic(*columns))
    if len(columns[0]) < 2:
        return Estimate(value, None, None)
    result = stats.bootstrap(columns, statistic, paired=True, vectorized=True, n_resamples=resamples,
                             confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Estimate(value, float(low), float(high))
