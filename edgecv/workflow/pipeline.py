"""`edgecv pipeline`: train -> export -> quantize -> bench -> report on one run directory.

Each stage reads files and writes files in the run directory. A stage is current when all its outputs exist
and none is older than any of its inputs (as make decides), so a re-run does only what is stale, and a stage
that runs makes every later stage stale. ``force`` redoes every stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_json
from edgecv.exporters import default_path, export_onnx, export_torchscript, load_source, record
from edgecv.measure.bench import bench
from edgecv.measure.memprobe import start_probe_servers
from edgecv.measure.types import SCHEMA, BenchOptions, BenchReport
from edgecv.quantize import QuantizeOptions, quantize
from edgecv.report.run import build_report
from edgecv.rundir import STAGES, RunDir, run_name
from edgecv.runtimes import RuntimeOptions
from edgecv.train import TrainConfig, resume, train
from edgecv.workflow.options import RunOptions

PROBED = {"torch", "onnxruntime"}  # what bench's probes of a run's checkpoint, TorchScript and ONNX files import


@dataclass
class PipelineOptions(RunOptions):
    """Which model, where, and what every run is given (:class:`RunOptions`)."""

    model: str = "cnn-bn"
    out: Path | None = None  # None: runs/<model>-<data>

    def run_dir(self) -> Path:
        """``out``, or runs/<model>-<data> (one fixed folder, so that a re-run finds its stages)."""
        return Path(self.out) if self.out is not None else Path("runs") / run_name(self.model, self.data)


@dataclass
class StageResult:
    name: str
    ran: bool  # False: its outputs were current
    seconds: float
    summary: str


@dataclass
class PipelineResult:
    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    bench: Any = None  # the BenchReport, measured now or read back from bench.json
    report: Path | None = None


def is_current(run_dir: Path, stage: str) -> bool:
    """All outputs exist and none is older than any input (a bench.json of an older schema is stale)."""
    run = RunDir(run_dir)
    inputs, outputs = run.stage_files(stage)
    if not all(p.is_file() for p in outputs) or not all(p.is_file() for p in inputs):
        return False
    if stage == "bench" and _bench_schema(run.bench) < SCHEMA:
        return False
    return min(p.stat().st_mtime_ns for p in outputs) >= max(p.stat().st_mtime_ns for p in inputs)


def _bench_schema(path: Path) -> int:
    try:
        return int(json.loads(path.read_text()).get("schema", 1))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def _check_run(run_dir: Path, opts: PipelineOptions) -> bool:
    """Whether ``run_dir`` already holds a run of this model on this data (False: a fresh directory).
    A run of something else is an error rather than silently replaced."""
    config = RunDir(run_dir).config
    if run_dir.exists() and not run_dir.is_dir():
        raise EdgecvError(f"--out {run_dir} is a file, not a folder")
    if not config.is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise EdgecvError(f"{run_dir} is not empty and is not an edgecv run directory; pick another --out")
        return False
    try:
        cfg = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise EdgecvError(f"{config} cannot be read: {exc}") from None
    asked = {"model": opts.model, "data": opts.data, "calibrate": opts.calibrate,
             **({"epochs": opts.epochs} if opts.epochs else {})}
    differ = {k: (cfg.get(k, True if k == "calibrate" else None), v) for k, v in asked.items()
              if cfg.get(k, True if k == "calibrate" else None) != v}
    if differ and not opts.force:
        what = ", ".join(f"{k} {have} (asked: {want})" for k, (have, want) in differ.items())
        raise EdgecvError(f"{run_dir} holds a different run: {what}; pass --force to replace it or another --out")
    return not differ


def run_pipeline(opts: PipelineOptions, reporter: Any = None,
                 on_stage: Callable[[int, str, str], None] | None = None) -> PipelineResult:
    """Run the stale stages in order. ``on_stage(index, name, message)`` hears each stage start and end;
    ``reporter`` is the training progress reporter."""
    on_stage = on_stage or (lambda _i, _n, _m: None)
    opts.validate()
    run_dir = opts.run_dir()
    same_run = _check_run(run_dir, opts)
    result = PipelineResult(run_dir)
    stale = opts.force or not same_run
    for i, name in enumerate(STAGES, 1):
        if not stale and is_current(run_dir, name):
            result.stages.append(StageResult(name, False, 0.0, "current, skipped"))
            on_stage(i, name, "current, skipped")
            continue
        stale = True  # every later stage reads what this one writes
        on_stage(i, name, "running")
        start = time.perf_counter()
        summary = _RUNNERS[name](run_dir, opts, reporter, result, same_run and not opts.force)
        seconds = time.perf_counter() - start
        result.stages.append(StageResult(name, True, seconds, summary))
        on_stage(i, name, f"{summary} ({seconds:.1f} s)")
    files = RunDir(run_dir)
    if result.bench is None:
        result.bench = BenchReport.from_dict(json.loads(files.bench.read_text()))
    result.report = files.report_html
    return result


def _train(run_dir: Path, opts: PipelineOptions, reporter: Any, result: PipelineResult, same_run: bool) -> str:
    if same_run and RunDir(run_dir).last.is_file():  # an unfinished or current run: go on
        done = resume(run_dir, reporter)
    else:
        given = {"data_root": opts.data_root} if opts.data_root else {}
        cfg = TrainConfig(data=opts.data, model=opts.model, epochs=opts.epochs, out=str(run_dir),
                          download=opts.download, calibrate=opts.calibrate, keep_going=opts.keep_going,
                          stream=opts.stream, **given)
        done = train(cfg, reporter, overwrite=True)
    m = done.metrics
    t = m.get("calibration", {}).get("temperature", 1.0)
    calibrated = f", temperature {t:.2f} (validation split)" if m.get("calibration", {}).get("fitted_on") else ""
    return f"{done.epochs_run} epochs, best epoch {done.best_epoch}, test accuracy {m['accuracy']:.2%}{calibrated}"


def _export(run_dir: Path, opts: PipelineOptions, reporter: Any, result: PipelineResult, same_run: bool) -> str:
    if opts.isolate:  # bench runs after this stage: its probe servers import while export and quantize run
        start_probe_servers(PROBED)  # (started before training, they slowed it as much as they saved)
    src = load_source(run_dir)
    worst = 0.0
    for fmt, export in (("onnx", export_onnx), ("torchscript", export_torchscript)):
        report = export(src, default_path(src, fmt, False))
        record(run_dir, report)
        worst = max(worst, report.max_abs_diff)
    run = RunDir(run_dir)
    return f"{run.onnx.name}, {run.torchscript.name} (largest logit difference against torch {worst:.1e})"


def _quantize(run_dir: Path, opts: PipelineOptions, reporter: Any, result: PipelineResult, same_run: bool) -> str:
    # no speed check: bench times every variant against fp32 next, at every batch size and in more rounds
    report = quantize(RunDir(run_dir).onnx, QuantizeOptions(data_root=opts.data_root, speed_check=False))
    parts = [f"{r.method} {r.test_accuracy:.2%}" for r in report.results]
    return "test accuracy " + ", ".join(parts)


def _bench(run_dir: Path, opts: PipelineOptions, reporter: Any, result: PipelineResult, same_run: bool) -> str:
    report = bench([run_dir], RuntimeOptions(provider=opts.provider),
                   BenchOptions(seconds=opts.seconds, isolate=opts.isolate), data_root=opts.data_root,
                   stream=opts.stream)
    write_json(RunDir(run_dir).bench, report.to_dict())
    result.bench = report
    return f"{len(report.variants)} variants; recommended: {report.recommended}"


def _report(run_dir: Path, opts: PipelineOptions, reporter: Any, result: PipelineResult, same_run: bool) -> str:
    scores = result.bench.scores if result.bench is not None else None  # bench ran in this process
    built = build_report(run_dir, data_root=opts.data_root, scores=scores)
    return f"{built.html} and {built.markdown.name}, {built.figures} figures"


_RUNNERS: dict[str, Callable[..., str]] = {"train": _train, "export": _export, "quantize": _quantize,
                                           "bench": _bench, "report": _report}
