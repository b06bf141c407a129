"""What a deployment can afford, and the answer across models: constraints on latency, size and accuracy, the
row that best meets them (or the closest and what it misses), and the Pareto front across every model and
format. The study runs them and its page shows them. Torch-free."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.core import stats
from edgecv.core.errors import EdgecvError
from edgecv.measure.verdicts import faster, pareto_front


def _worst_p50(row: Any) -> float | None:
    """The top of a row's 95% p50 interval (its p50 where no interval was measured); None without batch 1."""
    lat = row.latency_ms.get("p50")
    return None if lat is None else (row.latency_ci_ms.get("p50") or [lat, lat])[1]


@dataclass
class Constraints:
    """What a deployment can afford; None: no limit."""

    max_latency_ms: float | None = None  # batch-1 p50, its whole 95% interval must be within
    max_size_mb: float | None = None  # file size in MB (10^6 bytes)
    min_accuracy: float | None = None  # test accuracy in percent

    def validate(self) -> None:
        for name, value in (("--max-latency-ms", self.max_latency_ms), ("--max-size-mb", self.max_size_mb)):
            if value is not None and value <= 0:
                raise EdgecvError(f"{name} must be positive, got {value:g}")
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 100:
            raise EdgecvError(f"--min-accuracy is a percentage from 0 to 100, got {self.min_accuracy:g}")

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def describe(self) -> str:
        parts = []
        if self.max_latency_ms is not None:
            parts.append(f"p50 <= {self.max_latency_ms:g} ms")
        if self.max_size_mb is not None:
            parts.append(f"size <= {self.max_size_mb:g} MB")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {self.min_accuracy:g}%")
        return ", ".join(parts)

    def shortfalls(self, row: Any) -> dict[str, str]:
        """What ``row`` (a bench VariantResult) misses, in words; empty when it meets every limit. Latency counts
        as met only when the whole 95% interval of its p50 is within the limit."""
        missed = {}
        lat = row.latency_ms.get("p50")
        if self.max_latency_ms is not None:
            worst = _worst_p50(row)
            if worst is None or worst > self.max_latency_ms:
                missed["latency"] = ("no batch-1 timing" if worst is None else
                                     f"p50 {lat:.3f} ms, interval up to {worst:.3f} ms > {self.max_latency_ms:g} ms")
        if self.max_size_mb is not None and row.size_bytes > self.max_size_mb * 1e6:
            missed["size"] = f"{row.size_bytes / 1e6:.2f} MB > {self.max_size_mb:g} MB"
        acc = 100 * row.metrics["accuracy"]
        if self.min_accuracy is not None and acc < self.min_accuracy:
            missed["accuracy"] = f"{acc:.2f}% < {self.min_accuracy:g}%"
        return missed

    def distance(self, row: Any) -> float:
        """How far ``row`` is from meeting every limit: the sum of its relative shortfalls."""
        total = 0.0
        if self.max_latency_ms is not None:
            worst = _worst_p50(row)
            total += 1e9 if worst is None else max(0.0, worst / self.max_latency_ms - 1)
        if self.max_size_mb is not None:
            total += max(0.0, row.size_bytes / (self.max_size_mb * 1e6) - 1)
        if self.min_accuracy is not None:
            total += max(0.0, (self.min_accuracy - 100 * row.metrics["accuracy"]) / max(self.min_accuracy, 1e-9))
        return total


@dataclass
class Answer:
    """The row that best meets the constraints, or the closest one and what it misses."""

    constraints: str
    row: str | None  # "model: variant"
    met: bool
    text: str
    misses: dict[str, str] = field(default_factory=dict)


def row_label(model: str, row: Any) -> str:
    """"model: variant", how a study names a row."""
    return f"{model}: {row.name}"


def answer(rows: list[tuple[str, Any]], constraints: Constraints) -> Answer | None:
    """The most accurate (model, row) pair that meets every constraint, the faster beyond noise among equally
    accurate ones, then the smaller; or, when none meets them all, the closest and what it misses."""
    if not constraints.any() or not rows:
        return None
    ok = [(m, r) for m, r in rows if not constraints.shortfalls(r)]
    wanted = constraints.describe()
    if ok:
        top = max(r.metrics["accuracy"] for _, r in ok)
        best = [(m, r) for m, r in ok if r.metrics["accuracy"] == top]
        model, row = min(best, key=lambda mr: (sum(faster(o, mr[1]) for _, o in best), mr[1].size_bytes,
                                               mr[1].latency_ms.get("p50", float("inf"))))
        ci = row.latency_ci_ms.get("p50")
        text = (f"best under {wanted}: {row_label(model, row)} ({Path(row.file).name}): accuracy "
                f"{row.metrics['accuracy']:.2%}, p50 {row.latency_ms['p50']:.3f} ms"
                + (f" (95% interval {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
                + f", {row.size_bytes / 1e6:.2f} MB; {len(ok)} of {len(rows)} rows meet the constraints")
        return Answer(wanted, row_label(model, row), True, text)
    model, row = min(rows, key=lambda mr: constraints.distance(mr[1]))
    misses = constraints.shortfalls(row)
    text = (f"no row meets {wanted}; the closest is {row_label(model, row)}, which misses "
            + "; ".join(f"{k} ({v})" for k, v in misses.items()))
    return Answer(wanted, row_label(model, row), False, text, misses)


def study_front(rows: list[tuple[str, Any]]) -> list[bool]:
    """The Pareto front across every model and format, with the noise rule (unpaired between models)."""
    return pareto_front([r for _, r in rows], stats.MIN_SPEEDUP)
