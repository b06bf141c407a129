"""What every runtime hands back: a loaded model that runs numpy batches, and a timed path that keeps
inputs where the runtime wants them (prepared outside the timed region)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.facts import Resolved, with_outputs
from edgecv.core.outputs import are_probabilities, as_log_probabilities
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
EVAL_BATCH = 256
PROBE_IMAGES = 8  # random images run once through a file edgecv did not write, to see what its outputs are


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
    # OpenVINO's performance hint: LATENCY (one request at a time) or THROUGHPUT (its streams, each timed call
    # one request per stream in flight at once)
    openvino_hint: str = "LATENCY"
    # set: per-layer timing on (edgecv profile): ONNX Runtime's profiler writes its trace under this prefix,
    # OpenVINO keeps its performance counters on the request
    profile_prefix: str | None = None


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
    max_batch: int | None = None  # the largest batch a dynamic-batch model takes (an ExecuTorch program's bound)
    handle: Any = None  # the runtime's own object: an onnxruntime.InferenceSession, a torch module
    details: dict[str, Any] = field(default_factory=dict)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch the model accepts."""
        return self.fetch(self.run_prepared(self.prepare(x)))

    def logits(self, x: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
        """Logits for any number of inputs, in batches (the model's fixed batch, padded, if it has one; at most
        its ``max_batch``)."""
        batch = min(batch, self.max_batch or batch)
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


def settled(loaded: Loaded, resolved: Resolved) -> Loaded:
    """``loaded`` with what its spec's resolution found: the notes on where its facts came from, and, for a
    file edgecv did not write, whether its outputs are probabilities (every row of a probe batch non-negative
    and summing to 1). Probability outputs are handed on as log-probabilities, so every softmax downstream
    gives back the file's own probabilities, unchanged."""
    loaded.details["spec_notes"] = list(resolved.notes)
    if resolved.probe_outputs:
        rng = np.random.default_rng(0)
        c, h, w = loaded.spec.input_shape
        probe = to_model_input(rng.integers(0, 256, (PROBE_IMAGES, c, h, w), dtype=np.uint8), loaded.spec)
        try:
            outputs = loaded.logits(probe)
        except Exception:  # noqa: BLE001 - the first real call reports the runtime's refusal in its own words
            outputs = None
        if outputs is not None and are_probabilities(outputs):
            loaded.spec = with_outputs(loaded.spec, "probabilities")
            loaded.details["spec_notes"].append(
                "its outputs are probabilities (every row of a probe batch sums to 1): they are scored as they "
                "are, not softmaxed again, and no temperature is fitted to them (--outputs logits overrides)")
    if loaded.spec.outputs == "probabilities":
        fetch = loaded.fetch
        loaded.fetch = lambda result: as_log_probabilities(fetch(result))
    return loaded
