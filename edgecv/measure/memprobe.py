"""A model's own memory and cold start, measured in a fresh process of its own.

A process that has imported torch, or loaded other variants, measures them too. So ``measure_isolated`` starts
``python -m edgecv.measure.memprobe`` for one file: it imports the runtime the file needs, makes the input, notes its
resident memory (the baseline), then times creating the session and the first batch-1 inference, runs the
largest batch too, and reports the peak resident memory of that work less the baseline (Linux resets the
peak through /proc/self/clear_refs). On CUDA it adds the device memory the process holds (NVML, which
includes the CUDA context). One JSON object goes to stdout.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.spec import ModelSpec
from edgecv.runtimes import RuntimeOptions, load_model, runtime_for  # imported before the baseline

TIMEOUT_S = 600


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Linux lets a process reset its peak resident memory (VmHWM) to the current one."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _peak() -> int | None:
    peak = _status("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        return None


def _device_bytes() -> int | None:
    """GPU memory this process holds, from NVML (nvidia-ml-py), or None where NVML is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == os.getpid() and proc.usedGpuMemory:
                    total += int(proc.usedGpuMemory)
        return total
    except Exception:  # NVML errors are informational here, never fatal
        return None


def _import_runtime(kind: str, engine: str) -> None:
    """Everything loading a model of this kind on this engine imports, so the baseline holds it and the model
    does not: before OpenVINO and ExecuTorch were imported here, their libraries counted as a 224x224 resnet18's
    (2-core AMD EPYC, Zen 3: OpenVINO 22 MB and 0.1-0.3 s, ExecuTorch 140 MB and 6-7 s of cold start)."""
    if kind == "onnxruntime":
        import onnxruntime  # noqa: F401

        if engine == "openvino":
            _import_if_installed("openvino")
    elif kind == "executorch":
        _import_if_installed("executorch.runtime")
    else:
        import torch  # noqa: F401

        import edgecv.models  # noqa: F401
        import edgecv.runtimes.torch_rt  # noqa: F401
        import edgecv.train.checkpoint  # noqa: F401


def _import_if_installed(module: str) -> None:
    """Import ``module`` when it is there; when it is not, loading the model says so in its own one line."""
    try:
        importlib.import_module(module)
    except ImportError:
        pass


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one file as ``request`` says (see :func:`measure_isolated`); run in a fresh process."""
    path = Path(request["file"])
    kind = runtime_for(path)
    _import_runtime(kind, request["options"].get("runtime", "onnxruntime"))
    shape, dtype = tuple(request["input_shape"]), np.dtype(request["dtype"])
    rng = np.random.default_rng(0)
    first_batch, big_batch = int(request["batch"]), int(request["big_batch"])
    small = (rng.integers(0, 256, (first_batch, *shape)) if dtype == np.uint8
             else rng.standard_normal((first_batch, *shape))).astype(dtype)
    big = np.ascontiguousarray(np.resize(small, (big_batch, *shape)))
    gc.collect()
    baseline = _status("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    spec = ModelSpec.from_json(request["spec"]) if request.get("spec") else None
    loaded = load_model(path, RuntimeOptions(**request["options"]), spec)
    t1 = time.perf_counter()
    loaded.run(small)
    t2 = time.perf_counter()
    peak_first = _peak()
    device = _device_bytes() if loaded.provider in ("cuda", "tensorrt") else None
    loaded.run(big)
    peak_big = _peak()
    return {
        "load_ms": (t1 - t0) * 1e3, "first_run_ms": (t2 - t1) * 1e3, "baseline_bytes": baseline,
        "peak_bytes": peak_first, "model_bytes": peak_first - baseline if reset and baseline and peak_first else None,
        "big_batch": big_batch,
        "big_batch_bytes": peak_big - baseline if reset and baseline and peak_big else None,
        "device_bytes": device, "provider": loaded.provider, "pid": os.getpid(),
    }


def measure_isolated(path: Path, options: dict[str, Any], input_shape: tuple[int, ...], dtype: str, batch: int,
                     big_batch: int, timeout: float = TIMEOUT_S, spec_json: str | None = None) -> dict[str, Any]:
    """Memory and cold start of one model file, from a fresh ``python -m edgecv.measure.memprobe`` process.

    ``input_shape`` is one image in the file's layout; ``batch`` is the first (cold) inference's batch size and
    ``big_batch`` the largest one measured; ``spec_json`` is the spec the file runs with when it is not (or not
    only) its own. Raises RuntimeError with the probe's last error line on failure.
    """
    request = {"file": str(path), "options": options, "input_shape": list(input_shape), "dtype": dtype,
               "batch": batch, "big_batch": big_batch, "spec": spec_json}
    try:
        proc = subprocess.run([sys.executable, "-m", "edgecv.measure.memprobe", json.dumps(request)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the memory probe of {path.name} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(f"the memory probe of {path.name} failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m edgecv.measure.memprobe REQUEST_JSON", file=sys.stderr)
        return 2
    try:
        result = probe(json.loads(argv[1]))
    except Exception as exc:  # reported to the parent as one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{type(exc).__name__}: {first}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
