"""The deployment sweep: every variant at every thread setting and batch size, and the answer to "which gives
the most images per second within my latency budget?".

bench times its table at the first thread setting; each further setting loads every variant again with that
many intra-op threads, times them in interleaved rounds with the same noise rule, and lets the sessions go
before the next setting starts, so thread pools that spin between calls never compete with another setting's.
OpenVINO's rows get one more setting of their own: its THROUGHPUT hint, where each timed call has one batch
in flight per stream (OpenVINO's optimal number of requests) and waits for all of them. A point is one
variant at one setting and batch size: the median call's images/s, and the p50 and p99 latency of one call
(under THROUGHPUT, of the call that waits for every stream's batch). Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecv.core.facts import Stated
from edgecv.measure.timing import Subject, summarise_timing, time_interleaved
from edgecv.runtimes import RuntimeOptions, load_model

if TYPE_CHECKING:
    from edgecv.measure.types import BenchOptions, VariantResult


def setting_label(threads: int | None, hint: str | None = None, requests: int | None = 1) -> str:
    """A sweep setting in words: '2 threads', 'default threads', 'OpenVINO THROUGHPUT, 2 streams' (just
    'OpenVINO THROUGHPUT' before its streams are known)."""
    if hint == "THROUGHPUT":
        if requests is None:
            return "OpenVINO THROUGHPUT"
        return f"OpenVINO THROUGHPUT, {requests} stream{'s' if requests != 1 else ''}"
    return f"{threads} thread{'s' if threads != 1 else ''}" if threads else "default threads"


def points_of(name: str, threads: int | None, summary: dict[str, Any], hint: str | None = None,
              requests: int = 1) -> list[dict[str, Any]]:
    """One variant's sweep points at one setting, from its :func:`summarise_timing` (or bench row)."""
    label = setting_label(threads, hint, requests)
    return [{"variant": name, "setting": label, "threads": threads, "hint": hint, "requests": requests,
             "batch": int(b), "images_per_s": rate, "p50_ms": int(b) * requests / rate * 1e3,
             "p99_ms": summary["batch_p99_ms"][b]}
            for b, rate in summary["throughput"].items() if b in summary["batch_p99_ms"]]


def settings_for(threads: tuple[int, ...], jobs: list[tuple[Path, RuntimeOptions]]) -> list[dict[str, Any]]:
    """The sweep's further settings: each thread count, then OpenVINO's THROUGHPUT hint where it has rows."""
    out: list[dict[str, Any]] = [{"threads": t} for t in threads]
    if any(options.runtime == "openvino" for _, options in jobs):
        out.append({"threads": None, "openvino_hint": "THROUGHPUT"})
    return out


def time_settings(jobs: list[tuple[Path, RuntimeOptions]], names: list[str], raws: list[np.ndarray],
                  settings: list[dict[str, Any]], opts: BenchOptions, facts: Stated | None = None,
                  progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every job a setting applies to (the THROUGHPUT hint: OpenVINO's alone) loaded again with it and timed,
    one setting's sessions at a time."""
    progress = progress or (lambda _msg: None)
    points: list[dict[str, Any]] = []
    for setting in settings:
        hint = setting.get("openvino_hint")
        chosen = [k for k, (_, options) in enumerate(jobs) if hint is None or options.runtime == "openvino"]
        label = setting_label(setting["threads"], hint, None)  # OpenVINO names its streams once it has loaded
        progress(f"sweep: loading every variant at {label}")
        subjects = [Subject(load_model(jobs[k][0], replace(jobs[k][1], **setting), facts), raws[k]) for k in chosen]
        time_interleaved(subjects, replace(opts, latency=False), lambda msg, t=label: progress(f"sweep, {t}: {msg}"))
        for k, s in zip(chosen, subjects, strict=True):
            points += points_of(names[k], setting["threads"], summarise_timing(s, opts.batch_sizes),
                                hint, s.loaded.details.get("requests", 1))
        subjects.clear()  # this setting's sessions go before the next one's start
    return points


def within_budget(points: list[dict[str, Any]], rows: list[VariantResult], ref: VariantResult | None,
                  max_latency_ms: float, max_accuracy_drop: float, pays: Callable[[VariantResult], bool]) -> str:
    """For a latency budget: the point with the most images/s whose p99 batch call is within
    ``max_latency_ms``, among variants within ``max_accuracy_drop`` points of the reference (and, by ``pays``,
    not fp16 where it only saves size); or, when none is, the one that comes closest. In words."""
    floor = ref.metrics["accuracy"] - max_accuracy_drop / 100 - 1e-12 if ref else -1.0
    eligible = {r.name: r for r in rows if r.metrics["accuracy"] >= floor and pays(r)}
    options = [p for p in points if p["variant"] in eligible]
    if not options:
        return ""
    fits = [p for p in options if p["p99_ms"] <= max_latency_ms]
    if fits:
        best = max(fits, key=lambda p: (p["images_per_s"], -p["p99_ms"]))
        return (f"within p99 {max_latency_ms:g} ms per call: {_setting(best, eligible)}, {best['images_per_s']:,.0f} "
                f"img/s with a p99 of {best['p99_ms']:.3f} ms per call ({len(fits)} of {len(options)} settings of "
                f"variants within {max_accuracy_drop:g} pp of the reference meet it)")
    best = min(options, key=lambda p: p["p99_ms"])
    return (f"no variant within {max_accuracy_drop:g} pp of the reference meets p99 {max_latency_ms:g} ms per call "
            f"at any setting; closest: {_setting(best, eligible)}, p99 {best['p99_ms']:.3f} ms "
            f"({best['images_per_s']:,.0f} img/s)")


def _setting(point: dict[str, Any], rows: dict[str, VariantResult]) -> str:
    return (f"{point['variant']} ({Path(rows[point['variant']].file).name}) at batch {point['batch']}, "
            f"{point['setting']}")
