"""`edgecv bench`: latency, throughput, memory, cold start and the full metrics suite for every variant of a
model, on the same inputs, with the provider that really ran named, and no figure finer than its noise.

- Latency: every variant is loaded first, then timed in interleaved rounds (each round times every variant
  for an equal slice, in a shuffled order), so drift on the host hits all variants alike. Percentiles come
  with a 95% bootstrap interval over rounds, and one variant is called faster than another only when the
  whole 95% interval of their paired speed ratio is at or above ``min_speedup`` (see :mod:`edgecv.core.stats`).
  The Pareto front and the recommendation use that rule.
- Memory and cold start: each variant in a fresh process of its own (:mod:`edgecv.measure.memprobe`).
- Accuracy: a 95% Wilson interval, and against the reference variant McNemar's exact test on the same images.
- End to end: each variant's :class:`edgecv.Predictor`, on the session timed above, from a photo's JPEG bytes to
  the label, split into decode, preprocess, inference and postprocess (:mod:`edgecv.measure.endtoend`).

Inputs are prepared (and moved to the device) outside the timed region, warm-up calls are excluded, each call
is timed with ``time.perf_counter_ns`` and waits for the device. Torch-free for ONNX files.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core import stats
from edgecv.core.cpu import host_cpu
from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.facts import Stated
from edgecv.core.metrics import agreement
from edgecv.measure.endtoend import describe, sample_photo, time_end_to_end
from edgecv.measure.evaluate import load_split, score, spec_notes
from edgecv.measure.memprobe import measure_isolated, need_of, start_probe_servers
from edgecv.measure.sweep import points_of, settings_for, time_settings, within_budget
from edgecv.measure.timing import WARM_AT_LEAST, Subject, summarise_timing, time_interleaved
from edgecv.measure.types import SCHEMA, BenchOptions, BenchReport, VariantResult
from edgecv.measure.verdicts import fp16_note, fp16_pays, pareto_front, profile_command, recommend, slower_notes
from edgecv.modeldata import data_source
from edgecv.rundir import INT8_STATIC, RunDir
from edgecv.runtimes import ONNX_RUNTIMES, Loaded, RuntimeOptions, available, load_model, runtime_for
from edgecv.runtimes.openvino_rt import require_openvino
from edgecv.serve.predictor import Predictor

__all__ = ["SCHEMA", "BenchOptions", "BenchReport", "VariantResult", "bench", "variants_in"]

def variants_in(run_dir: Path) -> list[Path]:
    """Every model file of a run directory, in a fixed order."""
    found = RunDir(run_dir).variants()
    if not found:
        raise ModelError(f"{run_dir} holds no model files: run edgecv train, export and quantize first")
    return found


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
        "openvino": sys.modules["openvino"].__version__ if "openvino" in sys.modules else None,
        "provider_requested": options.provider, "providers_available": available(),
    }


def _pareto(rows: list[VariantResult], min_speedup: float) -> None:
    for r, on in zip(rows, pareto_front(rows, min_speedup), strict=True):
        r.pareto = on




def _memory(loaded: Loaded, options: RuntimeOptions, opts: BenchOptions,
            report: BenchReport) -> dict[str, Any] | None:
    """Memory and cold start of one variant from a fresh process; a failed probe is a note, not an error."""

    c, h, w = loaded.spec.input_shape
    shape = (h, w, c) if loaded.spec.layout == "NHWC" else (c, h, w)
    first = loaded.fixed_batch or 1
    largest = max(opts.batch_sizes)
    big = loaded.fixed_batch or min(largest, loaded.max_batch or largest)
    try:
        return measure_isolated(loaded.file, asdict(options), shape, loaded.spec.dtype, first, big,
                                spec_json=loaded.spec.to_json())
    except RuntimeError as exc:
        report.notes.append(str(exc))
        return None


def _accuracy_rows(rows: list[VariantResult], right: dict[str, np.ndarray], ref: VariantResult | None,
                   probs: dict[str, np.ndarray]) -> None:
    """Each variant's agreement with the reference and McNemar's test against it on the same images."""
    for r in rows:
        if ref is not None and probs[r.name].shape == probs[ref.name].shape:
            r.metrics.update(agreement(probs[r.name], probs[ref.name]))
            r.metrics["paired"] = stats.mcnemar(right[r.name], right[ref.name])


def bench(models: list[Path], options: RuntimeOptions | None = None, opts: BenchOptions | None = None, *,
          data: str | None = None, data_root: str | None = None, progress=None,
          keep_going: bool = False, stream: bool | None = None,
          runtimes: tuple[str, ...] = ("onnxruntime",), facts: Stated | None = None,
          label_map: dict[str, str] | None = None) -> BenchReport:
    """Benchmark model files (or every variant of run directories) on one provider; every ONNX file runs once
    on each of ``runtimes`` (ONNX Runtime, OpenVINO), in the same table. A large folder (or any, with
    ``stream``) is scored as it streams from disk. ``facts`` are stated over each file's spec (a file from
    elsewhere), and ``label_map`` maps the data folder's class names to the model's labels."""
    options, opts = options or RuntimeOptions(), opts or BenchOptions()
    opts.validate()
    progress = progress or (lambda _msg: None)
    report = BenchReport(env={})
    files: list[Path] = []
    for m in map(Path, models):
        files.extend(_runnable(variants_in(m), report) if m.is_dir() else [m])
    where = _Where(data, data_root, keep_going, stream, facts, label_map)
    jobs = _jobs(files, options, runtimes, report)
    if opts.isolate:  # their imports go on while the variants load and score
        start_probe_servers({need_of(path, o.runtime) for path, o in jobs})
    scored = _load_and_score(jobs, opts, report, progress, where)
    if opts.isolate:
        _probe_memory(scored, options, opts, report, progress)
    time_interleaved(scored.subjects, opts, progress)
    for s, row in zip(scored.subjects, scored.rows, strict=True):
        for k, v in summarise_timing(s, opts.batch_sizes).items():
            setattr(row, k, v)
        scored.points += points_of(row.name, options.threads, {"throughput": row.throughput,
                                                               "batch_p99_ms": row.batch_p99_ms})
    if opts.end_to_end:
        _end_to_end(scored, opts, report, progress)
    raws = [s.raw for s in scored.subjects]
    scored.subjects.clear()  # the sessions go before the sweep's and the verdicts
    if opts.sweep_threads:
        scored.points += time_settings(scored.jobs, [r.name for r in scored.rows], raws,
                                       settings_for(opts.sweep_threads, scored.jobs), opts, where.facts, progress)
        report.sweep = scored.points
    _decide(report, scored, options, opts, files)
    return report


@dataclass
class _Scored:
    """Every loaded variant: its bench row, its timing subject, and its answers on the shared split."""

    rows: list[VariantResult] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    right: dict[str, np.ndarray] = field(default_factory=dict)
    jobs: list[tuple[Path, RuntimeOptions]] = field(default_factory=list)  # each row's file and options
    points: list[dict[str, Any]] = field(default_factory=list)  # every (variant, threads, batch) timed


@dataclass(frozen=True)
class _Where:
    """What the variants are scored on, and the facts stated over their specs."""

    data: str | None
    data_root: str | None
    keep_going: bool
    stream: bool | None
    facts: Stated | None
    label_map: dict[str, str] | None


def _load_and_score(jobs: list[tuple[Path, RuntimeOptions]], opts: BenchOptions, report: BenchReport, progress,
                    where: _Where) -> _Scored:
    """Load every (file, runtime) job and score it on its default split (an edgecv model's test split, every
    image for a file from elsewhere), one split shared by a model's variants."""
    data, data_root = where.data, where.data_root
    session = uuid.uuid4().hex[:12]
    scored, split, split_key = _Scored(), None, None
    for path, job_options in jobs:
        progress(f"loading and scoring {path.name} on {job_options.runtime}")
        try:
            loaded = load_model(path, job_options, where.facts)
        except ModelError as exc:
            if job_options.runtime == "onnxruntime":
                raise
            report.notes.append(f"{job_options.runtime} could not run {path.name}: {exc}")  # said, not hidden
            continue
        key = (data_source(path, loaded.spec, data, data_root), tuple(loaded.spec.input_shape))
        if key != split_key:  # variants of one model share one split: the same images for all
            split = load_split(path, loaded.spec, data, data_root, None, where.keep_going, where.stream,
                               where.label_map)
            split_key = key
            report.notes.extend(n for n in spec_notes(loaded, split) if n not in report.notes)
        assert split is not None
        metrics, probs = score(loaded, split, lambda done, total, n=path.name: progress(
            f"scoring {n}: {done:,}/{total:,} images"))
        name = _unique(loaded.name + (" uint8-input" if loaded.spec.dtype == "uint8" else ""), scored.rows)
        scored.probs[name], scored.right[name] = probs, probs.argmax(1) == split.y
        report.scores[name] = (metrics, probs)
        scored.subjects.append(Subject(loaded, split.head(max(opts.batch_sizes))))
        scored.jobs.append((path, job_options))
        scored.rows.append(VariantResult(
            name=name, format=loaded.format, precision=loaded.precision, provider=loaded.provider, file=str(path),
            size_bytes=path.stat().st_size, latency_ms={}, throughput={}, session=session,
            metrics={"accuracy": metrics["accuracy"], "accuracy_ci": metrics["accuracy_ci"],
                     "macro_f1": metrics["macro_f1"], "ece": metrics["ece"], "loss": metrics["loss"],
                     "top5_accuracy": metrics["top5_accuracy"], "agreement": None, "max_prob_diff": None,
                     "num_samples": metrics["num_samples"], "split": split.split, "data": split.name}))
    return scored


