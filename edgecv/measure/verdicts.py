"""What the measurements mean: whether one variant is faster than another beyond noise, the Pareto front, the
recommendation, and the notes a user must hear (a quantisation that does not pay, fp16 that only saves size).
Used by bench for one model's variants and by studies across models. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgecv.core import stats
from edgecv.core.cpu import host_cpu

if TYPE_CHECKING:
    from edgecv.measure.types import BenchReport, VariantResult


def speed(a: VariantResult, b: VariantResult) -> stats.SpeedRatio | None:
    """How many times faster ``a`` is than ``b`` at batch 1: paired by round when both were timed in the same
    bench session, unpaired otherwise (e.g. two models of a study); None without batch-1 rounds."""
    if not a.round_p50_ms or not b.round_p50_ms:
        return None
    if a.session and a.session == b.session and len(a.round_p50_ms) == len(b.round_p50_ms):
        return stats.speed_ratio(a.round_p50_ms, b.round_p50_ms)
    return stats.unpaired_speed_ratio(a.round_p50_ms, b.round_p50_ms)


def faster(a: VariantResult, b: VariantResult, min_speedup: float = stats.MIN_SPEEDUP) -> bool:
    """``a`` is faster than ``b`` beyond noise (the whole 95% interval of the speed ratio >= min_speedup)."""
    ratio = speed(a, b)
    return ratio is not None and ratio.faster(min_speedup)


def pareto_front(rows: list[VariantResult], min_speedup: float = stats.MIN_SPEEDUP) -> list[bool]:
    """For each row, whether no other beats it: none is at least as accurate and faster beyond noise, and none
    is more accurate without being slower beyond noise. Rows without batch-1 timing are left off."""
    timed = [r for r in rows if r.round_p50_ms]
    return [r in timed and not any(
        o is not r and ((o.metrics["accuracy"] >= r.metrics["accuracy"] and faster(o, r, min_speedup))
                        or (o.metrics["accuracy"] > r.metrics["accuracy"] and not faster(r, o, min_speedup)))
        for o in timed) for r in rows]


def recommend(report: BenchReport, ref: VariantResult | None, max_accuracy_drop: float,
              min_speedup: float = stats.MIN_SPEEDUP) -> None:
    """The fastest variant within the accuracy budget that is faster than the reference beyond noise; the
    reference itself when none is. Among variants equally fast within noise, the more accurate, then smaller."""
    if ref is None or not ref.round_p50_ms:
        return  # the reference has no batch-1 timing (a fixed batch size) to compare with
    drop_pp, k = max_accuracy_drop, min_speedup
    floor = ref.metrics["accuracy"] - drop_pp / 100 - 1e-12
    ok = [r for r in report.variants if r is not ref and r.metrics["accuracy"] >= floor and faster(r, ref, k)
          and fp16_pays(r)]
    if not ok:
        report.recommended = ref.name
        report.recommendation = (
            f"keep {ref.name} ({Path(ref.file).name}): no variant within {drop_pp:g} pp of its accuracy is faster "
            f"beyond noise (the 95% interval of the speed-up must reach {k:g}x)")
        return
    fastest = min(ok, key=lambda r: r.latency_ms["p50"])
    tied = [r for r in ok if r is fastest or not faster(fastest, r, k)]
    best = max(tied, key=lambda r: (r.metrics["accuracy"], -r.size_bytes))
    ratio = speed(best, ref)
    assert ratio is not None
    why = ""
    if len(tied) > 1:
        others = ", ".join(r.name for r in tied if r is not best)
        why = f"; as fast within noise as {others}, it is the more accurate or smaller"
    report.recommended = best.name
    report.recommendation = (
        f"{best.name} ({Path(best.file).name}) is faster than {ref.name} beyond noise and within {drop_pp:g} pp of "
        f"its accuracy: {ratio.ratio:.2f}x (95% interval {ratio.low:.2f}-{ratio.high:.2f}x), p50 "
        f"{best.latency_ms['p50']:.3f} ms vs {ref.latency_ms['p50']:.3f} ms, accuracy {best.metrics['accuracy']:.2%} "
        f"vs {ref.metrics['accuracy']:.2%}{why}")


def fp16_pays(row: VariantResult) -> bool:
    """fp16 can be a speed recommendation only on CUDA or on a CPU with native fp16 arithmetic; elsewhere ONNX
    Runtime converts around each operator and fp16 only saves size (a timing win there is not to be relied on)."""
    return row.precision != "fp16" or row.provider != "cpu" or host_cpu().native_fp16


def slower_notes(rows: list[VariantResult], ref: VariantResult | None, min_speedup: float) -> list[str]:
    """A note for each quantised variant slower than the reference beyond noise at the largest batch size:
    that quantisation does not pay for this model on this host, and the user should hear it."""
    if ref is None:
        return []
    notes = []
    for r in rows:
        common = sorted(set(r.throughput_ci) & set(ref.throughput_ci), key=int)
        if r is ref or r.precision == "fp32" or not common:
            continue
        b = common[-1]
        if stats.below(r.throughput_ci[b], ref.throughput_ci[b], min_speedup):
            notes.append(f"{r.name} runs {r.throughput[b] / ref.throughput[b]:.2f}x as fast as {ref.name} at batch {b} "
                         "here, slower beyond noise: that quantisation does not pay for this model on this CPU"
                         + _profile_hint(ref, r, b))
    return notes


def profile_command(reference: str, other: str, batch: str | int | None = None) -> str:
    """The ``edgecv profile`` command that lines up two ONNX files layer by layer."""
    return f"edgecv profile {reference} {other}" + (f" --batch {batch}" if batch else "")


def _profile_hint(ref: VariantResult, row: VariantResult, batch: str) -> str:
    """Where to see which layers a slower ONNX file loses on, when both are ONNX files."""
    if not (ref.file.endswith(".onnx") and row.file.endswith(".onnx")):
        return ""
    return f" ({profile_command(Path(ref.file).name, Path(row.file).name, batch)} shows the layers it loses on)"


def fp16_note(rows: list[VariantResult]) -> str | None:
    """Why fp16 is never a speed recommendation here, when the rows hold an fp16 variant on such a CPU."""
    if any(not fp16_pays(r) for r in rows):
        return (f"fp16 only saves size here: this CPU ({host_cpu().describe()}) has no native fp16 arithmetic, so "
                "fp16 is never recommended for speed on it")
    return None
