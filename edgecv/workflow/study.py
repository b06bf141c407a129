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
from edgecv.core.fsutil import write_json
from edgecv.measure.constraints import Answer, Constraints, answer, row_label, study_front
from edgecv.report.study import build_study_report
from edgecv.rundir import STUDY_FILE, RunDir, plain_model_name, run_name
from edgecv.workflow.options import RunOptions
from edgecv.workflow.pipeline import PipelineOptions, run_pipeline


@dataclass
class StudyOptions(RunOptions):
    """Which models, where, what a deployment can afford, and what every model's run is given
    (:class:`RunOptions`)."""

    models: list[str] = field(default_factory=list)
    name: str | None = None  # the study's name when one was asked for by name
    model_epochs: dict[str, int] = field(default_factory=dict)  # a named study's own epochs; --epochs overrides
    out: Path | None = None  # default runs/study-<name or models>-<data>
    constraints: Constraints = field(default_factory=Constraints)

    def study_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        name = self.name or "-".join(map(plain_model_name, self.models))
        return Path("runs") / f"study-{run_name(name, self.data)}"


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

    def rows(self) -> list[tuple[str, Any]]:
        """(model, bench row) for every variant of every model that ran."""
        return study_rows(self.outcomes)


def study_rows(outcomes: list[ModelOutcome]) -> list[tuple[str, Any]]:
    """(model, bench row) for every variant of every model that ran."""
    return [(o.model, v) for o in outcomes if o.ok for v in o.bench.variants]


def _claim(study_dir: Path, opts: StudyOptions) -> None:
    """A study folder for this data set, new or resumed; a single run's folder or another data set's study is
    refused rather than mixed in."""
    if study_dir.exists() and not study_dir.is_dir():
        raise EdgecvError(f"--out {study_dir} is a file, not a folder")
    if RunDir(study_dir).is_run():
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

    opts.validate()
    opts.constraints.validate()
    study_dir = opts.study_dir()
    _claim(study_dir, opts)
    on_stage = on_stage or (lambda _m, _i, _n, _s: None)
    outcomes = []
    for model in opts.models:
        run_dir = study_dir / plain_model_name(model)  # a plain folder name: torchvision-resnet18, net-build
        popts = PipelineOptions(model=model, out=run_dir, **opts.shared())
        popts.epochs = popts.epochs or opts.model_epochs.get(model)
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

    result.report = build_study_report(study_dir).html
    return result




def _write_record(study_dir: Path, opts: StudyOptions, result: StudyResult) -> None:
    """study.json: what was asked, how each model fared, the front and the answer (the report reads it)."""
    write_json(study_dir / STUDY_FILE, {
        "name": opts.name, "data": opts.data, "models": opts.models, "epochs": opts.epochs,
        "model_epochs": opts.model_epochs,
        "provider": opts.provider, "constraints": asdict(opts.constraints),
        "outcomes": [{"model": o.model, "run_dir": o.run_dir.name, "ok": o.ok, "error": o.error}
                     for o in result.outcomes],
        "front": result.front, "answer": asdict(result.answer) if result.answer else None,
    })
