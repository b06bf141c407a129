"""`edgecv profile`: per-layer time of ONNX files side by side, from the engine's own per-layer timing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import (
    PROVIDER,
    RUNTIME_HELP,
    THREADS,
    StatusLine,
    out,
    run_guarded,
    runtime_options,
    save_bytes,
    write_report,
)
from edgecv.cli.specflags import SpecFlags, spec_flags
from edgecv.core.errors import EdgecvError

SHOWN_LAYERS = 15  # layers listed by default, those the later files lose most on first


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1e3:.3f}"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _table(title: str, first: str, rows, names: list[str], totals: list[float], with_op: bool = False) -> Table:
    table = Table(title=title)
    table.add_column(first, overflow="fold")
    if with_op:
        table.add_column("op")
    for i, name in enumerate(names):
        table.add_column(f"{escape(name)} ms", justify="right")
        table.add_column("share", justify="right")
        if i:
            table.add_column(f"vs {escape(names[0])}", justify="right")
    for row in rows:
        cells = [escape(row.layer)] + ([escape(row.op)] if with_op else [])
        for i, (us, ratio) in enumerate(zip(row.us, row.ratio, strict=True)):
            cells += [_ms(us), "-" if us is None or not totals[i] else f"{us / totals[i]:.1%}"]
            if i:
                cells.append(_ratio(ratio))
        table.add_row(*cells)
    return table


def print_profile(report, shown: int) -> None:
    names = [Path(f.file).name for f in report.files]
    totals = [f.total_us for f in report.files]
    for f in report.files:
        out.print(f"{escape(Path(f.file).name)} ({f.precision}, {f.runtime}): {f.total_us / 1e3:.3f} ms of kernels "
                  f"per run at batch {f.batch}, mean of {f.runs} runs", soft_wrap=True)
    title = ("layers, those the later files lose most time on first" if len(names) > 1
             else "layers, the slowest first")
    out.print(_table(title, "layer", report.layers[:shown], names, totals, with_op=True))
    out.print(_table("by op type", "op type", report.op_types, names, totals))
    out.print(_table("overhead (not the work of any layer)", "kernels", report.overhead, names, totals))
    for note in report.notes:
        out.print(f"note: {escape(note)}", soft_wrap=True)


@spec_flags
def profile_cmd(
    models: list[Path] = typer.Argument(..., help="ONNX files, e.g. model.onnx model.int8.onnx (the first is the "
                                                  "reference the others are compared with)."),
    batch: int = typer.Option(1, "--batch", help="Images per run."),
    runs: int = typer.Option(50, "--runs", help="Runs averaged, after the warm-up."),
    warmup: int = typer.Option(5, "--warmup", help="Runs left out first."),
    layers: int = typer.Option(SHOWN_LAYERS, "--layers", help="Layers listed (the JSON has all)."),
    runtime: str = typer.Option("onnxruntime", "--runtime", help=RUNTIME_HELP + " ONNX Runtime's profiler, or "
                                "OpenVINO's performance counters."),
    provider: str = PROVIDER,
    threads: int = THREADS,
    json_file: Path = typer.Option(None, "--json", help="Also write every figure as JSON to this file."),
    chart: Path = typer.Option(None, "--chart", help="Also draw the listed layers' times as a PNG bar chart "
                                                     "(needs matplotlib: edgecv[train])."),
    *,
    flags: SpecFlags,
) -> None:
    """Where each ONNX file spends its time, layer by layer, several files side by side (typically fp32 against
    int8: "why is my int8 model slower?"). From ONNX Runtime's profiler, or OpenVINO's performance counters
    with --runtime openvino: each layer's kernel time and share, the ratio against the first file, the layers
    the later files lose most time on ranked first, the time by op type, and the quantise/dequantise and
    layout-change overhead on lines of their own. A layer is a convolution or matrix product with the steps an
    engine fuses into it (activation, BatchNorm, residual add); a quantised file's kernels are matched to the
    fp32 layers they came from. Kernel time leaves out the engine's own overhead between kernels, which
    edgecv bench includes.

    Example: edgecv profile runs/resnet18/model.onnx runs/resnet18/model.int8.onnx --batch 8
    """

    def body() -> None:
        from edgecv.measure.profile import profile

        options = replace(runtime_options(provider, threads, False), runtime=runtime)
        with StatusLine("profiling") as status:
            report = profile(models, options, batch=batch, runs=runs, warmup=warmup, facts=flags.stated(),
                             progress=status.update)
        print_profile(report, layers)
        if json_file is not None:
            write_report(json_file, report.to_dict())
        if chart is not None:
            _draw(chart, report, layers)

    run_guarded(body)


def _draw(path: Path, report, shown: int) -> None:
    """The listed layers' times, one bar per file, as a PNG at ``path``."""
    try:
        from edgecv.report import figures
    except ImportError:
        raise EdgecvError("--chart needs matplotlib: pip install 'edgecv[train]'") from None
    rows = report.layers[:shown]
    names = [Path(f.file).name for f in report.files]
    fig = figures.layer_times(names, [r.layer for r in rows], [r.us for r in rows],
                              f"Kernel time per layer at batch {report.files[0].batch}")
    save_bytes(path, figures.png(fig))
    out.print(f"[green]wrote[/] {escape(str(path))}", soft_wrap=True)