def _probe_memory(scored: _Scored, options: RuntimeOptions, opts: BenchOptions, report: BenchReport,
                  progress) -> None:
    """Each variant's memory and cold start, from a process of its own."""
    for s, row in zip(scored.subjects, scored.rows, strict=True):
        progress(f"{row.name}: memory and cold start in a process of its own")
        probe = _memory(s.loaded, replace(options, runtime=_runtime_of(s.loaded)), opts, report)
        if probe:
            row.memory = {k: probe[k] for k in ("model_bytes", "baseline_bytes", "peak_bytes", "big_batch",
                                                "big_batch_bytes", "device_bytes")}
            row.cold_start_ms = {"load": probe["load_ms"], "first_run": probe["first_run_ms"]}


def _end_to_end(scored: _Scored, opts: BenchOptions, report: BenchReport, progress) -> None:
    """Each variant's Predictor on a photo's JPEG bytes, on the session the model was timed on; a variant the
    Predictor cannot run is a note, not an error."""
    photo, timed = sample_photo(), []
    for s, row in zip(scored.subjects, scored.rows, strict=True):
        try:
            predictor = Predictor.from_loaded(s.loaded)
            predictor.predict(photo)
        except (EdgecvError, RuntimeError, ValueError) as exc:  # a runtime's own refusal is a note too
            report.notes.append(f"end to end not measured for {row.name}: {exc}")
            continue
        timed.append((row, predictor))
    # half a batch size's seconds per variant: a call of milliseconds needs fewer to meet its interval
    found = time_end_to_end([p for _, p in timed], photo, opts.rounds, opts.seconds / 2, opts.warmup,
                            opts.min_calls, opts.iters, progress) if timed else []
    for (row, _), e in zip(timed, found, strict=True):
        row.end_to_end = {**e, "photo": describe(photo)}


