"""`edgecv export`: TorchScript and ONNX files with a parity check against the torch model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import TRUST_CODE, fmt_count, out, run_guarded
from edgecv.cli.specflags import SpecFlags, spec_flags
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import check_writable_folder
from edgecv.report.cells import fmt_bytes


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
                  f"{_parity(r)} in {r.seconds:.1f}s{_others(r.other_runtimes)}", soft_wrap=True)


def _parity(r) -> str:
    if r.max_abs_diff <= r.tolerance:
        scaled = f" x the largest logit {r.logit_scale:.3g} = {r.tolerance:.2g}" if r.logit_scale > 1 else ""
        return f"parity ok (atol {r.atol:g}{scaled})"
    return f"int8: top-1 agreement {r.agreement:.0%} with torch, max abs diff {r.max_abs_diff:.2g}"


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


@spec_flags
def export_cmd(
    source: Path = typer.Argument(..., help="A run directory (its best checkpoint), a checkpoint file, a model to "
                                            "deploy as it is (torchvision:NAME, with --weights), or a state dict "
                                            "trained elsewhere (with --model)."),
    fmt: str = typer.Option("all", "--format", "-f",
                            help="onnx | torchscript | all (both) | executorch (model.pte and model.int8.pte, "
                                 "XNNPACK; pip install 'edgecv[executorch]')."),
    out_path: Path = typer.Option(None, "--out", "-o",
                                  help="Output file (one format) or folder (all) [default: the run directory]."),
    opset: int = typer.Option(None, "--opset", help="ONNX opset [default: 17, the widest runtime support]."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed ONNX batch size."),
    uint8_input: bool = typer.Option(False, "--uint8-input",
                                     help="Take raw uint8 NHWC pixels; scaling and normalisation run in the graph."),
    atol: float = typer.Option(1e-4, "--atol", help="Largest allowed logit difference against torch, per unit of "
                                                    "the largest |logit| when that is over 1."),
    simplify: bool = typer.Option(True, "--simplify/--no-simplify", help="Simplify the ONNX graph with onnxslim."),
    exporter: str = typer.Option("legacy", "--exporter",
                                 help="ONNX exporter: legacy, TorchScript-based (opsets 7-20) | dynamo (18+)."),
    calib_size: int = typer.Option(512, "--calib-size",
                                   help="executorch: training images calibrating model.int8.pte (the same draw as "
                                        "edgecv quantize)."),
    max_batch: int = typer.Option(None, "--max-batch",
                                  help="executorch: the largest batch the .pte files take. XNNPACK plans their "
                                       "memory for that many images: 1 for single images saves the most "
                                       "[default: 8]."),
    json_out: bool = typer.Option(False, "--json", help="Print the export reports as JSON."),
    model: str = typer.Option(None, "--model", help="With a state dict as SOURCE: its architecture "
                                                    "(torchvision:NAME, timm:ARCH.TAG, or your own "
                                                    "path/net.py:factory, which runs that code)."),
    weights: str = typer.Option(None, "--weights",
                                help="With a model name as SOURCE: a weights file (any state dict as saved: nested "
                                     "under state_dict/model/..., module./model. prefixes, .safetensors) or a "
                                     "torchvision weights name (DEFAULT, IMAGENET1K_V2), downloaded by torchvision "
                                     "[default: random weights, for speed measurements only]."),
    weights_meta: str = typer.Option(None, "--weights-meta",
                                     help="The torchvision weights entry whose preprocessing and categories apply "
                                          "(e.g. IMAGENET1K_V1) [default: the architecture's DEFAULT]."),
    data: str = typer.Option(None, "--data", help="A model deployed as it is: the data set (folder:PATH) its "
                                                  "parity check, ExecuTorch calibration and later commands use."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run directory --out names, if any."),
    trust_code: bool = TRUST_CODE,
    *,
    flags: SpecFlags,
) -> None:
    """Export a trained model to ONNX and/or TorchScript, each checked against the torch model.

    A model that was not trained here is deployed as it is: `edgecv export torchvision:resnet18 --weights FILE
    --out DIR` (or `edgecv export weights.pth --model torchvision:NAME --labels a,b,c`) first writes the run
    directory DIR (config, spec, checkpoint), then its files, as for any run. --labels names the classes of a
    head trained elsewhere [default: the weights entry's categories]. Your own module's state dict also needs the
    preprocessing it was trained with: `edgecv export weights.pth --model net.py:build --labels a,b --mean 0.5
    --std 0.25 [--crop 64 --color L --resize 72]` (the size defaults to the factory's input_size); this runs
    your code.

    Example: edgecv export runs/lenet5-digits   (writes model.onnx, model.pt and export.json there)
    """

    def body() -> None:
        from edgecv.exporters import default_path, load_source, record, require_calibration_data

        formats, fixed, chosen_opset = _checked_options(fmt, out_path, opset, batch, uint8_input, atol, exporter,
                                                        calib_size, max_batch)
        adopting = _adopting(source, model)
        stated = flags.stated()
        given = {"--weights": weights, "--weights-meta": weights_meta, "--data": data,
                 "--overwrite": overwrite or None,
                 **{"--" + k.replace("_", "-"): v for k, v in (stated.given() if stated else {}).items()},
                 "--label-map": flags.label_map}
        if not adopting and any(v is not None for v in given.values()):
            flag = next(k for k, v in given.items() if v is not None)
            raise EdgecvError(f"{flag} applies to a model deployed as it is (torchvision:NAME, or a state dict with "
                              f"--model), not to {source}")
        run_dir = None
        if adopting and fmt == "executorch":
            require_calibration_data(data)
        if adopting:
            if flags.label_map is not None:
                raise EdgecvError("--label-map applies to scoring a model on a folder (eval, bench, quantize)")
            run_dir = _adopt(adopting, source, weights, weights_meta, stated, data, out_path, overwrite)
        src = load_source(run_dir or source, trust_code)
        reports = []
        for f in formats:
            name = default_path(src, f, uint8_input).name  # the file's name in the run directory
            target = (src.out_dir / name if run_dir else out_path if out_path is not None and len(formats) == 1
                      else (out_path or src.out_dir) / name)
            _check_writable(target)
            if f == "executorch":
                reports.extend(_executorch(src, target, atol, calib_size, record, max_batch))
                continue
            reports.append(_export_one(src, f, target, {"uint8_input": uint8_input, "atol": atol} if
                                       f == "torchscript" else {"opset": chosen_opset, "batch": fixed,
                                                                "uint8_input": uint8_input, "simplify": simplify,
                                                                "exporter": exporter, "atol": atol}))
        if json_out:
            out.print_json(json.dumps([r.to_dict() for r in reports]))
        else:
            print_reports(reports)

    run_guarded(body)


def _adopting(source: Path, model: str | None) -> str | None:
    """The architecture of a model deployed as it is: SOURCE itself (a name such as torchvision:resnet18 that
    is no path here), or --model for a state dict; None for a run directory or an edgecv checkpoint."""
    if model is not None:
        if not source.is_file():
            raise EdgecvError(f"--model {model} takes a weights file as SOURCE; {source} is not a file")
        return model
    text = str(source)
    return text if ":" in text and not source.exists() else None


def _adopt(model: str, source: Path, weights: str | None, weights_meta: str | None, stated,
           data: str | None, out_path: Path | None, overwrite: bool) -> Path:
    """Write the run directory of a model deployed as it is, say where its facts came from, and return it."""
    from edgecv.train.adopt import adopt

    if weights is not None and source.is_file():
        raise EdgecvError(f"{source} is the weights file; --weights is for a model name as SOURCE")
    if out_path is not None and out_path.suffix in (".onnx", ".pt", ".pte"):
        raise EdgecvError(f"--out {out_path} names a file; a model deployed as it is gets a run directory: give "
                          "--out a folder")
    adopted = adopt(model, weights=str(source) if source.is_file() else weights,
                    labels=list(stated.labels) if stated and stated.labels else None, weights_meta=weights_meta,
                    data=data, out=out_path, overwrite=overwrite, stated=stated)
    for note in adopted.notes:
        out.print(f"{escape(note)}", soft_wrap=True)
    out.print(f"[green]wrote[/] run directory {escape(str(adopted.run_dir))} ({len(adopted.spec.labels)} classes, "
              f"input {'x'.join(map(str, adopted.spec.input_shape))})", soft_wrap=True)
    return adopted.run_dir


def fixed_batch_given(batch: str) -> bool:
    return batch != "dynamic"


def _executorch(src, target: Path, atol: float, calib_size: int, record, max_batch: int | None) -> list:
    """model.pte (fp32, parity within atol) and model.int8.pte (PT2E int8) beside it, both taking batches of up
    to ``max_batch`` (None: the exporter's default bound)."""
    from edgecv.exporters.executorch import DEFAULT_BOUND, calibration_for, check_calibration_data, export_executorch

    max_batch = max_batch or DEFAULT_BOUND

    int8_target = target.with_name(target.name.removesuffix(".pte") + ".int8.pte")
    _check_writable(int8_target)
    check_calibration_data(src)
    reports = [export_executorch(src, target, atol=atol, max_batch=max_batch)]
    record(target.parent, reports[0])
    reports.append(export_executorch(src, int8_target, calib=calibration_for(src, calib_size), max_batch=max_batch))
    record(int8_target.parent, reports[1])
    return reports


def _check_writable(target: Path) -> None:
    """Fail before the expensive work when ``target`` cannot be written."""
    if target.is_dir():
        raise EdgecvError(f"cannot write {target}: it is a folder")
    check_writable_folder(target.parent, EdgecvError)


def _checked_options(fmt: str, out_path: Path | None, opset: int | None, batch: str, uint8_input: bool, atol: float,
                     exporter: str, calib_size: int, max_batch: int | None) -> tuple[list[str], int | None, int]:
    """The formats to write, the fixed batch (None: dynamic) and the opset, or a one-line error before any
    model is loaded."""
    from edgecv.exporters import DEFAULT_OPSET, FORMATS, OPTIONAL_FORMATS, check_opset

    formats = list(FORMATS) if fmt == "all" else [fmt]
    if fmt != "all" and fmt not in (*FORMATS, *OPTIONAL_FORMATS):
        raise EdgecvError(f"--format must be onnx, torchscript, all or executorch, got {fmt!r}")
    if calib_size < 1:
        raise EdgecvError(f"--calib-size must be at least 1, got {calib_size}")
    if max_batch is not None and fmt != "executorch":
        raise EdgecvError("--max-batch applies to --format executorch; ONNX and TorchScript files take any batch")
    if fmt == "executorch":
        from edgecv.exporters.executorch import check_bound, require_executorch

        require_executorch()
        if max_batch is not None:
            check_bound(max_batch)
        if uint8_input or fixed_batch_given(batch):
            raise EdgecvError("--uint8-input and --batch apply to onnx and torchscript; a .pte takes float "
                              "NCHW input with a dynamic batch")
    if out_path is not None and len(formats) > 1 and out_path.suffix in (".onnx", ".pt"):
        raise EdgecvError(f"--out {out_path} names a file, but --format all writes two: pass --format onnx "
                          "or torchscript, or give --out a folder")
    fixed = _parse_batch(batch)
    chosen_opset = opset or (DEFAULT_OPSET if exporter == "legacy" else 18)
    check_opset(exporter, chosen_opset)
    if atol < 0:
        raise EdgecvError("--atol must be >= 0")
    return formats, fixed, chosen_opset


def _export_one(src, fmt: str, target: Path, options: dict):
    """One ONNX or TorchScript file, recorded in export.json beside it (a failed parity check too)."""
    from edgecv.exporters import ExportError, export_onnx, export_torchscript, record

    try:
        report = (export_onnx if fmt == "onnx" else export_torchscript)(src, target, **options)
    except ExportError as exc:
        if exc.report is not None:
            record(target.parent, exc.report)
        raise
    except OSError as exc:
        raise EdgecvError(f"cannot write {target}: {exc.strerror or exc}") from None
    record(target.parent, report)
    return report
