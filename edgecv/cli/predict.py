"""`edgecv predict`: classify image files with an ONNX model, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import ImageBar, err, out, run_guarded, spec_from_flags
from edgecv.core.errors import EdgecvError, InvalidImageError
from edgecv.core.fsutil import require_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders expand to the images in them (sorted, recursively)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise EdgecvError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        else:
            files.append(path)
    return files


def predict_cmd(
    images: list[Path] = typer.Argument(..., help="Image files or folders of images."),
    model: Path = typer.Option(..., "--model", "-m",
                               help="An edgecv ONNX file, or an ExecuTorch .pte (its spec says how to preprocess)."),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to list per image."),
    provider: str = typer.Option("cpu", "--provider", help="cpu | cuda | tensorrt | openvino."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table."),
    keep_going: bool = typer.Option(False, "--keep-going",
                                    help="Report unreadable images (stderr; JSON entries with 'error') and go on."),
) -> None:
    """Classify images with an ONNX model, using only onnxruntime, numpy and Pillow.

    Example: edgecv predict photos/ --model runs/lenet5-digits/model.onnx --top-k 3
    """

    def body() -> None:
        from edgecv.serve.predictor import Predictor

        if top_k < 1:
            raise EdgecvError(f"--top-k must be at least 1, got {top_k}")
        predictor = Predictor(model, provider=provider, top_k=top_k)
        rows, failed = [], []
        files = expand(images)
        with ImageBar(f"classifying with {model.name}") as bar:  # one image at a time: memory stays flat
            for done, path in enumerate(files, 1):
                try:
                    pred = predictor.predict(path)
                except InvalidImageError as exc:
                    if not keep_going:
                        raise
                    failed.append({"file": str(path), "error": str(exc)})
                    continue
                finally:
                    bar.update(done, len(files))
                rows.append({"file": str(path), "label": pred.label, "index": pred.index, "score": pred.score,
                             "topk": [[label, score] for label, score in pred.topk]})
        if json_out:
            out.print_json(json.dumps(rows + failed))
        else:
            table = Table(title=f"{escape(model.name)} on {predictor.provider}")
            for col in ("file", "label", "score", f"top {predictor.top_k}"):
                table.add_column(col, justify="right" if col == "score" else "left")
            for r in rows:
                table.add_row(escape(r["file"]), escape(r["label"]), f"{r['score']:.4f}",
                              escape(", ".join(f"{label} {score:.3f}" for label, score in r["topk"])))
            out.print(table)
        for f in failed:
            err.print(f"[yellow]skipped:[/] {escape(f['error'])}", soft_wrap=True)

    run_guarded(body)


def check_cmd(
    model: Path = typer.Argument(..., help="An ONNX file to check before an app loads it."),
    memory_mb: int = typer.Option(2048, "--memory-mb", help="Memory cap of the checking process, in MiB."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds the one inference may take."),
    load_timeout: float = typer.Option(120.0, "--load-timeout",
                                       help="Seconds the checking process may take to start and load the model."),
    provider: str = typer.Option("cpu", "--provider", help="cpu | cuda | tensorrt | openvino."),
    labels: str = typer.Option(None, "--labels", help="For a model without a spec: class names, comma-separated."),
    mean: str = typer.Option(None, "--mean", help="For a model without a spec: per-channel mean (0..1)."),
    std: str = typer.Option(None, "--std", help="For a model without a spec: per-channel std (0..1)."),
    input_shape: str = typer.Option(None, "--input-shape", help="For a model without a spec: C,H,W."),
) -> None:
    """Check a model file you do not trust: load it and classify one blank image in a separate process with a memory cap
    and time limits (one for starting and loading, one for the inference), so a crash, a runaway allocation or a hang
    cannot harm this one. Prints ok and the classes, or one line naming what went wrong (exit code 2). In an app,
    edgecv.IsolatedPredictor keeps serving a model that way.

    Example: edgecv check downloaded.onnx --memory-mb 1024
    """

    def body() -> None:
        from edgecv.serve.isolated import check_model

        require_file(model, "a model file", EdgecvError)
        spec = spec_from_flags(labels, mean, std, input_shape)
        facts = {} if spec is None else {"labels": spec.labels, "mean": spec.mean, "std": spec.std,
                                         "input_shape": spec.input_shape}
        result = check_model(model, memory_mb=memory_mb or None, timeout_s=timeout, load_timeout_s=load_timeout,
                             provider=provider, **facts)
        shown = ", ".join(result.labels[:10]) + (", ..." if len(result.labels) > 10 else "")
        out.print(f"[green]ok[/] {escape(str(model))}: loads within {load_timeout:g} s and runs on {result.provider} "
                  f"within {memory_mb} MiB and {timeout:g} s; {len(result.labels)} classes ({escape(shown)})",
                  soft_wrap=True)

    run_guarded(body)
