"""ONNX export: one self-contained file, checked, simplified, with the ModelSpec in its metadata.

Exporter choice: the legacy TorchScript-based exporter (``dynamo=False``) is the default. It emits exactly the
requested opset, so the default opset 17 reaches the widest range of runtimes (TensorRT 8.6, OpenVINO,
older ONNX Runtime and mobile converters), and its ``dynamic_axes`` give a batch axis that serves any
batch size. The dynamo exporter only emits opset 18 and newer: asked for 17, it failed to down-convert
MobileNetV3 and silently kept opset 18 for VGG16 (torch 2.15); it also took 10-20x longer on this zoo.
``exporter="dynamo"`` remains available for opset 18+ (and for torch versions without the old exporter).
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from edgecv import __version__
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import atomic_path
from edgecv.core.onnxfile import SPEC_KEY
from edgecv.core.spec import ModelSpec
from edgecv.exporters.common import (
    ExportError,
    ExportReport,
    Source,
    check_parity,
    compare,
    example_input,
    exportable,
    parity_inputs,
    quiet_fds,
    quiet_torch,
)
from edgecv.runtimes import RuntimeOptions
from edgecv.runtimes.openvino_rt import load_openvino

DEFAULT_OPSET = 17
EXPORTERS = {"legacy": (7, 20), "dynamo": (18, 23)}  # opsets each exporter can emit
INPUT, OUTPUT = "input", "logits"


def check_opset(exporter: str, opset: int) -> None:
    """Refuse opsets the chosen exporter cannot emit, naming the range it can."""
    if exporter not in EXPORTERS:
        raise EdgecvError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    low, high = EXPORTERS[exporter]
    if not low <= opset <= high:
        raise EdgecvError(f"the {exporter} exporter emits opsets {low} to {high}, not {opset}")


def _torch_export(module: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, exporter: str,
                  dynamic: bool) -> None:
    try:
        with quiet_torch(), quiet_fds():
            if exporter == "dynamo":
                shapes = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic else None
                program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                            input_names=[INPUT], output_names=[OUTPUT], dynamic_shapes=shapes,
                                            external_data=False, verbose=False)
                program.save(str(path), external_data=False)
            else:
                axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic else None
                torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=axes)
    except torch.onnx.errors.UnsupportedOperatorError as exc:
        raise ExportError(_unsupported_message(str(exc), opset)) from None
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise ExportError(f"torch.onnx ({exporter}) could not export the model: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unsupported_message(text: str, opset: int) -> str:
    op = re.search(r"operator '([^']+)'", text)
    added = re.search(r"added in version (\d+)", text)
    name = op.group(1) if op else "an operator"
    if added:
        return f"operator {name} is not in ONNX opset {opset}; it needs opset {added.group(1)}: " \
               f"pass --opset {added.group(1)} or higher"
    return f"operator {name} has no ONNX export in opset {opset} with the legacy exporter; " \
           "try --exporter dynamo (opset 18 or newer)"


def _finish(model: onnx.ModelProto, spec: ModelSpec, simplify: bool) -> onnx.ModelProto:
    """Simplify, infer shapes, check, and stamp the spec and provenance into the model."""
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported graph is not valid ONNX: {_first_line(exc)}") from None
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {SPEC_KEY: spec.to_json()})
    model.producer_name = "edgecv"
    model.producer_version = __version__
    c, h, w = spec.input_shape
    shape = f"N x {h} x {w} x {c} uint8 (raw pixels)" if spec.dtype == "uint8" else f"N x {c} x {h} x {w} float32"
    model.doc_string = (f"edgecv {spec.arch} trained on {spec.dataset}: input '{INPUT}' {shape}, "
                        f"output '{OUTPUT}' N x {spec.num_classes} ({', '.join(spec.labels[:10])}"
                        f"{', ...' if spec.num_classes > 10 else ''}). Spec in metadata_props['{SPEC_KEY}'].")
    return model


def openvino_parity(path: Path, spec: ModelSpec, module: torch.nn.Module, inputs: dict[str, torch.Tensor],
                    tolerance: float) -> dict[str, Any]:
    """The exported file on OpenVINO's runtime against the torch model, on the parity inputs."""

    try:
        loaded = load_openvino(path, RuntimeOptions(), spec)
    except EdgecvError as exc:
        return {"passed": False, "error": str(exc)}
    with torch.no_grad():
        rows = [compare(name, module(x).numpy(), loaded.run(x.numpy())) for name, x in inputs.items()]
    worst = max(r.max_abs_diff for r in rows)
    agreement = min(r.top1_agreement for r in rows)
    return {"passed": worst <= tolerance and agreement == 1.0, "max_abs_diff": worst, "top1_agreement": agreement,
            "version": loaded.details["openvino"]}


def export_onnx(source: Source, out: Path, *, opset: int = DEFAULT_OPSET, batch: int | None = None,
                uint8_input: bool = False, simplify: bool = True, exporter: str = "legacy",
                atol: float = 1e-4) -> ExportReport:
    """Write ``out`` once ONNX Runtime's output matches the torch model within ``atol``.

    ``batch`` None gives a dynamic batch axis; an int fixes it. Nothing is left at ``out`` on failure.
    """
    import onnxruntime as ort

    check_opset(exporter, opset)
    start = time.perf_counter()
    module, spec = exportable(source, uint8_input)
    example = example_input(spec, batch or 2)  # batch 2: an example of 1 invites batch specialisation
    summary = source.summary
    report = ExportReport(
        format="onnx", file=str(out), opset=opset,
        exporter=f"torch.onnx {exporter} exporter (torch {torch.__version__})",
        batch=str(batch) if batch else "dynamic",
        input={"name": INPUT, "shape": ["batch" if not batch else batch, *example.shape[1:]],
               "dtype": spec.dtype, "layout": spec.layout},
        size_bytes=0, params=summary.total_params, macs=summary.macs, atol=atol,
    )
    with atomic_path(out) as tmp:
        _torch_export(module, example, tmp, opset, exporter, dynamic=batch is None)
        model = _finish(onnx.load(str(tmp)), spec, simplify)
        onnx.save(model, str(tmp), save_as_external_data=False)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        inputs = parity_inputs(source, spec, batch)
        check_parity(report, module, inputs, lambda x: np.asarray(session.run([OUTPUT], {INPUT: x.numpy()})[0]))
        if importlib.util.find_spec("openvino") is not None:
            report.other_runtimes["openvino"] = openvino_parity(tmp, spec, module, inputs, report.tolerance)
        report.size_bytes = tmp.stat().st_size
    report.seconds = time.perf_counter() - start
    return report

