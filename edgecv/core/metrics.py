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


OTHER = "other"  # the confusion matrix's column for predictions outside the classes scored


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str], scored: Sequence[int] | None = None
) -> dict[str, Any]:
    """Accuracy with its 95% Wilson interval (and top-5 with 5+ classes), loss, macro and weighted scores,
    per-class precision/recall/F1/support and one-vs-all accuracy, the confusion matrix, and calibration
    (see :func:`calibration`).

    ``probs`` are class probabilities (rows sum to 1); ``labels`` name the classes in index order. ``scored``
    (indices into ``labels``) limits the per-class rows, the macro and weighted scores and the confusion
    matrix to the classes a data set has, when it holds only some of the model's: the prediction is still the
    argmax over every class, and the matrix gets one more column, "other", for predictions outside them.
    """
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    _check(y, probs, k)
    if (probs < 0).any():
        raise ValueError("probabilities must be non-negative")
    probs = probs / probs.sum(axis=1, keepdims=True)  # float32 softmax rows drift from 1 by ~1e-7
    pred = probs.argmax(axis=1)
    subset = scored is not None and sorted(scored) != list(range(k))
    idx = [int(i) for i in scored] if subset else list(range(k))  # type: ignore[union-attr]
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=idx, zero_division=0)
    pm, rm, fm, _ = skm.precision_recall_fscore_support(y, pred, labels=idx, average="macro", zero_division=0)
    wp, wr, wf, _ = skm.precision_recall_fscore_support(y, pred, labels=idx, average="weighted", zero_division=0)
    cm = _confusion(y, pred, idx, subset)
    n = len(y)
    one_vs_all = [(n - cm[i, :].sum() - cm[:, i].sum() + 2 * cm[i, i]) / n for i in range(len(idx))]  # (TP+TN)/N
    top5 = float(skm.top_k_accuracy_score(y, probs, k=5, labels=list(range(k)))) if k >= 5 else None
    shown = [str(labels[i]) for i in idx]
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "accuracy_ci": list(accuracy_interval(int((pred == y).sum()), n)),
        "top5_accuracy": top5,
        "loss": nll_loss(y, probs),
        "macro_precision": float(pm),
        "macro_recall": float(rm),
        "macro_f1": float(fm),
        "weighted_precision": float(wp),
        "weighted_recall": float(wr),
        "weighted_f1": float(wf),
        "num_samples": int(n),
        **calibration(y, probs),
        "classes_scored": len(idx),
        "model_classes": k,
        "per_class": [
            {
                "label": shown[j],
                "precision": float(p[j]),
                "recall": float(r[j]),
                "f1": float(f[j]),
                "support": int(s[j]),
                "one_vs_all_accuracy": float(one_vs_all[j]),
            }
            for j in range(len(idx))
        ],
        "confusion_matrix": cm.tolist(),
        "confusion_columns": shown + ([OTHER] if subset else []),
    }


def _confusion(y: np.ndarray, pred: np.ndarray, idx: list[int], subset: bool) -> np.ndarray:
    """Rows: the true classes ``idx``; columns: the same, plus "other" (any class outside them) for a subset."""
    if not subset:
        return skm.confusion_matrix(y, pred, labels=idx)
    position = {c: j for j, c in enumerate(idx)}
    columns = np.array([position.get(int(c), len(idx)) for c in pred], dtype=np.int64)
    rows = np.array([position[int(c)] for c in y], dtype=np.int64)
    cm = np.zeros((len(idx), len(idx) + 1), dtype=np.int64)
    np.add.at(cm, (rows, columns), 1)
    return cm
