"""`edgecv bench`: latency, throughput, memory and the full metrics suite for every variant of a model, on
the same inputs, with the provider that really ran named.

Timing is honest: inputs are prepared (and moved to the device) outside the timed region, warm-up runs are
excluded, every variant gets the same images, each call is timed with ``time.perf_counter_ns`` and waits for
the device. Torch-free for ONNX files.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.cpu import host_cpu
from edgecv.errors import EdgecvError, ModelError
from edgecv.evaluate import load_split, score
from edgecv.metrics import agreement
from edgecv.modeldata import data_source
from edgecv.preprocess import to_model_input
from edgecv.runtimes import Loaded, RuntimeOptions, available, load_model, runtime_for

VARIANT_FILES = ("checkpoints/best.pt", "model.pt", "model.onnx", "model.fp16.onnx", "model.int8.onnx",
                 "model.int8-dynamic.onnx", "model.uint8-input.onnx", "model.uint8-input.pt")


@dataclass
class BenchOptions:
    """What to measure and for how long."""

    batch_sizes: tuple[int, ...] = (1, 8, 64)
    warmup: int = 10  # untimed calls before each measurement
    iters: int | None = None  # timed calls per measurement; None: as many as fit in ``seconds``
    seconds: float = 1.0
    max_accuracy_drop: float = 1.0  # percentage points of accuracy against fp32 for the recommendation

    def validate(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise EdgecvError("--batch-sizes takes positive whole numbers, e.g. 1,8,64")
        if self.warmup < 0 or (self.iters is not None and self.iters < 1) or self.seconds <= 0:
            raise EdgecvError("--warmup must be >= 0, --iters >= 1 and --seconds > 0")
        if self.max_accuracy_drop < 0:
            raise EdgecvError("--max-accuracy-drop must be >= 0")


@dataclass
class VariantResult:
    """One row of the bench table (the JSON schema's ``variants`` entries)."""

    name: str
    format: str
    precision: str
    provider: str
    file: str
    size_bytes: int
    latency_ms: dict[str, float]
    throughput: dict[str, float]
    peak_rss_bytes: int | None
    metrics: dict[str, Any]
    pareto: bool = False


@dataclass
class BenchReport:
    """``{"env": ..., "variants": [...]}`` plus the recommendation."""

    env: dict[str, Any]
    variants: list[VariantResult] = field(default_factory=list)
    reference: str | None = None
    recommended: str | None = None
    recommendation: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        """A report read back from bench.json."""
        fields = {k: v for k, v in data.items() if k != "variants"}
        return cls(**fields, variants=[VariantResult(**v) for v in data.get("variants", [])])


def variants_in(run_dir: Path) -> list[Path]:
    """Every model file of a run directory, in a fixed order."""
    found = [run_dir / name for name in VARIANT_FILES if (run_dir / name).is_file()]
    if not found:
        raise ModelError(f"{run_dir} holds no model files: run edgecv train, export and quantize first")
    return found


def _reset_peak_rss() -> None:
    """Linux lets a process reset its peak RSS (VmHWM) by writing 5 to clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale
    except (ImportError, OSError):
        return None


def _timed(loaded: Loaded, prepared: Any, warmup: int, iters: int | None, seconds: float) -> np.ndarray:
    """Per-call wall times in ns, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        loaded.run_prepared(prepared)
    times = []
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    while (len(times) < iters) if iters else (time.perf_counter_ns() < deadline or len(times) < 5):
        t0 = time.perf_counter_ns()
        loaded.run_prepared(prepared)
        times.append(time.perf_counter_ns() - t0)
    return np.asarray(times, dtype=np.float64)


def _batch(images: np.ndarray, n: int) -> np.ndarray:
    """``n`` images: the first test images, repeated if the split is smaller."""
    reps = -(-n // len(images))
    return np.concatenate([images] * reps)[:n] if reps > 1 else images[:n]


def measure(loaded: Loaded, raw: np.ndarray, opts: BenchOptions) -> tuple[dict[str, float], dict[str, float]]:
    """Batch-1 latency percentiles (ms) and images/s per batch size, on inputs made from ``raw`` uint8
    images and prepared before timing."""
    latency: dict[str, float] = {}
    throughput: dict[str, float] = {}
    sizes = sorted(set(opts.batch_sizes) | {1})
    for b in sizes:
        if loaded.fixed_batch and b != loaded.fixed_batch:
            continue
        prepared = loaded.prepare(to_model_input(_batch(raw, b), loaded.spec))
        times = _timed(loaded, prepared, opts.warmup, opts.iters, opts.seconds)
        if b == 1:
            ms = times / 1e6
            latency = {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
                       "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99))}
        if b in opts.batch_sizes:
            throughput[str(b)] = float(b / (np.median(times) / 1e9))
    return latency, throughput


def environment(options: RuntimeOptions) -> dict[str, Any]:
    """Where the numbers come from: CPU, cores, threads, OS, Python and runtime versions."""
    import onnxruntime

    cpu = host_cpu()
    torch_version = sys.modules["torch"].__version__ if "torch" in sys.modules else None
    return {
        "cpu": cpu.name, "cpu_features": cpu.describe(), "cores": os.cpu_count(),
        "threads": options.threads or f"runtime default ({os.cpu_count()} cores)",
        "os": platform.platform(), "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__, "torch": torch_version,
        "provider_requested": options.provider, "providers_available": available(),
    }


def _pareto(rows: list[VariantResult]) -> None:
    """Mark variants no other variant beats on both accuracy and p50 latency."""
    for r in rows:
        acc, lat = r.metrics["accuracy"], r.latency_ms.get("p50", float("inf"))
        r.pareto = not any(
            o is not r and o.metrics["accuracy"] >= acc and o.latency_ms.get("p50", float("inf")) <= lat
            and (o.metrics["accuracy"] > acc or o.latency_ms.get("p50", float("inf")) < lat) for o in rows)


def _recommend(report: BenchReport, ref: VariantResult | None, drop_pp: float) -> None:
    if ref is None or not report.variants:
        return
    floor = ref.metrics["accuracy"] - drop_pp / 100 - 1e-12
    ok = [r for r in report.variants if r.metrics["accuracy"] >= floor and r.latency_ms]
    if not ok:
        return  # no variant ran at batch 1 (all have another fixed batch size)
    best = min(ok, key=lambda r: r.latency_ms["p50"])
    report.recommended = best.name
    speed = (f" vs {ref.latency_ms['p50']:.3f} ms ({ref.latency_ms['p50'] / best.latency_ms['p50']:.2f}x)"
             if ref.latency_ms else "")
    report.recommendation = (
        f"{best.name} ({Path(best.file).name}) is the fastest variant within {drop_pp:g} pp of {ref.name}'s "
        f"accuracy: p50 {best.latency_ms['p50']:.3f} ms{speed}, accuracy {best.metrics['accuracy']:.2%} vs "
        f"{ref.metrics['accuracy']:.2%}")


def bench(models: list[Path], options: RuntimeOptions | None = None, opts: BenchOptions | None = None, *,
          data: str | None = None, data_root: str | None = None, progress=None) -> BenchReport:
    """Benchmark model files (or every variant of run directories) on one provider."""
    options, opts = options or RuntimeOptions(), opts or BenchOptions()
    opts.validate()
    progress = progress or (lambda _msg: None)
    report = BenchReport(env={})
    files: list[Path] = []
    for m in map(Path, models):
        files.extend(_runnable(variants_in(m), report) if m.is_dir() else [m])
    split, split_key = None, None
    probs_of: dict[str, np.ndarray] = {}
    for path in files:
        progress(f"loading {path.name}")
        gc.collect()
        _reset_peak_rss()
        try:
            loaded = load_model(path, options)
        except ModelError as exc:
            if "no edgecv spec" in str(exc):
                raise ModelError(f"{path} has no edgecv spec, so bench cannot tell its labels and preprocessing; "
                                 "edgecv eval takes them as --labels, --mean, --std and --input-shape") from None
            raise
        key = (data_source(path, loaded.spec, data, data_root), tuple(loaded.spec.input_shape))
        if key != split_key:  # variants of one model share one split: the same images for all
            split, split_key = load_split(path, loaded.spec, True, data, data_root, "test"), key
        progress(f"{loaded.name}: timing")
        latency, throughput = measure(loaded, split.raw, opts)
        progress(f"{loaded.name}: scoring")
        model_split = replace(split, x=to_model_input(split.raw, loaded.spec))
        metrics, probs = score(loaded, model_split)
        peak = _peak_rss()
        name = _unique(loaded.name + (" uint8-input" if loaded.spec.dtype == "uint8" else ""), report)
        probs_of[name] = probs
        report.variants.append(VariantResult(
            name=name, format=loaded.format, precision=loaded.precision, provider=loaded.provider,
            file=str(path), size_bytes=path.stat().st_size, latency_ms=latency, throughput=throughput,
            peak_rss_bytes=peak,
            metrics={"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
                     "loss": metrics["loss"], "top5_accuracy": metrics["top5_accuracy"], "agreement": None,
                     "max_prob_diff": None},
        ))
        del loaded
    ref = next((r for r in report.variants if r.format == "onnx" and r.precision == "fp32"), None) or \
        next((r for r in report.variants if r.precision == "fp32"), None)
    if ref is not None:
        report.reference = ref.name
        for r in report.variants:
            if probs_of[r.name].shape == probs_of[ref.name].shape:
                r.metrics.update(agreement(probs_of[r.name], probs_of[ref.name]))
    report.env = environment(options)  # after loading, so the torch version shows when torch ran
    _pareto(report.variants)
    _recommend(report, ref, opts.max_accuracy_drop)
    report.variants.sort(key=lambda r: r.latency_ms.get("p50", float("inf")))
    return report


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _runnable(files: list[Path], report: BenchReport) -> list[Path]:
    """A run directory's files, without the torch ones where torch is not installed (the base install)."""
    torch_files = [f for f in files if runtime_for(f) in ("torch", "torchscript")]
    if not torch_files or _torch_available():
        return files
    report.notes.append(f"skipped {', '.join(f.name for f in torch_files)}: torch is not installed "
                        "(pip install 'edgecv[train]')")
    return [f for f in files if f not in torch_files]


def _unique(name: str, report: BenchReport) -> str:
    names = {r.name for r in report.variants}
    candidate, i = name, 2
    while candidate in names:
        candidate, i = f"{name} ({i})", i + 1
    return candidate
