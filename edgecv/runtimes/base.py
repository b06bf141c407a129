"""What every runtime hands back: a loaded model that runs numpy batches, and a timed path that keeps
inputs where the runtime wants them (prepared outside the timed region)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.spec import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
EVAL_BATCH = 256


@dataclass
class RuntimeOptions:
    """How to run a model: the provider and the knobs a user may turn."""

    provider: str = "cpu"  # cpu | cuda | tensorrt | openvino (torch runtimes: cpu | cuda; OpenVINO's: cpu | gpu | npu)
    runtime: str = "onnxruntime"  # which engine runs ONNX files: onnxruntime | openvino
    threads: int | None = None  # intra-op threads; None: the runtime's default
    allow_fallback: bool = False  # accept ONNX Runtime placing the model on another provider
    graph_optimization: str = "all"  # disable | basic | extended | all
    cudnn_algo_search: str = "exhaustive"  # exhaustive | heuristic | default
    trt_fp16: bool = False  # TensorRT may build fp16 kernels
    trt_cache: str | None = None  # TensorRT engine cache folder
    trust_torchscript: bool = False  # run TorchScript files edgecv did not write (see edgecv.core.trust)
    trust_code: bool = False  # rebuild a checkpoint's model from the user's module although it changed since


@dataclass
class Loaded:
    """A model ready to run, with what it is and where it actually runs."""

    name: str  # variant name, e.g. "onnx int8"
    format: str  # torch | torchscript | onnx
    precision: str  # fp32 | fp16 | int8 | int8-dynamic
    provider: str  # the provider that actually runs it: cpu, cuda, ...
    file: Path
    spec: ModelSpec
    prepare: Callable[[np.ndarray], Any]  # model input -> what the timed call takes (on the device)
    run_prepared: Callable[[Any], Any]  # the timed call: runs and waits for the device
    fetch: Callable[[Any], np.ndarray]  # the timed call's result -> numpy logits
    fixed_batch: int | None = None
    handle: Any = None  # the runtime's own object: an onnxruntime.InferenceSession, a torch module
    details: dict[str, Any] = field(default_factory=dict)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch the model accepts."""
        return self.fetch(self.run_prepared(self.prepare(x)))

    def logits(self, x: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        """Logits for any number of inputs, in batches (the model's fixed batch, padded, if it has one)."""
        if not self.fixed_batch and len(x) <= batch:  # one call: no slicing or copying
            return np.asarray(self.run(x), dtype=np.float32)
        step = self.fixed_batch or batch
        parts = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            n = len(chunk)
            if self.fixed_batch and n < self.fixed_batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.fixed_batch - n, axis=0)])
            parts.append(np.asarray(self.run(np.ascontiguousarray(chunk)))[:n])
        return np.concatenate(parts).astype(np.float32, copy=False)
