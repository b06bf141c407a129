"""`edgecv export`: TorchScript and ONNX files with a parity check against the torch model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import fmt_bytes, fmt_count, out, run_guarded
from edgecv.errors import EdgecvError
from edgecv.fsutil import check_writable_folder


def _parse_batch(text: str) -> int | None:
    if text == "dynamic":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise EdgecvError(f"--batch takes 'dynamic' or a positive whole number, got {text!r}")


def print_reports(reports) -> None:
    """One parity table for every exported file, then a line per file."""
    table = Table(title="parity against the torch model (logits)")
    for col in ("file", "inputs", "max abs diff", "max rel diff", "top-1 agree"):
        table.add_column(col, justify="left" if col in ("file", "inputs") else "right")
    for report in reports:
        for i, row in enumerate(report.parity):
            table.add_row(escape(Path(report.file).name) if i == 0 else "", row.inputs, f"{row.max_abs_diff:.2e}",
                          f"{row.max_rel_diff:.2e}", f"{row.top1_agreement:.2%}")
        table.add_section()
    out.print(table)
    for r in reports:
        opset = f", opset {r.opset}" if r.opset else ""
        out.print(f"[green]wrote[/] {escape(r.file)}: {fmt_bytes(r.size_bytes)}, {fmt_count(r.params)} params, "
                  f"{fmt_count(r.macs)} MACs, batch {r.batch}{opset}, {r.exporter}; "
                  f"parity ok (atol {r.atol:g}) in {r.seconds:.1f}s{_others(r.other_runtimes)}", soft_wrap=True)


def _others(runtimes: dict) -> str:
    """How the same file fares on the other installed engines (not required to pass)."""
    parts = []
    for name, p in runtimes.items():
        if "error" in p:
            parts.append(f"{name} cannot run it: {escape(p['error'])}")
        else:
            verdict = "ok" if p["passed"] else "[yellow]differs[/]"
            parts.append(f"{name} parity {verdict} (max abs diff {p['max_abs_diff']:.1e}, top-1 agree "
                         f"{p['top1_agreement']:.0%})")
    return "".join(f"; {part}" for part in parts)


def export_cmd(
    source: Path = typer.Argument(..., help="A run directory (its best checkpoint) or a checkpoint file."),
    fmt: str = typer.Option("all", "--format", "-f", help="onnx | torchscript | all."),
    out_path: Path = typer.Option(None, "--out", "-o",
                                  help="Output file (one format) or folder (all) [default: the run directory]."),
    opset: int = typer.Option(None, "--opset", help="ONNX opset [default: 17, the widest runtime support]."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed ONNX batch size."),
    uint8_input: bool = typer.Option(False, "--uint8-input",
                                     help="Take raw uint8 NHWC pixels; scaling and normalisation run in the graph."),
    atol: float = typer.Option(1e-4, "--atol", help="Largest allowed logit difference against torch."),
    simplify: bool = typer.Option(True, "--simplify/--no-simplify", help="Simplify the ONNX graph with onnxslim."),
    exporter: str = typer.Option("legacy", "--exporter",
                                 help="ONNX exporter: legacy, TorchScript-based (opsets 7-20) | dynamo (18+)."),
    json_out: bool = typer.Option(False, "--json", help="Print the export reports as JSON."),
) -> None:
    """Export a trained model to ONNX and/or TorchScript, each checked against the torch model.

    Example: edgecv export runs/lenet5-digits   (writes model.onnx, model.pt and export.json there)
    """

    def body() -> None:
        import json

        from edgecv.exporters import (
            DEFAULT_OPSET,
            FORMATS,
            ExportError,
            default_path,
            export_onnx,
            export_torchscript,
            load_source,
            record,
        )
        from edgecv.exporters.onnx import check_opset

        formats = list(FORMATS) if fmt == "all" else [fmt]
        if fmt != "all" and fmt not in FORMATS:
            raise EdgecvError(f"--format must be onnx, torchscript or all, got {fmt!r}")
        if out_path is not None and len(formats) > 1 and out_path.suffix in (".onnx", ".pt"):
            raise EdgecvError(f"--out {out_path} names a file, but --format all writes two: pass --format onnx "
                              "or torchscript, or give --out a folder")
        fixed = _parse_batch(batch)
        chosen_opset = opset or (DEFAULT_OPSET if exporter == "legacy" else 18)
        check_opset(exporter, chosen_opset)
        if atol < 0:
            raise EdgecvError("--atol must be >= 0")
        src = load_source(source)
        reports = []
        for f in formats:
            if out_path is None:
                target = default_path(src, f, uint8_input)
            elif len(formats) == 1:
                target = out_path
            else:
                target = out_path / default_path(src, f, uint8_input).name
            _check_writable(target)
            try:
                if f == "onnx":
                    report = export_onnx(src, target, opset=chosen_opset, batch=fixed, uint8_input=uint8_input,
                                         simplify=simplify, exporter=exporter, atol=atol)
                else:
                    report = export_torchscript(src, target, uint8_input=uint8_input, atol=atol)
            except ExportError as exc:
                if exc.report is not None:
                    record(target.parent, exc.report)
                raise
            except OSError as exc:
                raise EdgecvError(f"cannot write {target}: {exc.strerror or exc}") from None
            record(target.parent, report)
            reports.append(report)
        if json_out:
            out.print_json(json.dumps([r.to_dict() for r in reports]))
        else:
            print_reports(reports)

    run_guarded(body)


def _check_writable(target: Path) -> None:
    """Fail before the expensive work when ``target`` cannot be written."""
    if target.is_dir():
        raise EdgecvError(f"cannot write {target}: it is a folder")
    check_writable_folder(target.parent, EdgecvError)
