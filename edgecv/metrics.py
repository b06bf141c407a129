"""The one metrics suite: the same numbers for every model format. scikit-learn underneath; torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _check(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> None:
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"probabilities must be (N, {num_classes}), got {probs.shape}")
    if len(y_true) != len(probs):
        raise ValueError(f"{len(y_true)} labels for {len(probs)} predictions")
    if len(y_true) == 0:
        raise ValueError("no samples to score")


def macro_scores(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, float]:
    """Macro-averaged precision, recall and F1 (classes absent from both count as 0, not as errors)."""
    p, r, f, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0
    )
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def nll_loss(y_true: Sequence[int], probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    return float(skm.log_loss(y_true, probs, labels=list(range(probs.shape[1]))))


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, loss, macro scores, per-class precision/recall/F1/support and the confusion matrix.

    ``probs`` are class probabilities (rows sum to 1); ``labels`` name the classes in index order.
    """
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    _check(y, probs, k)
    if (probs < 0).any():
        raise ValueError("probabilities must be non-negative")
    probs = probs / probs.sum(axis=1, keepdims=True)  # float32 softmax rows drift from 1 by ~1e-7
    pred = probs.argmax(axis=1)
    idx = list(range(k))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=idx, zero_division=0)
    macro = macro_scores(y, pred, k)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "loss": nll_loss(y, probs),
        "macro_precision": macro["precision"],
        "macro_recall": macro["recall"],
        "macro_f1": macro["f1"],
        "num_samples": int(len(y)),
        "per_class": [
            {
                "label": str(labels[i]),
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i in idx
        ],
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=idx).tolist(),
    }
