"""TorchScript export: traced, frozen, with the ModelSpec in ``_extra_files["edgecv_spec.json"]``.

The file loads with plain ``torch.jit.load`` anywhere torch runs; edgecv is not needed to use it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from edgecv.core.fsutil import atomic_path
from edgecv.core.trust import remember
from edgecv.exporters.common import (
    ExportReport,
    Source,
    check_parity,
    example_input,
    exportable,
    parity_inputs,
    quiet_torch,
)

SPEC_FILE = "edgecv_spec.json"


def _script(module: torch.nn.Module, example: torch.Tensor, check: list[tuple[torch.Tensor]]):
    """Trace ``module``; script it when tracing would record the wrong program.

    Tracing follows one path through Python control flow; ``check_inputs`` re-runs the trace at other
    batch sizes and fails if the outputs differ, and then scripting keeps the control flow instead.
    """
    try:
        return torch.jit.trace(module, example, check_inputs=check)
    except torch.jit.TracingCheckError:
        return torch.jit.script(module)


def export_torchscript(source: Source, out: Path, *, uint8_input: bool = False, atol: float = 1e-4) -> ExportReport:
    """Write a frozen TorchScript file to ``out`` once it matches the torch model within ``atol``.

    Frozen rather than ``optimize_for_inference``d: the latter rewrites for CPU MKLDNN and its files do
    not reload (torch 2.15), while freezing already folds BatchNorm into convolutions and stays portable
    across devices.
    """
    start = time.perf_counter()
    module, spec = exportable(source, uint8_input)
    example = example_input(spec, 2)
    checks = [(example_input(spec, b, seed=b),) for b in (1, 37)]
    with quiet_torch(), torch.no_grad():
        frozen = torch.jit.freeze(_script(module, example, checks).eval())
    summary = source.summary
    report = ExportReport(
        format="torchscript", file=str(out), opset=None,
        exporter=f"torch.jit trace + freeze (torch {torch.__version__})",
        batch="dynamic", input={"shape": list(example.shape[1:]), "dtype": spec.dtype, "layout": spec.layout},
        size_bytes=0, params=summary.total_params, macs=summary.macs, atol=atol,
    )
    with atomic_path(out) as tmp:
        with quiet_torch():
            with open(tmp, "wb") as fh:  # through Python's file: a full disk is an OSError, not an abort
                torch.jit.save(frozen, fh, _extra_files={SPEC_FILE: spec.to_json()})
            loaded = torch.jit.load(str(tmp), map_location="cpu")
        check_parity(report, module, parity_inputs(source, spec, None),
                     lambda x: loaded(x).detach().numpy())
        report.size_bytes = tmp.stat().st_size
    remember(out)  # edgecv wrote this file: its later loads need no --trust-torchscript
    report.seconds = time.perf_counter() - start
    return report
