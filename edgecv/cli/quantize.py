"""`edgecv quantize`: int8 static/dynamic and fp16 ONNX variants, measured against the fp32 model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import StatusLine, err, out, run_guarded
from edgecv.cli.specflags import SpecFlags, spec_flags
from edgecv.core.errors import EdgecvError
from edgecv.report.cells import fmt_bytes
from edgecv.rundir import RunDir


def parse_methods(text: str) -> tuple[str, ...]:
    """'all' or a comma-separated list of methods."""
    from edgecv.quantize import METHODS

    if text.strip() == "all":
        return METHODS
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise EdgecvError(f"--method takes {', '.join(METHODS)}, a comma-separated list of them, or all; "
                          f"got {text!r}")
    return names


def resolve_model(path: Path) -> Path:
    """A run directory means its model.onnx."""
    run = RunDir(path)
    if path.is_dir() and run.checkpoints.is_dir():
        if not run.onnx.is_file():
            raise EdgecvError(f"{path} has no model.onnx yet: run edgecv export {path} --format onnx first")
        return run.onnx
    return path


def print_report(report) -> None:
    """One table: the fp32 source, then each quantised file, with size and accuracy against fp32."""
    src = report.source
    table = Table(title=f"{escape(src['file'])}: accuracy on {escape(report.data['name'])} "
                        f"({report.data['val_images']} val / {report.data['test_images']} test images)")
    table.add_column("method", no_wrap=True, min_width=12)
    for col in ("size", "vs fp32", "val acc", "test acc", "Δ test", "float"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_row("fp32", fmt_bytes(src["size_bytes"]), "1.00x", f"{src['val_accuracy']:.2%}",
                  f"{src['test_accuracy']:.2%}", "", "")
    for r in report.results:
        change = -r.test_drop_pp if abs(r.test_drop_pp) >= 0.005 else 0.0
        table.add_row(r.method, fmt_bytes(r.size_bytes), f"{r.size_bytes / src['size_bytes']:.2f}x",
                      f"{r.val_accuracy:.2%}", f"{r.test_accuracy:.2%}", f"{change:+.2f} pp", str(len(r.float_nodes)))
    out.print(table)
    for r in report.results:
        if r.method == "int8-static":
            s = r.settings
            flavour = "".join("U8" if s[k] == "uint8" else "S8" for k in ("activation_type", "weight_type"))
            why = f" ({s['chosen_for']})" if "chosen_for" in s else ""
            if s.get("tuned_for", "onnxruntime") != "onnxruntime":
                why += f", tuned for {s['tuned_for']} and timed on it"
            out.print(f"int8-static: {flavour}{', reduce_range' if s['reduce_range'] else ''}, "
                      f"{'per-channel' if s['per_channel'] else 'per-tensor'} weights, {s['calib_method']} "
                      f"calibration on {s['calib_size']} {_calib_images(report)}{escape(why)}", soft_wrap=True)
        if r.float_nodes:
            out.print(f"{r.method}: kept {len(r.float_nodes)} node(s) in float to stay within the budget: "
                      f"{escape(', '.join(r.float_nodes))}", soft_wrap=True)
        for note in r.notes:
            err.print(f"[yellow]note:[/] {r.method}: {escape(note)}", soft_wrap=True)
    for note in report.data.get("spec_notes", []):
        err.print(f"note: {escape(note)}", soft_wrap=True)
    for note in report.notes:
        err.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)
    for r in report.results:
        out.print(f"[green]wrote[/] {escape(r.file)}", soft_wrap=True)


def _calib_images(report) -> str:
    split = report.data.get("calib_split", "train")
    return "training images" if split == "train" else f"images ({split})"


@spec_flags
def quantize_cmd(
    model: Path = typer.Argument(..., help="An fp32 ONNX file, or a run directory (its model.onnx)."),
    method: str = typer.Option("all", "--method", "-m",
                               help="int8-static | int8-dynamic | fp16 | all, or a comma-separated list."),
    data: str = typer.Option(None, "--data",
                             help="Data set for calibration and accuracy [default: the one the model was trained "
                                  "on]; required for an ONNX file without an edgecv spec."),
    data_root: Path = typer.Option(None, "--data-root", help="Where torchvision data sets live [default: the run's]."),
    calib_size: int = typer.Option(512, "--calib-size",
                                   help="Calibration images: a seeded draw from the training split (a file from "
                                        "elsewhere: from every image of --data, the rest measured)."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax | entropy | percentile."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per output channel."),
    activation_type: str = typer.Option(None, "--activation-type",
                                        help="uint8 | int8 [default: what this CPU runs fastest]."),
    weight_type: str = typer.Option(None, "--weight-type", help="int8 | uint8 [default: what this CPU runs fastest]."),
    reduce_range: bool = typer.Option(None, "--reduce-range/--no-reduce-range",
                                      help="7-bit weights [default: on for x86 CPUs without VNNI, which saturate]."),
    max_drop: float = typer.Option(None, "--max-accuracy-drop",
                                   help="Accuracy budget in percentage points of validation accuracy against fp32: "
                                        "return the most sensitive nodes to float until it holds."),
    max_float_nodes: int = typer.Option(None, "--max-float-nodes",
                                        help="Most nodes the budget may return to float [default: no limit]."),
    speed_batch: int = typer.Option(64, "--speed-batch",
                                    help="Batch size at which each file is timed against fp32 on this CPU; 1 checks "
                                         "single-image latency. A fixed-batch model is timed at its own."),
    tune_for: str = typer.Option("onnxruntime", "--tune-for",
                                 help="onnxruntime | openvino: the engine the int8-static file is shaped and timed "
                                      "for. openvino writes MODEL.int8-openvino.onnx (convolution outputs and "
                                      "SiLU/hard-swish left in float for OpenVINO's fused kernels); ONNX Runtime "
                                      "runs that file slower than its own."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Output folder [default: next to the input]."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    *,
    flags: SpecFlags,
) -> None:
    """Quantise an fp32 ONNX model to int8 (static, dynamic) and fp16, measuring each against fp32.

    Writes MODEL.int8.onnx, MODEL.int8-dynamic.onnx and MODEL.fp16.onnx next to the input, each with the
    ModelSpec and its quantisation settings in its metadata, and records validation and test accuracy and
    size before and after in quantize.json.

    Example: edgecv quantize runs/lenet5-digits --max-accuracy-drop 0.5

    For OpenVINO: edgecv quantize runs/mobilenet --tune-for openvino writes model.int8-openvino.onnx, measured
    and timed on OpenVINO; bench it with edgecv bench runs/mobilenet/model.onnx
    runs/mobilenet/model.int8-openvino.onnx --runtimes openvino.

    A file from elsewhere: edgecv quantize model.onnx --data folder:photos --labels @classes.txt --resize 256
    --crop 224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 calibrates on a seeded draw of --calib-size of
    the folder's images, measures on the rest, and writes the spec into each file, so later commands need no
    flags.
    """

    def body() -> None:
        from edgecv.quantize import QuantizeError, QuantizeOptions, quantize

        options = QuantizeOptions(
            methods=("int8-static",) if tune_for != "onnxruntime" and method == "all" else parse_methods(method),
            data=data, data_root=str(data_root) if data_root else None,
            calib_size=calib_size, calib_method=calib_method, per_channel=per_channel,
            activation_type=activation_type, weight_type=weight_type, reduce_range=reduce_range,
            max_accuracy_drop=max_drop, max_float_nodes=max_float_nodes, speed_batch=speed_batch, out_dir=out_dir,
            facts=flags.stated(), label_map=flags.folder_names(), tune_for=tune_for,
        )
        options.validate()
        path = resolve_model(model)
        with StatusLine("quantising") as status:
            try:
                report = quantize(path, options, status.update)
            except QuantizeError as exc:
                report = exc.report
                status.stop()
                _show(report, json_out)
                raise
        _show(report, json_out)

    run_guarded(body)


def _show(report, json_out: bool) -> None:
    if json_out:
        out.print_json(json.dumps(report.to_dict()))
    elif report.results:
        print_report(report)
