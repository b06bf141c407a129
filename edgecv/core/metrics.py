"""The one metrics suite: the same numbers for every model format. scikit-learn underneath; torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from edgecv.core.stats import accuracy_interval


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


ECE_BINS = 15


def calibration(y_true: Sequence[int], probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """Expected calibration error of the top-1 confidence over ``bins`` equal-width bins, with the
    reliability-diagram data (per bin: confidence range, mean confidence, accuracy, count) and the mean
    confidence on right and on wrong answers."""
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)  # (lo, hi] bins, 0 in the first
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        row = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": n,
               "confidence": float(conf[mask].mean()) if n else None,
               "accuracy": float(right[mask].mean()) if n else None}
        if n:
            ece += n / len(y) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {
        "ece": float(ece),
        "reliability": rows,
        "confidence_right": float(conf[right].mean()) if right.any() else None,
        "confidence_wrong": float(conf[~right].mean()) if (~right).any() else None,
    }


def agreement(probs: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How closely one variant follows a reference variant on the same inputs: the share of equal top-1
    predictions and the largest absolute class-probability difference."""
    probs, reference = np.asarray(probs, np.float64), np.asarray(reference, np.float64)
    if probs.shape != reference.shape:
        raise ValueError(f"cannot compare predictions of shape {probs.shape} with {reference.shape}")
    return {"agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
            "max_prob_diff": float(np.abs(probs - reference).max())}


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy with its 95% Wilson interval (and top-5 with 5+ classes), loss, macro and weighted scores,
    per-class precision/recall/F1/support and one-vs-all accuracy, the confusion matrix, and calibration
    (see :func:`calibration`).

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
    wp, wr, wf, _ = skm.precision_recall_fscore_support(y, pred, labels=idx, average="weighted", zero_division=0)
    cm = skm.confusion_matrix(y, pred, labels=idx)
    n = len(y)
    one_vs_all = [(n - cm[i, :].sum() - cm[:, i].sum() + 2 * cm[i, i]) / n for i in idx]  # (TP + TN) / N
    top5 = float(skm.top_k_accuracy_score(y, probs, k=5, labels=idx)) if k >= 5 else None

    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "accuracy_ci": list(accuracy_interval(int((pred == y).sum()), n)),
        "top5_accuracy": top5,
        "loss": nll_loss(y, probs),
        "macro_precision": macro["precision"],
        "macro_recall": macro["recall"],
        "macro_f1": macro["f1"],
        "weighted_precision": float(wp),
        "weighted_recall": float(wr),
        "weighted_f1": float(wf),
        "num_samples": int(n),
        **calibration(y, probs),
        "per_class": [
            {
                "label": str(labels[i]),
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
                "one_vs_all_accuracy": float(one_vs_all[i]),
            }
            for i in idx
        ],
        "confusion_matrix": cm.tolist(),
    }
