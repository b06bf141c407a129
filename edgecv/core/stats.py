"""The statistics behind every figure edgecv states, so that none is stated more precisely than it was
measured: bootstrap intervals of latency percentiles over interleaved timing rounds, a paired speed ratio
that calls a variant faster only beyond noise, and binomial intervals and McNemar's exact test for accuracy.

scipy (a scikit-learn dependency) does the binomial work; the bootstrap is plain numpy. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP = 1000  # resamples; the interval ends move by well under 1% between seeds at this count
MIN_SPEEDUP = 1.05  # "faster" needs the whole 95% interval of the speed ratio at or above this
PERCENTILES = (50, 90, 99)


def _tails() -> tuple[float, float]:
    a = (1 - CONFIDENCE) / 2 * 100
    return a, 100 - a


def percentile_intervals(rounds: Sequence[np.ndarray], qs: Sequence[int] = PERCENTILES, n_boot: int = BOOTSTRAP,
                         seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """``{"p50": (estimate, low, high), ...}`` of the per-call times pooled over ``rounds``, with a 95%
    bootstrap interval that resamples whole rounds (so drift between rounds widens it, as it should)."""
    parts = [np.asarray(r, dtype=np.float64) for r in rounds if len(r)]
    if not parts:
        raise ValueError("no timed calls")
    est = np.percentile(np.concatenate(parts), qs)
    picks = np.random.default_rng(seed).integers(0, len(parts), (n_boot, len(parts)))
    draws = _resampled_percentiles(parts, picks, qs)
    lo, hi = np.percentile(draws, _tails(), axis=0)
    return {f"p{q}": (float(e), float(min(e, a)), float(max(e, b))) for q, e, a, b in zip(qs, est, lo, hi,
                                                                                          strict=True)}


def _resampled_percentiles(parts: list[np.ndarray], picks: np.ndarray, qs: Sequence[int]) -> np.ndarray:
    """``np.percentile(np.concatenate([parts[j] for j in row]), qs)`` for every row of ``picks``, without building
    the resamples: the pooled calls are sorted once, and each resample's order statistics are found by binary
    search on how many of its calls lie at or below a position (the times each round was drawn, weighting each
    round's share of the sorted calls), then interpolated linearly as numpy's default does."""
    values = np.concatenate(parts)
    order = np.argsort(values, kind="stable")
    values = values[order]
    owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])[order]
    # share[i, j]: how many of round j's calls are among the i + 1 smallest
    share = np.cumsum(owner[:, None] == np.arange(len(parts)), axis=0)
    drawn = (picks[:, :, None] == np.arange(len(parts))).sum(axis=1)  # times each round was drawn
    n = drawn @ share[-1]

    def order_statistic(rank: np.ndarray) -> np.ndarray:
        lo, hi = np.zeros(len(rank), np.int64), np.full(len(rank), len(values) - 1)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            right = (drawn * share[mid]).sum(axis=1) <= rank
            lo, hi = np.where(right, mid + 1, lo), np.where(right, hi, mid)
        return values[lo]

    draws = np.empty((len(picks), len(qs)))
    for j, q in enumerate(qs):
        h = (n - 1) * (q / 100)
        k = np.floor(h).astype(np.int64)
        below, above, t = order_statistic(k), order_statistic(np.minimum(k + 1, n - 1)), h - k
        # as numpy's _lerp: from the lower end below t = 0.5 and from the upper end above, so results match
        draws[:, j] = np.where(t >= 0.5, above - (above - below) * (1 - t), below + (above - below) * t)
    return draws


@dataclass
class SpeedRatio:
    """How many times faster ``a`` is than ``b`` (b's time over a's), with its 95% interval."""

    ratio: float
    low: float
    high: float

    def faster(self, min_speedup: float = MIN_SPEEDUP) -> bool:
        """``a`` is faster than ``b`` beyond noise: the whole interval is at or above ``min_speedup``."""
        return self.low >= min_speedup

    def slower(self, min_speedup: float = MIN_SPEEDUP) -> bool:
        return self.high <= 1 / min_speedup


def below(interval: Sequence[float], other: Sequence[float], min_speedup: float = MIN_SPEEDUP) -> bool:
    """The whole 95% ``interval`` lies below the whole ``other`` by at least ``min_speedup`` (e.g. a throughput
    that is lower beyond noise)."""
    return interval[1] * min_speedup < other[0]


def speed_ratio(a_rounds: Sequence[float], b_rounds: Sequence[float], n_boot: int = BOOTSTRAP,
                seed: int = 0) -> SpeedRatio:
    """The paired speed ratio of two variants timed in the same interleaved rounds, from each round's median
    time: the geometric mean of ``b[r] / a[r]`` over rounds, with a bootstrap interval over rounds. Pairing by
    round cancels drift that slows both alike (another process, a frequency change)."""
    a, b = np.asarray(a_rounds, np.float64), np.asarray(b_rounds, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need the same rounds for both variants, got {a.shape} and {b.shape}")
    logs = np.log(b) - np.log(a)
    rng = np.random.default_rng(seed)
    means = logs[rng.integers(0, len(logs), (n_boot, len(logs)))].mean(axis=1)
    lo, hi = np.percentile(means, _tails())
    est = logs.mean()
    return SpeedRatio(float(np.exp(est)), float(np.exp(min(lo, est))), float(np.exp(max(hi, est))))


def unpaired_speed_ratio(a_rounds: Sequence[float], b_rounds: Sequence[float], n_boot: int = BOOTSTRAP,
                         seed: int = 0) -> SpeedRatio:
    """The speed ratio of two variants timed in different sessions (no shared rounds to pair): the geometric
    mean of b's round medians over a's, with each side's rounds resampled independently. Wider than the
    paired interval, as it should be: drift between the sessions is not cancelled."""
    la, lb = np.log(np.asarray(a_rounds, np.float64)), np.log(np.asarray(b_rounds, np.float64))
    if la.ndim != 1 or lb.ndim != 1 or not len(la) or not len(lb):
        raise ValueError("need per-round times for both variants")
    rng = np.random.default_rng(seed)
    diffs = (lb[rng.integers(0, len(lb), (n_boot, len(lb)))].mean(axis=1)
             - la[rng.integers(0, len(la), (n_boot, len(la)))].mean(axis=1))
    lo, hi = np.percentile(diffs, _tails())
    est = lb.mean() - la.mean()
    return SpeedRatio(float(np.exp(est)), float(np.exp(min(lo, est))), float(np.exp(max(hi, est))))


def accuracy_interval(correct: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy of ``correct`` out of ``total`` images."""
    from scipy.stats import binomtest

    if total < 1:
        raise ValueError("no images")
    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar(right: np.ndarray, reference_right: np.ndarray) -> dict[str, float | int]:
    """McNemar's exact test of two classifiers on the same images: only the images where exactly one of
    them is right count; under "equally accurate" each such image is a fair coin. Returns the counts and the
    two-sided p-value of the binomial test."""
    from scipy.stats import binomtest

    right, ref = np.asarray(right, bool), np.asarray(reference_right, bool)
    if right.shape != ref.shape:
        raise ValueError(f"cannot pair {right.shape} answers with {ref.shape}")
    only_this = int((right & ~ref).sum())
    only_ref = int((~right & ref).sum())
    differs = only_this + only_ref
    p = float(binomtest(only_this, differs, 0.5).pvalue) if differs else 1.0
    return {"differs_on": differs, "only_this_right": only_this, "only_reference_right": only_ref, "p_value": p}
