"""Temperature scaling (Guo et al., 2017): one number T, fitted on the validation split after training, so that
``softmax(logits / T)`` can be read as probabilities. It never changes a prediction, only how sure it is.

The exported files apply T themselves (a division after the logits), so every runtime and the Predictor
return calibrated scores; the spec records T. Torch-free: numpy and scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecv.core.metrics import calibration
from edgecv.core.outputs import softmax

# log T: T from 1/4 to 4. A validation split with no mistakes has no NLL minimum (T -> 0 makes every score
# 1.0); the bound keeps such a fit to at most 4x sharper or flatter scores, and `at_bound` says so.
BOUNDS = (float(np.log(0.25)), float(np.log(4.0)))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true class under ``softmax(logits / temperature)``."""
    from scipy.special import log_softmax

    z = np.asarray(logits, np.float64) / temperature
    return float(-log_softmax(z, axis=1)[np.arange(len(y)), np.asarray(y, np.int64)].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``logits`` against labels ``y`` (validation data only)."""
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        raise ValueError("no validation images to fit a temperature on")
    result = minimize_scalar(lambda log_t: nll(logits, y, float(np.exp(log_t))), bounds=BOUNDS, method="bounded",
                             options={"xatol": 1e-4})
    best = float(np.exp(result.x))
    return best if nll(logits, y, best) < nll(logits, y, 1.0) else 1.0


def at_bound(temperature: float) -> bool:
    """Whether a fitted temperature stopped at one of its bounds (too few validation mistakes to place it)."""
    return bool(np.isclose(np.log(temperature), BOUNDS, atol=1e-3).any())


def before_after(logits: np.ndarray, y: np.ndarray, temperature: float) -> dict[str, Any]:
    """NLL, ECE and reliability data of raw scores and of scores divided by ``temperature``."""
    out: dict[str, Any] = {}
    for key, t in (("before", 1.0), ("after", temperature)):
        cal = calibration(y, softmax(np.asarray(logits, np.float64) / t))
        out[key] = {"nll": nll(logits, y, t), "ece": cal["ece"], "reliability": cal["reliability"],
                    "confidence_right": cal["confidence_right"], "confidence_wrong": cal["confidence_wrong"]}
    return out


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The raw scores behind calibrated probabilities: ``softmax(log(probs) * T)`` equals ``softmax(logits)``
    (a log-softmax differs from the logits only by a per-row constant)."""
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-300, None))
    return softmax(logp * temperature)
