"""Exporters: TorchScript and ONNX files that carry their spec and are proven equal to the torch model."""

from __future__ import annotations

import json
from pathlib import Path

from edgecv.core.fsutil import write_json
from edgecv.exporters.common import ExportError, ExportReport, Source, load_source, require_calibration_data
from edgecv.exporters.onnx import DEFAULT_OPSET, check_opset, export_onnx
from edgecv.exporters.torchscript import export_torchscript
from edgecv.rundir import RunDir

FORMATS = ("onnx", "torchscript")  # what --format all writes
OPTIONAL_FORMATS = ("executorch",)  # needs its extra: edgecv[executorch]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "executorch": ".pte"}


def default_path(source: Source, fmt: str, uint8_input: bool) -> Path:
    """model.onnx / model.pt in the run directory; model.uint8-input.* for the uint8 variant."""
    return RunDir(source.out_dir).model_file(SUFFIX[fmt], uint8_input)


def record(out_dir: Path, report: ExportReport) -> None:
    """Add or replace this file's entry in ``out_dir/export.json``."""
    path = RunDir(out_dir).export_record
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        data = {}
    exports = data.get("exports", {}) if isinstance(data, dict) else {}
    exports[Path(report.file).name] = report.to_dict()
    write_json(path, {"exports": exports})


__all__ = ["DEFAULT_OPSET", "FORMATS", "OPTIONAL_FORMATS", "ExportError", "ExportReport", "Source", "check_opset",
           "default_path", "export_onnx", "export_torchscript", "load_source", "record", "require_calibration_data"]
