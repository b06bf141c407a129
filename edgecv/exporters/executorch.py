"""ExecuTorch ``.pte`` files: PyTorch's on-device runtime, with the XNNPACK delegate for CPUs.

The model goes through ``torch.export`` (dynamic batch up to a bound, :data:`DEFAULT_BOUND` unless asked; the
example batch is that bound, as XNNPACK sizes its buffers from the example and refuses larger batches; the file
records it), is lowered to XNNPACK with
``to_edge_transform_and_lower`` and serialised. The spec travels inside the file as a constant method
(``edgecv_spec``, a JSON string), so no sidecar file can drift from it. int8 goes through the PT2E
quantiser that XNNPACK defines (symmetric, per-channel weights), calibrated on the same training images that
calibrate the ONNX int8 file. The written file is loaded back with ExecuTorch's own runtime and compared with
the torch model: fp32 must match within ``atol``; an int8 file's difference is recorded, as quantisation
moves logits by design.

Optional: ``pip install 'edgecv[executorch]'``.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import atomic_path
from edgecv.core.spec import ModelSpec
from edgecv.exporters.common import (
    ExportReport,
    Source,
    check_parity,
    compare,
    example_input,
    exportable,
    parity_inputs,
    quiet_torch,
    require_calibration_data,
)
from edgecv.modeldata import class_positions, load_bundle
from edgecv.quantize.data import calibration_images
from edgecv.runtimes.executorch_rt import (
    BOUND_METHOD,
    QUANT_METHOD,
    SPEC_METHOD,
    load_executorch,
    require_executorch,
)

# the batch bound of an exported program: XNNPACK plans its buffers for that many images, and an edge app runs a
# frame or a few at a time (mobilenet_v3_large at 224, fp32: 1,153 MB and a 3.6 s cold start at 256, 60 MB and
# 37 ms at 8, 43 MB at 1; the same batch-1 latency; 2-core Intel Xeon). A larger bound is one flag away.
DEFAULT_BOUND = 8


def check_bound(max_batch: int) -> None:
    """A batch bound a program can have, or a one-line error."""
    if max_batch < 1:
        raise EdgecvError(f"--max-batch must be at least 1, got {max_batch}")


def lower(module: torch.nn.Module, spec: ModelSpec, example: torch.Tensor, *, dynamic: bool = True,
          calib: np.ndarray | None = None) -> bytes:
    """The ``.pte`` bytes of ``module`` lowered to XNNPACK, carrying ``spec``; int8 when ``calib`` (model-ready
    calibration images) is given. A dynamic program takes batches up to the example's (XNNPACK plans its
    buffers for that many images); a static one the example's batch alone."""
    require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    bound = len(example)
    dynamic = dynamic and bound > 1  # a batch of one is a static program
    shapes = ({0: torch.export.Dim("batch", min=1, max=bound)},) if dynamic else None
    with quiet_torch(), torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=shapes)
        constants = {SPEC_METHOD: spec.to_json(), BOUND_METHOD: bound}
        if calib is not None:
            program = torch.export.export(_quantized(program, calib), (example,), dynamic_shapes=shapes)
            constants[QUANT_METHOD] = json.dumps({"method": "int8-static", "quantizer": "XNNPACKQuantizer",
                                                  "calib_images": int(len(calib))})
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=constants)
        return edge.to_executorch().buffer


def _quantized(program: Any, calib: np.ndarray) -> torch.nn.Module:
    """The exported program quantised by XNNPACK's PT2E quantiser, calibrated on ``calib``."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(program.module(), quantizer)
    for start in range(0, len(calib), 64):
        prepared(torch.from_numpy(np.ascontiguousarray(calib[start:start + 64])))
    return convert_pt2e(prepared)


def export_executorch(source: Source, out: Path, *, calib: np.ndarray | None = None,
                      atol: float = 1e-4, max_batch: int = DEFAULT_BOUND) -> ExportReport:
    """Write ``out`` (fp32, or int8 with ``calib``) once ExecuTorch's own runtime runs it like the torch model.
    It takes batches of up to ``max_batch`` images, and its memory is planned for that many. Nothing is left
    at ``out`` on failure."""

    check_bound(max_batch)
    start = time.perf_counter()
    module, spec = exportable(source, uint8_input=False)
    example = example_input(spec, max_batch)  # XNNPACK's buffers take the example's batch as their capacity
    summary = source.summary
    require_executorch()
    version = importlib.metadata.version("executorch")
    report = ExportReport(
        format="executorch", file=str(out), opset=None,
        exporter=f"torch.export + XNNPACK (executorch {version}, torch {torch.__version__})"
                 + (", int8 PT2E" if calib is not None else ""),
        batch=f"dynamic (1-{max_batch})" if max_batch > 1 else "1",
        input={"name": "x", "shape": ["batch", *example.shape[1:]], "dtype": spec.dtype, "layout": spec.layout},
        size_bytes=0, params=summary.total_params, macs=summary.macs, atol=atol,
    )
    data = lower(module, spec, example, calib=calib)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
        loaded = load_executorch(tmp, None, None)
        inputs = parity_inputs(source, spec, None)
        if calib is None:
            check_parity(report, module, inputs, lambda x: loaded.logits(x.numpy()))
        else:  # quantised logits differ by design: recorded, and the file is kept
            with torch.no_grad():
                report.parity = [compare(name, module(x).numpy(), loaded.logits(x.numpy()))
                                 for name, x in inputs.items()]
            report.passed = True
        report.size_bytes = tmp.stat().st_size
    report.seconds = time.perf_counter() - start
    return report


def check_calibration_data(source: Source) -> None:
    """A run deployed as it is names no data set unless it was given one: say so before any file is written."""
    require_calibration_data(source.config.data)



def calibration_for(source: Source, calib_size: int) -> np.ndarray:
    """The training images that calibrate the run's ONNX int8 file, drawn the same way (edgecv.quantize)."""

    cfg, spec = source.config, source.spec
    check_calibration_data(source)
    bundle = load_bundle(cfg.data, cfg.data_root, spec.input_shape, cfg.keep_going, cfg.stream, spec.framing)
    class_positions(bundle.name, bundle.labels, spec)  # the classes, matched by name (a subset will do)
    return calibration_images(spec, bundle, calib_size)
