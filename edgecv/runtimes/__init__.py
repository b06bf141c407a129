"""RUNTIMES: torch eager, TorchScript and ONNX Runtime behind one ``load_model`` that picks by file.

ONNX files load without torch (and without the onnx package), so evaluation and benchmarks of ONNX models
work in the base install.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from edgecv.core.errors import ModelError
from edgecv.core.fsutil import require_file
from edgecv.core.registry import Registry
from edgecv.core.spec import ModelSpec
from edgecv.runtimes.base import EVAL_BATCH, PRECISIONS, Loaded, RuntimeOptions
from edgecv.runtimes.ort import PROVIDERS, ProviderError, available, load_onnx_session

RUNTIMES: Registry[Callable[..., Loaded]] = Registry("runtime", ModelError)


@RUNTIMES.register("onnxruntime")
def _onnxruntime(path: Path, options: RuntimeOptions, spec: ModelSpec | None) -> Loaded:
    return load_onnx_session(path, options, spec)


@RUNTIMES.register("openvino")
def _openvino(path: Path, options: RuntimeOptions, spec: ModelSpec | None) -> Loaded:
    from edgecv.runtimes.openvino_rt import load_openvino

    return load_openvino(path, options, spec)


@RUNTIMES.register("executorch")
def _executorch(path: Path, options: RuntimeOptions, spec: ModelSpec | None) -> Loaded:
    from edgecv.runtimes.executorch_rt import load_executorch

    return load_executorch(path, options, spec)


ONNX_RUNTIMES = ("onnxruntime", "openvino")  # engines that run edgecv's ONNX files (RuntimeOptions.runtime)


@RUNTIMES.register("torchscript")
def _torchscript(path: Path, options: RuntimeOptions, spec: ModelSpec | None) -> Loaded:
    from edgecv.runtimes.torch_rt import load_torchscript

    return load_torchscript(path, options, spec)


@RUNTIMES.register("torch")
def _torch(path: Path, options: RuntimeOptions, spec: ModelSpec | None) -> Loaded:
    from edgecv.runtimes.torch_rt import load_checkpoint_model

    return load_checkpoint_model(path, options)


def runtime_for(path: Path) -> str:
    """Which runtime reads ``path``: ONNX by content, TorchScript archives by their code/ folder, other torch
    zip archives as edgecv checkpoints."""
    path = Path(path)
    require_file(path, "a model file", ModelError)
    if path.suffix.lower() == ".pte":
        return "executorch"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            raise ModelError(f"{path} is a damaged archive") from None
        if any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise ModelError(f"{path} is a zip archive but not a TorchScript file or an edgecv checkpoint")
    if path.suffix.lower() != ".onnx":
        raise ModelError(f"{path} is not a model file edgecv reads (.onnx, TorchScript .pt, checkpoint .pt, "
                         "ExecuTorch .pte)")
    return "onnxruntime"


def load_model(path: Path | str, options: RuntimeOptions | None = None, spec: ModelSpec | None = None) -> Loaded:
    """Load a model file on the requested provider; ``spec`` overrides (or supplies) the file's own. An ONNX
    file runs on ``options.runtime`` (ONNX Runtime, or OpenVINO's own runtime)."""
    path = Path(path)
    options = options or RuntimeOptions()
    if options.runtime not in ONNX_RUNTIMES:
        raise ModelError(f"--runtime must be one of {', '.join(ONNX_RUNTIMES)}, got {options.runtime!r}")
    kind = runtime_for(path)
    if kind == "onnxruntime":
        kind = options.runtime
    elif options.runtime != "onnxruntime":
        raise ModelError(f"{options.runtime} runs ONNX files, and {path.name} is a {kind} file; export it first: "
                         "edgecv export RUN_DIR --format onnx")
    loaded = RUNTIMES.get(kind)(path, options, spec)
    with_precision = ("onnx", "openvino", "executorch")
    loaded.name = f"{loaded.format} {loaded.precision}" if loaded.format in with_precision else loaded.format
    return loaded


__all__ = ["EVAL_BATCH", "ONNX_RUNTIMES", "PRECISIONS", "PROVIDERS", "RUNTIMES", "Loaded", "ProviderError",
           "RuntimeOptions", "available", "load_model", "runtime_for"]
