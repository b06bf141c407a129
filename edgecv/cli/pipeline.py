"""`edgecv pipeline`: the whole job for one model, or a study of several, ending with the table (every model x
format row, the Pareto front, the constraint answer) and the report's path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.bench import print_bench
from edgecv.cli.common import DATA_ROOT, StatusLine, err, out, print_wide, run_guarded
from edgecv.cli.train import RichReporter
from edgecv.core.errors import EdgecvError
from edgecv.report.cells import fmt_bytes, paired_text, with_interval
from edgecv.rundir import STAGES
from edgecv.workflow.options import RunOptions
from edgecv.workflow.studies import STUDIES

if TYPE_CHECKING:
    from edgecv.measure.constraints import Constraints


def pipeline_cmd(
    data: str = typer.Option("digits", "--data", "-d", help="Data set: digits, mnist, fashion-mnist, cifar10 or "
                                                            "folder:PATH."),
    model: str = typer.Option("cnn-bn", "--model", "-m",
                              help="A zoo model (edgecv models), torchvision:NAME, timm:ARCH.TAG or your own "
                                   "path/net.py:factory (this runs that code); several, comma-separated, make a study "
                                   "(e.g. mlp,lenet5,cnn-bn), as does a study's name: quick, architectures, "
                                   "regularisation, edge."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Training epochs [default: the model's]."),
    provider: str = typer.Option("cpu", "--provider", help="ONNX Runtime provider for the benchmark: cpu | cuda | "
                                                           "tensorrt | openvino."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Run directory, or a study's folder (one run folder per "
                                                          "model inside) [default: runs/MODEL-DATA, "
                                                          "runs/study-NAME-DATA]."),
    force: bool = typer.Option(False, "--force", help="Redo every stage, even those whose outputs are current."),
    seconds: float = typer.Option(0.5, "--seconds", help="Time per benchmark measurement."),
    data_root: Path = DATA_ROOT,
    download: bool = typer.Option(False, "--download", help="Download a torchvision data set that is missing."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate",
                                   help="Fit a temperature on the validation split after training; the exported "
                                        "files apply it so scores read as probabilities. --no-calibrate keeps raw "
                                        "scores."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate",
                                 help="Bench memory and cold start in a fresh process per variant."),
    keep_going: bool = typer.Option(False, "--keep-going",
                                    help="Leave out a folder's unreadable images (listed) instead of refusing it."),
    stream: bool = typer.Option(None, "--stream/--no-stream",
                                help="Folder data: decode images from disk as they are used instead of holding "
                                     "them in memory [default: when the folder would take more than "
                                     "EDGECV_RESIDENT_MB, 1024]."),
    max_latency_ms: float = typer.Option(None, "--max-latency-ms",
                                         help="Constraint: batch-1 p50 at most this (its whole 95% interval)."),
    max_size_mb: float = typer.Option(None, "--max-size-mb", help="Constraint: model file at most this many MB."),
    min_accuracy: float = typer.Option(None, "--min-accuracy", help="Constraint: test accuracy at least this (%)."),
) -> None:
    """Train, export (ONNX and TorchScript), quantise (int8 static and dynamic, fp16), benchmark every
    variant and write the report, all in one run directory; for several models, a study that does so for each
    (one run folder each) and compares them all in one table, one Pareto front and one report.

    A stage whose outputs are newer than its inputs is skipped; --force redoes it, so a second run redoes
    nothing, a model added to a study trains only that one, and an interrupted run resumes. Constraints pick the
    best row that meets them, or say which comes closest. Ends with the table and the report's path.

    Examples: edgecv pipeline --data digits --model cnn-bn --out runs/demo;
    edgecv pipeline --model mlp,lenet5,cnn-bn --max-latency-ms 0.1 --min-accuracy 99
    """
    reporter = StageReporter()

    def body() -> None:
        from edgecv.measure.constraints import Constraints  # numpy: not at start-up

        shared = RunOptions(data=data, epochs=epochs, provider=provider, force=force, seconds=seconds,
                            data_root=str(data_root) if data_root else None, download=download,
                            calibrate=calibrate, isolate=isolate, keep_going=keep_going, stream=stream)
        shared.validate()
        name, models = parse_models(model)
        constraints = Constraints(max_latency_ms, max_size_mb, min_accuracy)
        constraints.validate()
        if name is None and len(models) == 1:
            _one_model(models[0], out_dir, shared, constraints, reporter)
        else:
            _study(name, models, out_dir, shared, constraints, reporter)

    run_guarded(body, interrupt_hint=reporter.interrupt_hint)


def parse_models(text: str) -> tuple[str | None, list[str]]:
    """``(study name or None, model names)`` from ``--model``: a study's name or comma-separated model names
    (built-in, torchvision:NAME, timm:ARCH.TAG, path/net.py:factory). Unknown or repeated names are an error
    that lists the known ones, before anything is trained."""
    from edgecv.models import MODELS, model_entry  # torch: only once a pipeline runs

    text = text.strip()
    if text in STUDIES:
        return text, list(STUDIES.get(text).models)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise EdgecvError("--model needs a zoo model, a comma-separated list of them, or a study name")
    for name in names:
        if ":" in name:
            model_entry(name)  # an unknown torchvision or timm name, or a module that is not there: one line
    unknown = [n for n in names if ":" not in n and n not in MODELS]
    if unknown:
        raise EdgecvError(f"unknown model {', '.join(map(repr, unknown))}; models: {', '.join(MODELS.names())}; "
                          f"studies: {', '.join(STUDIES.names())}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise EdgecvError(f"--model names {', '.join(repeated)} more than once")
    return None, names


def _stage_printer(status: StatusLine):
    """A stage's "running" line on the status line; its result printed for good."""
    def show(line: str, running: bool) -> None:
        if running:
            status.update(line)
        else:
            out.print(escape(line), soft_wrap=True)
    return show


