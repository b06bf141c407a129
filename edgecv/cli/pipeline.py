"""`edgecv pipeline`, `edgecv report` and `edgecv explain`: the whole job, its report, and Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from edgecv.cli.common import StatusLine, out, run_guarded
from edgecv.cli.measure import print_bench
from edgecv.cli.study import print_answer, print_study
from edgecv.cli.train import RichReporter
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_bytes
from edgecv.core.imageio import open_image, to_pixels
from edgecv.measure.constraints import Constraints, answer
from edgecv.modeldata import data_source, keeps_going, load_bundle
from edgecv.rundir import STAGES, STUDY_FILE, RunDir


def pipeline_cmd(
    data: str = typer.Option("digits", "--data", "-d", help="Data set: digits, mnist, fashion-mnist, cifar10 or "
                                                            "folder:PATH."),
    model: str = typer.Option("cnn-bn", "--model", "-m",
                              help="A zoo model (edgecv models); several, comma-separated, make a study (e.g. "
                                   "mlp,lenet5,cnn-bn), as does a study's name: quick, architectures, regularisation, "
                                   "edge."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Training epochs [default: the model's]."),
    provider: str = typer.Option("cpu", "--provider", help="ONNX Runtime provider for the benchmark: cpu | cuda | "
                                                           "tensorrt | openvino."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Run directory, or a study's folder (one run folder per "
                                                          "model inside) [default: runs/MODEL-DATA, "
                                                          "runs/study-NAME-DATA]."),
    force: bool = typer.Option(False, "--force", help="Redo every stage, even those whose outputs are current."),
    seconds: float = typer.Option(0.5, "--seconds", help="Time per benchmark measurement."),
    data_root: Path = typer.Option(None, "--data-root", help="Where torchvision data sets live."),
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
        from edgecv.workflow.pipeline import PipelineOptions, run_pipeline
        from edgecv.workflow.study import StudyOptions, parse_models, run_study

        if epochs is not None and epochs < 1:
            raise EdgecvError(f"--epochs must be at least 1, got {epochs}")
        name, models = parse_models(model)
        constraints = Constraints(max_latency_ms, max_size_mb, min_accuracy)
        constraints.validate()
        common = dict(data=data, epochs=epochs, provider=provider, out=out_dir, force=force, seconds=seconds,
                      data_root=str(data_root) if data_root else None, download=download, calibrate=calibrate,
                      isolate=isolate, keep_going=keep_going, stream=stream)
        with StatusLine("") as status:
            def show(line: str, running: bool) -> None:
                if running:
                    status.update(line)
                else:
                    out.print(escape(line), soft_wrap=True)

            if name is None and len(models) == 1:
                result = run_pipeline(PipelineOptions(model=models[0], **common), reporter,
                                      lambda i, n, m: show(f"[{i}/{len(STAGES)}] {n:<8} {m}", m == "running"))
            else:
                study = run_study(StudyOptions(models=models, name=name, constraints=constraints, **common), reporter,
                                  lambda model, i, n, m: show(f"{model:<12} " + (f"[{i}/{len(STAGES)}] " if i else "")
                                                              + f"{n:<8} {m}", m == "running"))
        if name is None and len(models) == 1:
            print_bench(result.bench)
            print_answer(answer([(models[0], v) for v in result.bench.variants], constraints))
            out.print(f"[bold]report:[/] {escape(str(result.report))}", soft_wrap=True)
            return
        print_study(study)

    run_guarded(body, interrupt_hint=reporter.interrupt_hint)


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


def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory with bench.json, or a study folder with study.json "
                                             "(edgecv pipeline makes both)."),
    samples: int = typer.Option(24, "--samples", help="Random test images in the samples grid."),
    data_root: Path = typer.Option(None, "--data-root", help="Where torchvision data sets live."),
) -> None:
    """Write RUN_DIR/report.html (self-contained: figures inline, nothing fetched), report.md and plots/*.png:
    summary, training curves, variants and the accuracy-latency Pareto front, per-class changes, confusion
    matrices, calibration, sample predictions, Grad-CAM and feature maps, environment.

    A study folder gets the study report: every model and format in one table and one Pareto front.

    Example: edgecv report runs/demo
    """

    def body() -> None:
        from edgecv.report.run import build_report
        from edgecv.report.study import build_study_report

        if samples < 1:
            raise EdgecvError(f"--samples must be at least 1, got {samples}")
        with StatusLine("writing the report") as status:
            if (run_dir / STUDY_FILE).is_file():
                built = build_study_report(run_dir)
            else:
                built = build_report(run_dir, data_root=str(data_root) if data_root else None, samples=samples,
                                     progress=status.update)
        out.print(f"[green]wrote[/] {escape(str(built.html))} and {escape(built.markdown.name)} "
                  f"({built.figures} figures in {escape(str(built.html.parent / 'plots'))})", soft_wrap=True)

    run_guarded(body)


def explain_cmd(
    source: Path = typer.Argument(..., help="A run directory (its best checkpoint) or a checkpoint file."),
    image: list[Path] = typer.Option(None, "--image", "-i", help="An image to explain (repeatable)."),
    samples: int = typer.Option(6, "--samples", "-n", help="Without --image: this many random test images."),
    layer: str = typer.Option(None, "--layer", help="Layer for Grad-CAM [default: the last convolution]."),
    out_path: Path = typer.Option(None, "--out", "-o", help="Output folder [default: RUN_DIR/explain]."),
    data_root: Path = typer.Option(None, "--data-root", help="Where torchvision data sets live."),
) -> None:
    """Grad-CAM heatmap overlays for the predicted class, and per-layer activation grids, as PNG files.

    Example: edgecv explain runs/demo --samples 8 --layer features.4
    """

    def body() -> None:
        import numpy as np

        from edgecv import explain
        from edgecv.report.figures import png

        if samples < 1:
            raise EdgecvError(f"--samples must be at least 1, got {samples}")
        model, spec, ckpt = explain.load_explainable(source)
        explain.pick_layer(model, layer)  # a bad --layer fails before any work
        truth = None
        if image:
            pixels = np.stack([to_pixels(open_image(p, str(p)), spec.color, spec.size, spec.interpolation, str(p))
                               for p in image])
        else:
            pixels, truth = _test_images(ckpt, spec, samples, str(data_root) if data_root else None)
        folder = out_path or RunDir.of(ckpt).explain
        if folder.exists() and not folder.is_dir():
            raise EdgecvError(f"--out {folder} is a file, not a folder")
        cams = explain.grad_cam(model, spec, pixels, layer)
        written = []
        for i in range(len(pixels)):
            one = explain.Explained(pixels[i:i + 1], cams.cams[i:i + 1], cams.predicted[i:i + 1],
                                    cams.confidence[i:i + 1], cams.layer)
            written.append(_save(folder / f"gradcam_{i:02d}.png",
                                 png(explain.overlay_figure(one, spec.labels, None if truth is None else truth[i:i + 1],
                                                            title=f"Grad-CAM at {cams.layer}"))))
        for name, maps in explain.activations(model, spec, pixels[:1]).items():
            written.append(_save(folder / f"activations_{name.replace('.', '_')}.png",
                                 png(explain.activation_figure(name, maps, pixels[0]))))
        out.print(f"[green]wrote[/] {len(written)} PNG files to {escape(str(folder))}: Grad-CAM at {cams.layer} "
                  f"for {len(pixels)} images, activations of {len(written) - len(pixels)} layers", soft_wrap=True)

    run_guarded(body)


def _test_images(ckpt: Path, spec, count: int, data_root: str | None):
    import numpy as np


    name, root = data_source(ckpt, spec, None, data_root)
    test = load_bundle(name, root, spec.input_shape, keeps_going(ckpt)).test
    pick = np.sort(np.random.default_rng(0).choice(len(test), size=min(count, len(test)), replace=False))
    return test.take(pick), test.y[pick]


def _save(path: Path, data: bytes) -> Path:
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise EdgecvError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
