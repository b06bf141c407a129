"""`edgecv eval`: the metrics suite for one model file on a split, as tables or JSON."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import (
    ALLOW_FALLBACK,
    DATA_ROOT,
    KEEP_GOING,
    MODEL_DATA,
    PROVIDER,
    RUNTIME_HELP,
    STREAM,
    THREADS,
    TRUST,
    TRUST_CODE,
    ImageBar,
    out,
    run_guarded,
    runtime_options,
    write_report,
)
from edgecv.cli.specflags import SpecFlags, spec_flags

MAX_MATRIX = 20  # classes up to which the confusion matrix is printed


def print_eval(result) -> None:
    """Overall metrics, per-class table and (for up to 20 classes) the confusion matrix."""
    m = result.metrics
    for note in result.notes:
        out.print(f"note: {escape(note)}", soft_wrap=True)
    classes = (f", {m['classes_scored']} of the model's {m['model_classes']} classes"
               if m.get("classes_scored", m.get("model_classes")) != m.get("model_classes") else "")
    overall = Table(title=f"{escape(Path(result.model).name)} ({result.variant} on {result.provider}): "
                          f"{escape(result.data)} {result.split}, {m['num_samples']} images{classes}")
    overall.add_column("metric")
    overall.add_column("value", justify="right")
    ci = m.get("accuracy_ci")
    rows = [("accuracy", f"{m['accuracy']:.2%}" + (f" (95% CI {ci[0]:.2%}-{ci[1]:.2%})" if ci else "")),
            ("top-5 accuracy", f"{m['top5_accuracy']:.2%}" if m["top5_accuracy"] is not None else "-"),
            ("loss (NLL)", f"{m['loss']:.4f}"),
            ("macro precision / recall / F1",
             f"{m['macro_precision']:.4f} / {m['macro_recall']:.4f} / {m['macro_f1']:.4f}"),
            ("weighted precision / recall / F1",
             f"{m['weighted_precision']:.4f} / {m['weighted_recall']:.4f} / {m['weighted_f1']:.4f}"),
            ("ECE (15 bins)", f"{m['ece']:.4f}"),
            ("mean confidence right / wrong", " / ".join(
                f"{v:.3f}" if v is not None else "-" for v in (m["confidence_right"], m["confidence_wrong"])))]
    for name, value in rows:
        overall.add_row(name, value)
    out.print(overall)
    per = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support", "one-vs-all acc"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for row in m["per_class"]:
        per.add_row(escape(row["label"]), f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                    str(row["support"]), f"{row['one_vs_all_accuracy']:.4f}")
    out.print(per)
    labels = [row["label"] for row in m["per_class"]]
    if len(labels) <= MAX_MATRIX:
        cm = Table(title="confusion matrix (rows: true, columns: predicted)")
        cm.add_column("")
        for label in m.get("confusion_columns", labels):
            cm.add_column(escape(label[:8]), justify="right")
        for i, (label, counts) in enumerate(zip(labels, m["confusion_matrix"], strict=True)):
            cells = [f"[bold]{c}[/]" if i == j else str(c) if c else "." for j, c in enumerate(counts)]
            cm.add_row(escape(label[:12]), *cells)
        out.print(cm)


@spec_flags
def eval_cmd(
    model: Path = typer.Argument(..., help="A checkpoint (.pt), a TorchScript file (.pt) or an ONNX file."),
    data: str = MODEL_DATA,
    data_root: Path = DATA_ROOT,
    split: str = typer.Option(None, "--split",
                              help="train | val | test | all (every image, nothing carved) [default: test for a "
                                   "model edgecv trained or deployed, whose data set it knows; all for a file from "
                                   "elsewhere]."),
    provider: str = PROVIDER,
    runtime: str = typer.Option("onnxruntime", "--runtime", help=RUNTIME_HELP),
    threads: int = THREADS,
    allow_fallback: bool = ALLOW_FALLBACK,
    json_file: Path = typer.Option(None, "--json", help="Also write the metrics as JSON to this file."),
    trust: bool = TRUST,
    trust_code: bool = TRUST_CODE,
    keep_going: bool = KEEP_GOING,
    stream: bool = STREAM,
    *,
    flags: SpecFlags,
) -> None:
    """Evaluate a model file with the full metrics suite: accuracy, top-5, loss, per-class scores,
    confusion matrix and calibration. Classes are matched to the model's labels by name; a data set may hold
    only some of them.

    Example: edgecv eval runs/lenet5-digits/model.int8.onnx --json int8.json

    A file from elsewhere: edgecv eval model.onnx --data folder:photos --labels @classes.txt --resize 256
    --crop 224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
    """

    def body() -> None:
        from edgecv.measure.evaluate import evaluate

        options = replace(runtime_options(provider, threads, allow_fallback, trust=trust, trust_code=trust_code),
                          runtime=runtime)
        stated, label_map = flags.stated(), flags.folder_names()
        with ImageBar(f"scoring {model.name}") as bar:
            result = evaluate(model, options, data=data, data_root=str(data_root) if data_root else None,
                              split=split, spec=stated, keep_going=keep_going, stream=stream, label_map=label_map,
                              progress=bar.update)
        print_eval(result)
        if json_file is not None:
            write_report(json_file, result.to_dict())

    run_guarded(body)
