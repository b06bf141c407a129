"""The types bench, timing and verdicts share: what to measure (BenchOptions), one row of the bench table
(VariantResult) and the whole report (BenchReport), as bench.json holds them. Torch-free."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from edgecv.core import stats
from edgecv.core.errors import EdgecvError

SCHEMA = 2  # bench.json: 2 adds intervals, rounds, isolated memory, cold start and the paired accuracy test


@dataclass
class BenchOptions:
    """What to measure and for how long."""

    batch_sizes: tuple[int, ...] = (1, 8, 64)
    warmup: int = 10  # untimed calls per variant before each batch size's rounds (at least 3, then within a slice)
    iters: int | None = None  # timed calls per variant and batch size; None: as many as fit in ``seconds``
    seconds: float = 1.0  # timed seconds per variant and batch size, split over the rounds
    rounds: int = 10  # interleaved rounds; the intervals resample them
    max_accuracy_drop: float = 1.0  # percentage points of accuracy against fp32 for the recommendation
    min_speedup: float = stats.MIN_SPEEDUP  # "faster" needs the 95% interval of the ratio at or above this
    isolate: bool = True  # memory and cold start in a fresh process per variant
    latency: bool = True  # also time batch 1 for the latency percentiles when it is not in batch_sizes
    min_calls: int = 3  # timed calls per variant and round, however long they take
    max_latency_ms: float | None = None  # name the variant, setting and batch with the most images/s in this p99
    sweep_threads: tuple[int, ...] = ()  # thread settings timed after the table's own (edgecv.measure.sweep)
    end_to_end: bool = True  # also time each variant's Predictor from a photo's JPEG bytes to the label

    def validate(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise EdgecvError("--batch-sizes takes positive whole numbers, e.g. 1,8,64")
        if self.warmup < 0 or (self.iters is not None and self.iters < 1) or self.seconds <= 0:
            raise EdgecvError("--warmup must be >= 0, --iters >= 1 and --seconds > 0")
        if self.min_calls < 1:
            raise EdgecvError(f"at least one timed call per round is needed, got {self.min_calls}")
        if self.rounds < 2:
            raise EdgecvError(f"--rounds must be at least 2 (intervals resample rounds), got {self.rounds}")
        if self.max_accuracy_drop < 0:
            raise EdgecvError("--max-accuracy-drop must be >= 0")
        if self.min_speedup < 1:
            raise EdgecvError(f"--min-speedup must be >= 1, got {self.min_speedup}")
        if any(t < 1 for t in self.sweep_threads):
            raise EdgecvError(f"--threads takes whole numbers >= 1, got {', '.join(map(str, self.sweep_threads))}")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise EdgecvError(f"--max-latency-ms must be positive, got {self.max_latency_ms:g}")


@dataclass
class VariantResult:
    """One row of the bench table (the JSON schema's ``variants`` entries)."""

    name: str
    format: str
    precision: str
    provider: str
    file: str
    size_bytes: int
    latency_ms: dict[str, float]  # batch 1: mean, p50, p90, p99 of every timed call
    throughput: dict[str, float]  # images/s per batch size, from the median call
    metrics: dict[str, Any]
    pareto: bool = False
    latency_ci_ms: dict[str, list[float]] = field(default_factory=dict)  # p50/p90/p99: 95% [low, high]
    throughput_ci: dict[str, list[float]] = field(default_factory=dict)
    batch_p99_ms: dict[str, float] = field(default_factory=dict)  # per batch size: p99 ms of one batch call
    round_p50_ms: list[float] = field(default_factory=list)  # batch 1: each round's median, for paired ratios
    timed_calls: int = 0  # batch-1 calls behind the percentiles
    memory: dict[str, Any] | None = None  # from the variant's own process (see edgecv.measure.memprobe)
    cold_start_ms: dict[str, float] | None = None  # load (session creation) and first_run (first inference)
    session: str = ""  # one id per bench call: rows of one session were timed in the same rounds
    # edgecv.Predictor from a photo's JPEG bytes to the label (see edgecv.measure.endtoend): p50_ms, p50_ci_ms,
    # p99_ms, stages_ms (decode, preprocess, inference, postprocess medians), calls, photo
    end_to_end: dict[str, Any] | None = None


@dataclass
class BenchReport:
    """``{"env": ..., "variants": [...]}`` plus the recommendation and where each number comes from."""

    env: dict[str, Any]
    variants: list[VariantResult] = field(default_factory=list)
    reference: str | None = None
    recommended: str | None = None
    recommendation: str = ""
    notes: list[str] = field(default_factory=list)
    method: dict[str, Any] = field(default_factory=dict)
    profile_command: str | None = None  # edgecv profile on the ONNX fp32 and int8 files, when both were measured
    # with --max-latency-ms: the variant, setting and batch with the most images/s whose p99 call meets it
    within_budget: str = ""
    # with several --threads: every variant x setting x batch size (see edgecv.measure.sweep.points_of)
    sweep: list[dict[str, Any]] = field(default_factory=list)
    schema: int = SCHEMA
    # in memory only: each variant's metrics suite and class probabilities on the split it was scored on, so
    # that a report made in the same process (edgecv pipeline) does not score the same files again
    scores: dict[str, tuple[dict[str, Any], np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(replace(self, scores={}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        """A report read back from bench.json (an older schema reads with the new fields empty)."""
        known = set(VariantResult.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "variants"}
        fields.setdefault("schema", 1)
        return cls(**fields, variants=[VariantResult(**{k: v for k, v in row.items() if k in known})
                                       for row in data.get("variants", [])])

    def row(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.name == name)
