"""A classifier's outputs as probabilities. NumPy only, so the Predictor an app embeds starts without
scikit-learn or SciPy."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def are_probabilities(outputs: np.ndarray, tolerance: float = 1e-3) -> bool:
    """Whether every row of ``outputs`` is non-negative and sums to 1 within ``tolerance``."""
    rows = np.asarray(outputs, np.float64)
    return bool(rows.ndim == 2 and len(rows) and (rows >= 0).all() and
                (np.abs(rows.sum(axis=1) - 1.0) <= tolerance).all())


def as_log_probabilities(probs: np.ndarray) -> np.ndarray:
    """Probabilities as float32 log-probabilities, whose softmax gives them back (rows renormalised); a zero
    becomes the smallest log a float32 probability can have rather than minus infinity."""
    p = np.clip(np.asarray(probs, np.float64), np.finfo(np.float32).tiny, None)
    return np.log(p / p.sum(axis=1, keepdims=True)).astype(np.float32)
