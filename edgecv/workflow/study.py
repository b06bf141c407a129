"""Studies: the pipeline for several models on one data set, each in its own run folder inside the study
folder, compared in one table, one Pareto front and one report.

A study is a layer above :mod:`edgecv.workflow.pipeline`: every model's run keeps the pipeline's per-stage caching, so
a second run redoes nothing, adding a model trains only that one, and an interrupted study resumes where it
stopped. A model that fails (a data set it cannot train on, an export torch cannot do) is reported in its row
and the study goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.core.errors import EdgecvError
from edgecv.core.registry import Registry
from edgecv.measure import stats

STUDIES: Registry[tuple[str, ...]] = Registry("study")
STUDIES.add("quick", ("mlp", "lenet5", "cnn-bn"))  # three architectures that train in seconds on digits
STUDIES.add("architectures", ("mlp", "lenet5", "cnn-bn", "vgg"))  # MLP vs CNN vs CNN+BN vs VGG-style
STUDIES.add("regularisation", ("cnn", "cnn-dropout", "cnn-bn"))  # baseline vs Dropout vs BatchNorm
STUDIES.add("edge", ("cnn-tiny", "lenet5", "mobilenet-v3-small", "resnet"))  # small and mobile-sized nets
STUDY_FILE = "study.json"


def parse_models(text: str) -> tuple[str | None, list[str]]:
    """``(study name or None, model names)`` from ``--model``: a study's name or comma-separated zoo names.
    Unknown or repeated names are an error that lists the known ones, before anything is trained."""
    from edgecv.models import MODELS

    text = text.strip()
    if text in STUDIES:
        return text, list(STUDIES.get(text))
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise EdgecvError("--model needs a zoo model, a comma-separated list of them, or a study name")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise EdgecvError(f"unknown model {', '.join(map(repr, unknown))}; models: {', '.join(MODELS.names())}; "
                          f"studies: {', '.join(STUDIES.names())}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise EdgecvError(f"--model names {', '.join(repeated)} more than once")
    return None, names


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
    from edgecv.measure.verdicts import faster

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


@dataclass
class StudyOptions:
    """Which models, on what data, and what a deployment can afford."""

    models: list[str]
    name: str | None = None  # the study's name when one was asked for by name
    data: str = "digits"
    epochs: int | None = None
    provider: str = "cpu"
    out: Path | None = None  # default runs/study-<name or models>-<data>
    force: bool = False
    seconds: float = 0.5
    data_root: str | None = None
    download: bool = False
    calibrate: bool = True
    isolate: bool = True
    keep_going: bool = False
    stream: bool | None = None
    constraints: Constraints = field(default_factory=Constraints)

    def study_dir(self) -> Path:
        from edgecv.rundir import run_name

        if self.out is not None:
            return Path(self.out)
        return Path("runs") / f"study-{run_name(self.name or '-'.join(self.models), self.data)}"


@dataclass
class ModelOutcome:
    model: str
    run_dir: Path
    ok: bool
    error: str | None = None
    bench: Any = None  # its BenchReport
    stages: list[Any] = field(default_factory=list)


@dataclass
class StudyResult:
    study_dir: Path
    outcomes: list[ModelOutcome]
    front: list[str]  # "model: variant" rows on the study-wide Pareto front
    answer: Answer | None
    report: Path | None = None


def _claim(study_dir: Path, opts: StudyOptions) -> None:
    """A study folder for this data set, new or resumed; a single run's folder or another data set's study is
    refused rather than mixed in."""
    if study_dir.exists() and not study_dir.is_dir():
        raise EdgecvError(f"--out {study_dir} is a file, not a folder")
    if (study_dir / "config.json").is_file():
        raise EdgecvError(f"{study_dir} holds a single run, not a study; pick another --out")
    record = study_dir / STUDY_FILE
    if record.is_file() and not opts.force:
        try:
            data = json.loads(record.read_text()).get("data")
        except (OSError, ValueError, AttributeError):
            data = None
        if data not in (None, opts.data):
            raise EdgecvError(f"{study_dir} holds a study on {data} (asked: {opts.data}); pass --force or another "
                              "--out")
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecvError(f"cannot create study folder {study_dir}: {exc.strerror}") from None


def run_study(opts: StudyOptions, reporter: Any = None,
              on_stage: Callable[[str, int, str, str], None] | None = None) -> StudyResult:
    """Run the pipeline for every model of the study (stale stages only), then compare them and write the study
    report. ``on_stage(model, index, stage, message)`` hears each stage of each model."""
    from edgecv.workflow.pipeline import PipelineOptions, run_pipeline

    opts.constraints.validate()
    if opts.seconds <= 0:
        raise EdgecvError(f"--seconds must be positive, got {opts.seconds}")
    if opts.epochs is not None and opts.epochs < 1:
        raise EdgecvError(f"--epochs must be at least 1, got {opts.epochs}")
    study_dir = opts.study_dir()
    _claim(study_dir, opts)
    on_stage = on_stage or (lambda _m, _i, _n, _s: None)
    outcomes = []
    for model in opts.models:
        run_dir = study_dir / model
        popts = PipelineOptions(data=opts.data, model=model, epochs=opts.epochs, provider=opts.provider, out=run_dir,
                                force=opts.force, seconds=opts.seconds, data_root=opts.data_root,
                                download=opts.download, calibrate=opts.calibrate, isolate=opts.isolate,
                                keep_going=opts.keep_going, stream=opts.stream)
        try:
            result = run_pipeline(popts, reporter, lambda i, n, m, model=model: on_stage(model, i, n, m))
        except EdgecvError as exc:
            on_stage(model, 0, "failed", str(exc))
            outcomes.append(ModelOutcome(model, run_dir, False, str(exc)))
            continue
        outcomes.append(ModelOutcome(model, run_dir, True, bench=result.bench, stages=result.stages))
    rows = study_rows(outcomes)
    front = study_front(rows)
    result = StudyResult(study_dir, outcomes, [row_label(m, r) for (m, r), on in zip(rows, front, strict=True) if on],
                         answer(rows, opts.constraints))
    _write_record(study_dir, opts, result)
    if not any(o.ok for o in outcomes):
        raise EdgecvError("every model of the study failed: " + "; ".join(f"{o.model}: {o.error}" for o in outcomes))
    from edgecv.report.study import build_study_report

    result.report = build_study_report(study_dir).html
    return result


def study_rows(outcomes: list[ModelOutcome]) -> list[tuple[str, Any]]:
    """(model, bench row) for every variant of every model that ran."""
    return [(o.model, v) for o in outcomes if o.ok for v in o.bench.variants]


def study_front(rows: list[tuple[str, Any]]) -> list[bool]:
    """The Pareto front across every model and format, with the noise rule (unpaired between models)."""
    from edgecv.measure.verdicts import pareto_front

    return pareto_front([r for _, r in rows], stats.MIN_SPEEDUP)


def _write_record(study_dir: Path, opts: StudyOptions, result: StudyResult) -> None:
    """study.json: what was asked, how each model fared, the front and the answer (the report reads it)."""
    from edgecv.core.fsutil import write_json

    write_json(study_dir / STUDY_FILE, {
        "name": opts.name, "data": opts.data, "models": opts.models, "epochs": opts.epochs,
        "provider": opts.provider, "constraints": asdict(opts.constraints),
        "outcomes": [{"model": o.model, "run_dir": o.model, "ok": o.ok, "error": o.error} for o in result.outcomes],
        "front": result.front, "answer": asdict(result.answer) if result.answer else None,
    })