def _decide(report: BenchReport, scored: _Scored, options: RuntimeOptions, opts: BenchOptions,
            files: list[Path]) -> None:
    """The reference, each row's paired test against it, the front, the recommendation and the notes."""
    rows = scored.rows
    report.variants = rows
    ref = next((r for r in rows if r.format == "onnx" and r.precision == "fp32"), None) or \
        next((r for r in rows if r.precision == "fp32"), None)
    report.reference = ref.name if ref else None
    _accuracy_rows(rows, scored.right, ref, scored.probs)
    report.env = environment(options)  # after loading, so the torch version shows when torch ran
    report.method = _method(rows, opts, report.env, files)
    _pareto(rows, opts.min_speedup)
    recommend(report, ref, opts.max_accuracy_drop, opts.min_speedup)
    if opts.max_latency_ms is not None:
        report.within_budget = within_budget(scored.points, rows, ref, opts.max_latency_ms, opts.max_accuracy_drop,
                                             fp16_pays)
    report.notes += slower_notes(rows, ref, opts.min_speedup)
    onnx = {r.precision: r.file for r in rows if r.format == "onnx"}
    if "fp32" in onnx and "int8" in onnx:
        report.profile_command = profile_command(onnx["fp32"], onnx["int8"])
    if note := fp16_note(rows):
        report.notes.append(note)
    rows.sort(key=lambda r: r.latency_ms.get("p50", float("inf")))


