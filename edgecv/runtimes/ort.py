"""ONNX Runtime: provider selection that never falls back silently, session options, IO binding on CUDA.

Torch-free and onnx-free: the spec and quantisation metadata are read through ONNX Runtime itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.facts import Graph, Stated, resolve_spec
from edgecv.core.fsutil import leaves_folder
from edgecv.core.spec import ModelSpec
from edgecv.runtimes.base import Loaded, RuntimeOptions, settled

# an ONNX StringStringEntryProto with key "location": the path of a tensor's external data
_LOCATION = re.compile(rb"\x0a\x08location\x12")

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
SHORT = {v: k for k, v in PROVIDERS.items()}
GRAPH_LEVELS = ("disable", "basic", "extended", "all")
CUDNN_SEARCH = {"exhaustive": "EXHAUSTIVE", "heuristic": "HEURISTIC", "default": "DEFAULT"}
PRECISION = {"int8-static": "int8", "int8-dynamic": "int8-dynamic", "fp16": "fp16"}


class ProviderError(EdgecvError):
    """The requested execution provider is missing, or ONNX Runtime did not use it."""


def available() -> list[str]:
    """ONNX Runtime's providers in this build, by edgecv's short names where it has one."""
    import onnxruntime as ort

    return [SHORT.get(p, p) for p in ort.get_available_providers()]


def provider_chain(options: RuntimeOptions) -> list[Any]:
    """The provider list for a session: the requested one (with its options), then the CPU for the nodes it
    cannot run. Fails at once, naming the available ones, when this build lacks the provider."""
    import onnxruntime as ort

    if options.provider not in PROVIDERS:
        raise ProviderError(f"--provider must be one of {', '.join(PROVIDERS)}, got {options.provider!r}")
    name = PROVIDERS[options.provider]
    have = ort.get_available_providers()
    if name not in have:
        raise ProviderError(f"this onnxruntime build has no {options.provider} provider ({name}); available: "
                            f"{', '.join(SHORT.get(p, p) for p in have)}"
                            + ("; install onnxruntime-gpu (pip install 'edgecv[gpu]')"
                               if options.provider in ("cuda", "tensorrt") else ""))
    if options.provider == "cpu":
        return [name]
    if options.cudnn_algo_search not in CUDNN_SEARCH:
        raise ProviderError(f"--cudnn-algo-search must be one of {', '.join(CUDNN_SEARCH)}")
    cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": CUDNN_SEARCH[options.cudnn_algo_search]})
    if options.provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    if options.provider == "tensorrt":
        trt: dict[str, Any] = {"trt_fp16_enable": options.trt_fp16}
        if options.trt_cache:
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=options.trt_cache)
        chain: list[Any] = [(name, trt)]
        if "CUDAExecutionProvider" in have:
            chain.append(cuda)
        return [*chain, "CPUExecutionProvider"]
    return [name, "CPUExecutionProvider"]


def session_options(options: RuntimeOptions):
    """Graph optimisation level and intra-op threads."""
    import onnxruntime as ort

    if options.graph_optimization not in GRAPH_LEVELS:
        raise EdgecvError(f"--graph-optimization must be one of {', '.join(GRAPH_LEVELS)}")
    if options.threads is not None and options.threads < 1:
        raise EdgecvError(f"--threads must be at least 1, got {options.threads}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[options.graph_optimization]
    if options.threads:
        so.intra_op_num_threads = options.threads
    so.log_severity_level = 4  # errors reach the caller as exceptions; ORT need not also print them
    if options.profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = options.profile_prefix
    return so


def check_used(session: Any, options: RuntimeOptions, path: Path) -> str:
    """The provider the session really runs on; a silent fallback is an error unless allowed."""
    used = session.get_providers()
    wanted = PROVIDERS[options.provider]
    if used and used[0] == wanted:
        return options.provider
    if not options.allow_fallback:
        raise ProviderError(f"ONNX Runtime could not run {path.name} on {options.provider} and fell back to "
                            f"{', '.join(SHORT.get(p, p) for p in used)}; pass --allow-fallback to accept that")
    return SHORT.get(used[0], used[0]) if used else "cpu"


def calibrated_on(quant: dict[str, Any]) -> dict[str, Any] | None:
    """The data set and number of images an int8-static file was calibrated on, from its quantisation record."""
    if not quant.get("calibration_data"):
        return None
    return {"data": quant["calibration_data"], "images": quant.get("settings", {}).get("calib_size")}


def graph_of(session: Any) -> Graph:
    """An ONNX Runtime session's inputs and outputs as (name, shape), None for each dynamic dimension."""
    def shaped(args: Any) -> list[tuple[str, tuple[int | None, ...]]]:
        return [(a.name, tuple(d if isinstance(d, int) and d > 0 else None for d in (a.shape or ()))) for a in args]

    return Graph(shaped(session.get_inputs()), shaped(session.get_outputs()))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    return value, pos


