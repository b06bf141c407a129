"""Running ONNX files on ONNX Runtime's CPU provider to measure what quantisation did to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EVAL_BATCH = 256


def cpu_session(path: Path | str):
    """An ONNX Runtime CPU session for ``path``, quiet unless something fails."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_logits(session, x: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
    """The model's (N, classes) output for inputs ``x``, computed ``batch`` images at a time (or in the
    model's own fixed batch size, padding the last batch)."""
    meta = session.get_inputs()[0]
    fixed = meta.shape[0] if meta.shape and isinstance(meta.shape[0], int) and meta.shape[0] > 0 else None
    step = fixed or batch
    parts = []
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        n = len(chunk)
        if fixed and n < fixed:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        parts.append(session.run(None, {meta.name: chunk})[0][:n])
    return np.concatenate(parts).astype(np.float32, copy=False)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of (N, classes) logits against labels ``y``."""
    return float((logits.argmax(axis=1) == y).mean())