def _one_model(model: str, out_dir: Path | None, shared, constraints: Constraints, reporter) -> None:
    """The pipeline for one model, then its bench table, the constraint answer and the report's path."""
    from edgecv.measure.constraints import answer
    from edgecv.workflow.pipeline import PipelineOptions, run_pipeline

    with StatusLine("") as status:
        show = _stage_printer(status)
        result = run_pipeline(PipelineOptions(model=model, out=out_dir, **shared.shared()), reporter,
                              lambda i, n, m: show(f"[{i}/{len(STAGES)}] {n:<8} {m}", m == "running"))
    print_bench(result.bench)
    print_answer(answer([(model, v) for v in result.bench.variants], constraints))
    out.print(f"[bold]report:[/] {escape(str(result.report))}", soft_wrap=True)


def _study(name: str | None, models: list[str], out_dir: Path | None, shared, constraints: Constraints,
           reporter) -> None:
    """The pipeline for every model of a study, then the study's table, front and answer."""
    from edgecv.workflow.study import StudyOptions, run_study

    with StatusLine("") as status:
        show = _stage_printer(status)
        study = run_study(StudyOptions(models=models, name=name, out=out_dir, constraints=constraints,
                                       model_epochs=STUDIES.get(name).epochs if name else {}, **shared.shared()),
                          reporter,
                          lambda model, i, n, m: show(f"{model:<12} " + (f"[{i}/{len(STAGES)}] " if i else "")
                                                      + f"{n:<8} {m}", m == "running"))
    print_study(study)


class StageReporter(RichReporter):
    """Training progress inside the pipeline: the per-batch bar, without a line per epoch."""

    def start(self, cfg, data, run_dir, first_epoch) -> None:
        self.run_dir, self.epochs_done = run_dir, first_epoch - 1

    def epoch_end(self, row) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.epochs_done = row["epoch"]

    def note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.stop()

    def interrupt_hint(self) -> str:
        """Finished stages (and training epochs) are kept: the same command picks up where it stopped."""
        return "; finished stages and epochs are kept: run the same edgecv pipeline command again to continue"


def print_answer(answer) -> None:
    """The constraint answer, or nothing when no constraint was given."""
    if answer is None:
        return
    label = "[bold green]answer:[/]" if answer.met else "[bold yellow]no row meets the constraints:[/]"
    out.print(f"{label} {escape(answer.text)}", soft_wrap=True)


def print_study(result) -> None:
    """One table of every model and format sorted by p50, the front marked, then the answer and the report."""
    pairs = result.rows()
    front = set(result.front)
    answer_row = result.answer.row if result.answer else None
    batch_cols = sorted({int(b) for _, v in pairs for b in v.throughput})
    table = Table(title=f"study: {len(result.outcomes)} models, {len(pairs)} rows")
    for col in ("model", "variant", "size", "p50 ms (95% CI)", *(f"img/s b{b}" for b in batch_cols), "memory",
                "accuracy (95% CI)", "vs its fp32", "ECE"):
        table.add_column(col, justify="left" if col in ("model", "variant") else "right", no_wrap=col == "variant")
    for model, v in sorted(pairs, key=lambda mv: mv[1].latency_ms.get("p50", float("inf"))):
        label = f"{model}: {v.name}"
        m, lat = v.metrics, v.latency_ms
        style = "bold" if label == answer_row else None
        table.add_row(
            escape(model), escape(v.name + (" *" if label in front else "")), fmt_bytes(v.size_bytes),
            with_interval(lat["p50"], v.latency_ci_ms.get("p50")) if "p50" in lat else "-",
            *(f"{v.throughput[str(b)]:,.0f}" if str(b) in v.throughput else "-" for b in batch_cols),
            fmt_bytes(v.memory["model_bytes"]) if (v.memory or {}).get("model_bytes") else "-",
            with_interval(100 * m["accuracy"], [100 * c for c in m["accuracy_ci"]] if m.get("accuracy_ci") else None,
                          "{:.1f}"),
            "reference" if v.name == "onnx fp32" else paired_text(m), f"{m['ece']:.4f}", style=style)
    for o in result.outcomes:
        if not o.ok:
            table.add_row(escape(o.model), escape(f"failed: {o.error}"), *[""] * (len(table.columns) - 2))
    print_wide(table, 180)
    out.print("* on the Pareto front across every model and format (faster means beyond noise: the whole 95% "
              "interval of the speed ratio at or above 1.05x)", soft_wrap=True)
    out.print(f"[bold]front:[/] {escape(', '.join(result.front) or 'none')}", soft_wrap=True)
    print_answer(result.answer)
    for o in result.outcomes:
        if not o.ok:
            err.print(f"[yellow]note:[/] {escape(o.model)} failed: {escape(o.error or '')}", soft_wrap=True)
    if result.report is not None:
        out.print(f"[bold]report:[/] {escape(str(result.report))}", soft_wrap=True)