def _locations(path: Path, block: int = 1 << 20, keep: int = 4096) -> Iterator[str]:
    """The external-data locations a file names, scanned a block at a time: reading a large model whole here
    would add its size to the memory that loading it is measured to take (memprobe). ``keep`` bytes carry
    over between blocks, enough for any location record."""
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(block)
            data = carry + chunk
            done = len(data) if not chunk else max(0, len(data) - keep)  # records starting before are whole
            for match in _LOCATION.finditer(data, 0, len(data)):
                if match.start() >= done:
                    break
                length, start = _varint(data, match.end())
                yield data[start:start + length].decode("utf-8", "replace")
            if not chunk:
                return
            carry = data[done:]


def check_external_data(path: Path) -> None:
    """Refuse an ONNX file whose external-data paths leave its own folder (``..``, an absolute path, or a
    symlink that points out), before ONNX Runtime opens it. Read from the raw protobuf, so it needs no onnx
    package; a match inside unrelated bytes can only refuse, never admit, a file."""
    folder = path.parent.resolve()
    for location in _locations(path):
        if leaves_folder(folder, location):
            raise ModelError(f"{path} refers to external data {location!r} outside its own folder; refusing to "
                             "open it")


def load_onnx_session(path: Path, options: RuntimeOptions, spec: ModelSpec | Stated | None = None) -> Loaded:
    """An ONNX Runtime session for ``path`` on the requested provider, checked, with its spec (``spec``: a
    whole spec replacing the file's, or facts the user states over it)."""
    import onnxruntime as ort

    check_external_data(path)
    chain = provider_chain(options)
    try:
        session = ort.InferenceSession(str(path), session_options(options), providers=chain)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ONNX Runtime cannot load {path}: {first}") from None
    provider = check_used(session, options, path)
    meta = dict(session.get_modelmeta().custom_metadata_map)
    resolved = resolve_spec(str(path), meta, graph_of(session), spec)
    model_spec = resolved.spec
    quant = json.loads(meta["edgecv.quantization"]) if "edgecv.quantization" in meta else {}
    inp = session.get_inputs()[0]
    out = next(o for o in session.get_outputs() if o.name == (model_spec.output or session.get_outputs()[0].name))
    fixed = inp.shape[0] if inp.shape and isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    on_device = provider in ("cuda", "tensorrt")

    if on_device:
        def prepare(x: np.ndarray) -> Any:
            binding = session.io_binding()
            binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_output(out.name, "cuda", 0)
            return binding

        def run_prepared(binding: Any) -> Any:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return binding

        def fetch(binding: Any) -> np.ndarray:
            return binding.copy_outputs_to_cpu()[0]
    else:
        def prepare(x: np.ndarray) -> Any:
            return {inp.name: x}

        def run_prepared(feed: Any) -> Any:
            return session.run([out.name], feed)

        def fetch(result: Any) -> np.ndarray:
            return result[0]

    return settled(Loaded(
        name="", format="onnx", precision=PRECISION.get(quant.get("method"), "fp32"), provider=provider,
        file=path, spec=model_spec, prepare=prepare, run_prepared=run_prepared, fetch=fetch, fixed_batch=fixed,
        handle=session, details={"providers": session.get_providers(), "input_type": inp.type,
                                 "calibrated_on": calibrated_on(quant)},
    ), resolved)
