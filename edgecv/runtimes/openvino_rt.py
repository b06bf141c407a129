"""OpenVINO's own runtime on edgecv's ONNX files: the same file, spec and metrics as ONNX Runtime, another engine.

OpenVINO reads the ONNX file directly (no conversion step, no IR files to keep in sync) and carries its
metadata, so the spec comes from the file as it does for ONNX Runtime. The int8 row is edgecv's own QDQ file:
OpenVINO turns its QuantizeLinear/DequantizeLinear pairs into its int8 kernels, so both runtimes run the very
same calibrated quantisation. An fp32 file runs at fp32 (``INFERENCE_PRECISION_HINT`` f32): OpenVINO would
otherwise lower it to bf16 on CPUs that have AMX, and "fp32" must mean fp32.

Optional: ``pip install 'edgecv[openvino]'``. Without it, asking for OpenVINO is one clear error, never a
silent fallback to ONNX Runtime. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.facts import Graph, Stated, resolve_spec
from edgecv.core.spec import ModelSpec
from edgecv.runtimes.base import Loaded, RuntimeOptions, settled
from edgecv.runtimes.ort import PRECISION, calibrated_on, check_external_data

DEVICES = ("cpu", "gpu", "npu")  # --provider values OpenVINO takes; its device names are the upper case
HINTS = ("LATENCY", "THROUGHPUT")  # OpenVINO's performance hints edgecv times


def require_openvino() -> Any:
    """The openvino module, or a one-line error naming the extra to install."""
    try:
        import openvino
    except ImportError:
        raise ModelError("the openvino runtime needs OpenVINO: pip install 'edgecv[openvino]'") from None
    return openvino


def _metadata(model: Any) -> dict[str, str]:
    """The ONNX file's metadata_props, which OpenVINO keeps under rt_info['framework']."""
    info = model.get_rt_info()
    if "framework" not in info.keys():
        return {}
    framework = info["framework"]
    return {str(k): str(framework[k].astype(str)) for k in framework.keys()}


def load_openvino(path: Path, options: RuntimeOptions, spec: ModelSpec | Stated | None = None) -> Loaded:
    """An OpenVINO compiled model for the ONNX file ``path`` on ``options.provider`` (cpu by default)."""
    ov = require_openvino()
    if options.provider not in DEVICES:
        raise ModelError(f"the openvino runtime runs on {', '.join(DEVICES)}, not {options.provider!r}")
    device = options.provider.upper()
    core = ov.Core()
    if device not in core.available_devices:
        raise ModelError(f"OpenVINO has no {options.provider} device here; available: "
                         f"{', '.join(d.lower() for d in core.available_devices)}")
    check_external_data(path)
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"OpenVINO cannot read {path}: {first}") from None
    meta = _metadata(model)
    resolved = resolve_spec(str(path), meta, _graph(model), spec)
    spec = resolved.spec
    quant = json.loads(meta["edgecv.quantization"]) if "edgecv.quantization" in meta else {}
    if options.openvino_hint not in HINTS:
        raise EdgecvError(f"OpenVINO's performance hint is one of {', '.join(HINTS)}, not {options.openvino_hint!r}")
    config: dict[str, Any] = {"PERFORMANCE_HINT": options.openvino_hint}
    if device == "CPU":
        config["INFERENCE_PRECISION_HINT"] = "f32"
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = options.threads
    if options.profile_prefix:
        config["PERF_COUNT"] = True
    try:
        compiled = core.compile_model(model, device, config)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"OpenVINO cannot compile {path.name} for {options.provider}: {first}") from None
    batch = model.inputs[0].get_partial_shape()[0]
    fixed = batch.get_length() if batch.is_static else None

    def prepare(x: np.ndarray) -> Any:
        return ov.Tensor(np.ascontiguousarray(x))

    run_prepared, requests = _runner(ov, compiled, options.openvino_hint)

    names = [n for n, _ in _graph(model).outputs]
    scores = names.index(spec.output) if spec.output else 0

    def fetch(done: Any) -> np.ndarray:
        return np.array(done.get_output_tensor(scores).data)  # a copy: the request reuses its buffer

    return settled(Loaded(
        name="", format="openvino", precision=PRECISION.get(quant.get("method"), "fp32"), provider=options.provider,
        file=path, spec=spec, prepare=prepare, run_prepared=run_prepared, fetch=fetch, fixed_batch=fixed,
        handle=compiled, details={"openvino": ov.__version__, "device": device, "hint": options.openvino_hint,
                                  "requests": requests, "calibrated_on": calibrated_on(quant)},
    ), resolved)


def _runner(ov: Any, compiled: Any, hint: str) -> tuple[Callable[[Any], Any], int]:
    """The timed call and how many requests it runs: under LATENCY one synchronous request; under THROUGHPUT
    one request per stream (OpenVINO's optimal number), all in flight at once, waited for together."""
    if hint == "LATENCY":
        request = compiled.create_infer_request()

        def run_one(tensor: Any) -> Any:
            request.set_input_tensor(0, tensor)
            request.infer()
            return request

        return run_one, 1
    jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, jobs)

    def run_all(tensor: Any) -> Any:
        for _ in range(jobs):
            queue.start_async({0: tensor})
        queue.wait_all()
        return queue[0]

    return run_all, jobs


def _graph(model: Any) -> Graph:
    """An OpenVINO model's inputs and outputs as (name, shape), None for each dynamic dimension."""
    def shaped(ports: Any) -> list[tuple[str, tuple[int | None, ...]]]:
        rows = []
        for port in ports:
            shape = port.get_partial_shape()
            dims = () if shape.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in shape)
            rows.append((port.get_any_name(), dims))
        return rows

    return Graph(shaped(model.inputs), shaped(model.outputs))