def _method(rows: list[VariantResult], opts: BenchOptions, env: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    """Where each number comes from, in words and counts, for the table's footnotes and the report."""
    first = rows[0].metrics if rows else {}
    int8 = _int8_calibration(files)
    return {
        "accuracy": f"{first.get('data', '?')} {first.get('split', 'test')} split, {first.get('num_samples', 0)} "
                    "images, the same for every variant; 95% Wilson intervals; McNemar's exact test against the "
                    "reference on the images where exactly one of the two is right",
        "latency": f"{opts.rounds} interleaved rounds (shuffled order) of {opts.seconds / opts.rounds * 1e3:.0f} ms "
                   f"per variant and batch size after {opts.warmup} warm-up calls (at least {WARM_AT_LEAST}, as many "
                   f"as fit in one round's slice); {env.get('threads')} threads; "
                   f"95% bootstrap intervals over rounds; faster means the 95% interval of the paired speed ratio "
                   f"is at or above {opts.min_speedup:g}x",
        "memory": ("each variant in a fresh process: peak resident memory of creating the session and running "
                   "batch 1, less that process's memory after importing the runtime" if opts.isolate
                   else "not measured (--no-isolate)"),
        "rounds": opts.rounds, "seconds": opts.seconds, "warmup": opts.warmup, "min_speedup": opts.min_speedup,
        "images": first.get("num_samples"), "split": first.get("split"), "int8_calibration": int8,
        "end_to_end": _end_to_end_method(rows, opts),
    }


def _end_to_end_method(rows: list[VariantResult], opts: BenchOptions) -> str | None:
    photo = next((r.end_to_end["photo"] for r in rows if r.end_to_end), None)
    if photo is None:
        return None
    return (f"{photo} through edgecv.Predictor, from its bytes to the label, on the session timed above; "
            f"{opts.rounds} interleaved rounds of {opts.seconds / opts.rounds * 500:.0f} ms per variant, half of it "
            "plain predict calls (the p50 and its 95% interval), half timed stage by stage (each stage's median)")


def _int8_calibration(files: list[Path]) -> str | None:
    """Which data calibrated the static int8 variant, from quantize.json beside it."""
    for f in files:
        q = RunDir.of(f).quantize_record
        if f.name == INT8_STATIC and q.is_file():
            try:
                data = json.loads(q.read_text())["models"][f.name]["data"]
            except (OSError, ValueError, KeyError, TypeError):
                return None
            return f"{data.get('calib_images', '?')} images of the {data.get('name', '?')} " \
                   f"{data.get('calib_split', 'train')} split"
    return None


def _runtime_of(loaded: Loaded) -> str:
    return "openvino" if loaded.format == "openvino" else "onnxruntime"


def _jobs(files: list[Path], options: RuntimeOptions, runtimes: tuple[str, ...],
          report: BenchReport) -> list[tuple[Path, RuntimeOptions]]:
    """(file, options) for every row: an ONNX file once per runtime, a torch file once."""
    unknown = [r for r in runtimes if r not in ONNX_RUNTIMES]
    if unknown or not runtimes:
        raise EdgecvError(f"--runtimes takes a comma list of {', '.join(ONNX_RUNTIMES)}, got {', '.join(runtimes)}")
    if "openvino" in runtimes:
        require_openvino()  # asked for and missing: an error, never a table without it
    return [(path, replace(options, runtime=r)) for path in files
            for r in (runtimes if runtime_for(path) == "onnxruntime" else ("onnxruntime",))]


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _runnable(files: list[Path], report: BenchReport) -> list[Path]:
    """A run directory's files, without the torch ones where torch is not installed (the base install)."""
    torch_files = [f for f in files if runtime_for(f) in ("torch", "torchscript", "executorch")]
    if not torch_files or _torch_available():
        return _with_executorch(files, report)
    report.notes.append(f"skipped {', '.join(f.name for f in torch_files)}: torch is not installed "
                        "(pip install 'edgecv[train]')")
    return [f for f in files if f not in torch_files]


def _with_executorch(files: list[Path], report: BenchReport) -> list[Path]:
    """A run directory's files, without its .pte files where ExecuTorch is not installed."""
    import importlib.util

    pte = [f for f in files if runtime_for(f) == "executorch"]
    if not pte or importlib.util.find_spec("executorch") is not None:
        return files
    report.notes.append(f"skipped {', '.join(f.name for f in pte)}: ExecuTorch is not installed "
                        "(pip install 'edgecv[executorch]')")
    return [f for f in files if f not in pte]


def _unique(name: str, rows: list[VariantResult]) -> str:
    names = {r.name for r in rows}
    candidate, i = name, 2
    while candidate in names:
        candidate, i = f"{name} ({i})", i + 1
    return candidate
