"""`edgecv predict`: classify image files with an ONNX model, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import ImageBar, err, out, run_guarded
from edgecv.cli.specflags import SpecFlags, spec_flags
from edgecv.core.errors import EdgecvError, InvalidImageError

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


@spec_flags
def predict_cmd(
    images: list[Path] = typer.Argument(..., help="Image files or folders of images."),
    model: Path = typer.Option(..., "--model", "-m",
                               help="An edgecv ONNX file, or an ExecuTorch .pte (its spec says how to preprocess)."),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to list per image."),
    provider: str = typer.Option("cpu", "--provider", help="cpu | cuda | tensorrt | openvino."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table."),
    keep_going: bool = typer.Option(False, "--keep-going",
                                    help="Report unreadable images (stderr; JSON entries with 'error') and go on."),
    *,
    flags: SpecFlags,
) -> None:
    """Classify images with an ONNX model, using only onnxruntime, numpy and Pillow.

    Example: edgecv predict photos/ --model runs/lenet5-digits/model.onnx --top-k 3
    """

    def body() -> None:
        from edgecv.serve.predictor import Predictor

        if top_k < 1:
            raise EdgecvError(f"--top-k must be at least 1, got {top_k}")
        predictor = Predictor(model, provider=provider, top_k=top_k, facts=flags.stated())
        for note in predictor.notes:
            err.print(f"note: {escape(note)}", soft_wrap=True)
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


