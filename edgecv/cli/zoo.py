"""`edgecv models`, `edgecv datasets` and `edgecv summary`: what is registered and how big it is."""

from __future__ import annotations

import typer
from rich.table import Table

from edgecv.cli.common import fmt_count, out, print_wide, run_guarded
from edgecv.core.errors import EdgecvError
from edgecv.workflow.studies import STUDIES

SOURCES = ("edgecv", "torchvision", "timm")


def models_cmd(
    channels: int = typer.Option(1, "--channels", help="Input channels used for the counts."),
    classes: int = typer.Option(10, "--classes", help="Output classes used for the counts."),
    source: str = typer.Option("edgecv", "--source",
                               help="edgecv (the built-in models, with params and MACs) | torchvision (every "
                                    "classification model torchvision has, as torchvision:NAME, with its weights' "
                                    "preprocessing) | timm (every pretrained tag, as timm:ARCH.TAG; "
                                    "pip install 'edgecv[timm]')."),
) -> None:
    """List the model zoo with parameters and MACs at each model's default input size, or torchvision's
    classification models (--source torchvision)."""

    def body() -> None:
        from edgecv.models import MODELS, create_model, summarize

        if source not in SOURCES:
            raise EdgecvError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
        if source != "edgecv":
            _library_table(source)
            return

        table = Table(title=f"edgecv models (counts at {channels}xSxS input, {classes} classes)")
        for col in ("model", "input S", "params", "MACs", "description"):
            table.add_column(col, justify="right" if col in ("input S", "params", "MACs") else "left")
        for name, entry in MODELS.items():
            s = entry.input_size
            summary = summarize(create_model(name, channels, classes, s), (channels, s, s))
            table.add_row(name, str(s), fmt_count(summary.total_params), fmt_count(summary.macs), entry.description)
        out.print(table)

        out.print("studies (edgecv pipeline --model NAME): " + "; ".join(
            f"{name} = {study.describe()}" for name, study in STUDIES.items()), soft_wrap=True)

    run_guarded(body)


def _library_table(source: str) -> None:
    """torchvision's classifiers (their DEFAULT weights' preprocessing) or timm's pretrained tags."""
    from edgecv.models.catalogue import COLUMNS, catalogue

    rows = catalogue(source)
    naming = "torchvision:NAME" if source == "torchvision" else "timm:ARCH.TAG"
    table = Table(title=f"{source} models (edgecv ... --model {naming})")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("crop", "resize", "classes") else "left")
    for row in rows:
        table.add_row(*map(str, row))
    print_wide(table, 140)
    how = ("--weights DEFAULT (or an entry's name) downloads through torchvision" if source == "torchvision" else
           "timm:ARCH alone takes timm's default tag; --weights DEFAULT downloads from the hub")
    out.print(f"{len(rows)} models; --weights FILE loads a state dict, {how}", soft_wrap=True)


def datasets_cmd() -> None:
    """List the data sets edgecv can train and evaluate on."""
    from edgecv.data import DATASETS

    table = Table(title="edgecv data sets")
    for col in ("data set", "source", "size", "colour", "classes", "flip", "description"):
        table.add_column(col)
    for name, info in DATASETS.items():
        table.add_row(name, info.source, f"{info.native_size}x{info.native_size}" if info.native_size else "any",
                      info.color, str(info.num_classes or "folders"), "yes" if info.allow_flip else "no",
                      info.description)
    out.print(table)


def summary_cmd(
    model: str = typer.Argument(..., help="A model name (see `edgecv models`; torchvision:NAME, timm:ARCH.TAG, "
                                           "path/net.py:factory)."),
    channels: int = typer.Option(None, "--channels", help="Input channels [default: 3 for a model that takes RGB, "
                                                          "else 1]."),
    classes: int = typer.Option(10, "--classes", help="Output classes."),
    img_size: int = typer.Option(None, "--img-size", help="Input size S (S x S); default: the model's."),
) -> None:
    """Print a Keras-style table of MODEL: layer, output shape, params, MACs, and totals."""

    def body() -> None:
        from edgecv.models import create_model, model_entry, summarize

        entry = model_entry(model)
        size = img_size or entry.input_size
        c = channels or (3 if entry.color == "RGB" else 1)
        s = summarize(create_model(model, c, classes, size), (c, size, size))
        table = Table(title=f"{model} at input {c}x{size}x{size}, {classes} classes")
        table.add_column("layer")
        table.add_column("type")
        table.add_column("output shape")
        table.add_column("params", justify="right")
        table.add_column("MACs", justify="right")
        for row in s.rows:
            table.add_row(row.name, row.kind, "x".join(map(str, row.output_shape)), f"{row.params:,}", f"{row.macs:,}")
        table.add_section()
        table.add_row("total", "", "", f"{s.total_params:,}", f"{s.macs:,}")
        out.print(table)
        out.print(f"params: {s.total_params:,} total, {s.trainable_params:,} trainable, "
                  f"{s.total_params - s.trainable_params:,} frozen; MACs per image: {s.macs:,} ({fmt_count(s.macs)})")

    run_guarded(body)
