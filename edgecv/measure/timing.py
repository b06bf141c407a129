"""The timing harness behind bench, quantize's speed check and the scripts in benchmarks/: loaded models timed
against each other in interleaved rounds, each call timed with ``time.perf_counter_ns`` on inputs prepared
outside the timed region, summarised as percentiles and throughput with 95% bootstrap intervals over rounds.
Torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecv.core import stats
from edgecv.core.preprocess import to_model_input
from edgecv.runtimes import Loaded

if TYPE_CHECKING:
    from edgecv.measure.types import BenchOptions


def _timed(loaded: Loaded, prepared: Any, iters: int | None, seconds: float, least: int = 3) -> np.ndarray:
    """Wall times in ns of ``iters`` calls, or of as many as fit in ``seconds`` (at least ``least``)."""
    times = []
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while (len(times) < iters) if iters else (time.perf_counter_ns() < deadline or len(times) < least):
        t0 = time.perf_counter_ns()
        loaded.run_prepared(prepared)
        times.append(time.perf_counter_ns() - t0)
    return np.asarray(times, dtype=np.float64)


WARM_AT_LEAST = 3  # untimed calls a slow call gets before its rounds, however long they take


def warm_up(call: Callable[[], Any], calls: int, seconds: float) -> None:
    """``calls`` untimed calls, or past the first :data:`WARM_AT_LEAST` only as many as fit in ``seconds`` (one
    round's slice): a call of tens of milliseconds is warm after three (cnn-bn's int8-dynamic file at batch 64
    takes 38 ms a call on a 2-core Intel Xeon, and a slower CPU takes longer)."""
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    for i in range(calls):
        if i >= WARM_AT_LEAST and time.perf_counter_ns() > deadline:
            return
        call()


def _batch(images: np.ndarray, n: int) -> np.ndarray:
    """``n`` images: the first test images, repeated if the split is smaller."""
    reps = -(-n // len(images))
    return np.concatenate([images] * reps)[:n] if reps > 1 else images[:n]


@dataclass
class Subject:
    """A loaded variant waiting to be timed, and what it was timed at."""

    loaded: Loaded
    raw: np.ndarray
    rounds: dict[int, list[np.ndarray]] = field(default_factory=dict)  # batch size -> per-round call times (ns)

    def runs(self, b: int) -> bool:
        if self.loaded.fixed_batch:
            return self.loaded.fixed_batch == b
        return b <= (self.loaded.max_batch or b)


def time_interleaved(subjects: list[Subject], opts: BenchOptions, progress=None) -> None:
    """Time every subject at every batch size in ``opts.rounds`` interleaved rounds (shuffled order each
    round), filling ``subject.rounds``."""
    progress = progress or (lambda _msg: None)
    rng = np.random.default_rng(0)
    per_round_s = opts.seconds / opts.rounds
    per_round_iters = -(-opts.iters // opts.rounds) if opts.iters else None
    for b in sorted(set(opts.batch_sizes) | ({1} if opts.latency else set())):
        group = [s for s in subjects if s.runs(b)]
        prepared = {id(s): s.loaded.prepare(to_model_input(_batch(s.raw, b), s.loaded.spec)) for s in group}
        for s in group:
            warm_up(partial(s.loaded.run_prepared, prepared[id(s)]), opts.warmup, per_round_s)
            s.rounds[b] = []
        for r in range(opts.rounds):
            progress(f"timing batch {b}: round {r + 1}/{opts.rounds}")
            for k in rng.permutation(len(group)):
                s = group[k]
                s.rounds[b].append(_timed(s.loaded, prepared[id(s)], per_round_iters, per_round_s, opts.min_calls))
        del prepared


def summarise_timing(s: Subject, batch_sizes: tuple[int, ...]) -> dict[str, Any]:
    """Percentiles with intervals at batch 1, throughput per batch size, each round's median."""
    out: dict[str, Any] = {"latency_ms": {}, "latency_ci_ms": {}, "throughput": {}, "throughput_ci": {},
                           "batch_p99_ms": {}, "round_p50_ms": [], "timed_calls": 0}
    for b, rounds in sorted(s.rounds.items()):
        ms = [r / 1e6 for r in rounds]
        if b == 1:
            ci = stats.percentile_intervals(ms)
            out["latency_ms"] = {"mean": float(np.concatenate(ms).mean()), **{k: v[0] for k, v in ci.items()}}
            out["latency_ci_ms"] = {k: [v[1], v[2]] for k, v in ci.items()}
            out["round_p50_ms"] = [float(np.median(r)) for r in ms]
            out["timed_calls"] = int(sum(len(r) for r in ms))
        if b in batch_sizes:
            p50 = stats.percentile_intervals(ms, (50,))["p50"]
            images = b * s.loaded.details.get("requests", 1)  # OpenVINO's THROUGHPUT hint: a batch per stream
            out["throughput"][str(b)] = images / (p50[0] / 1e3)
            out["throughput_ci"][str(b)] = [images / (p50[2] / 1e3), images / (p50[1] / 1e3)]
            out["batch_p99_ms"][str(b)] = float(np.percentile(np.concatenate(ms), 99))
    return out


def measure(models: list[Loaded], raw: np.ndarray, opts: BenchOptions) -> list[dict[str, Any]]:
    """Time loaded models against each other in interleaved rounds on inputs made from the same ``raw`` uint8
    images; one :func:`summarise_timing` dict per model (for scripts in benchmarks/)."""
    subjects = [Subject(m, raw) for m in models]
    time_interleaved(subjects, opts)
    return [summarise_timing(s, opts.batch_sizes) for s in subjects]
