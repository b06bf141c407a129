"""The metrics suite against hand-computed cases and scikit-learn, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from edgecv.core.metrics import agreement, calibration, classification_metrics, macro_scores
from edgecv.core.outputs import softmax


def test_metrics_match_a_hand_computed_case():
    y = [0, 0, 1, 1, 2]
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])
    m = classification_metrics(y, probs, ["x", "y", "z"])
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    per = {row["label"]: row for row in m["per_class"]}
    assert per["x"]["precision"] == 1.0 and per["x"]["recall"] == 0.5 and per["x"]["support"] == 2
    assert per["y"]["precision"] == pytest.approx(2 / 3) and per["y"]["recall"] == 1.0
    expected_loss = -np.mean(np.log([0.9, 0.2, 0.8, 0.6, 0.8]))
    assert m["loss"] == pytest.approx(expected_loss)
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8, 1.0]))


def test_metrics_agree_with_a_real_classifier():
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    probs = clf.predict_proba(x).astype(np.float32)  # float32 rows do not sum to exactly 1
    m = classification_metrics(y, probs, ["setosa", "versicolor", "virginica"])
    assert m["accuracy"] == pytest.approx(clf.score(x, y))
    assert sum(map(sum, m["confusion_matrix"])) == len(y)
    assert macro_scores(y, probs.argmax(1), 3)["f1"] == pytest.approx(m["macro_f1"])


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        classification_metrics([0, 1], np.ones((2, 2)) / 2, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no samples"):
        classification_metrics([], np.zeros((0, 2)), ["a", "b"])


def test_metrics_suite_against_scikit_learn_and_by_hand():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300)
    logits = rng.normal(size=(300, 6)) + 3 * np.eye(6)[y] * rng.random((300, 1))
    probs = softmax(logits)
    m = classification_metrics(y, probs, [f"c{i}" for i in range(6)])
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    top5 = np.mean([y[i] in np.argsort(-probs[i])[:5] for i in range(len(y))])
    assert m["top5_accuracy"] == pytest.approx(top5)
    c0 = ((pred == 0) == (y == 0)).mean()
    assert m["per_class"][0]["one_vs_all_accuracy"] == pytest.approx(c0)
    # ECE by hand: two bins' worth of predictions with known confidence and accuracy
    conf = np.array([0.95] * 10 + [0.55] * 10)
    p2 = np.stack([conf, 1 - conf], axis=1)
    y2 = np.array([0] * 9 + [1] + [0] * 5 + [1] * 5)  # 90% right at 0.95, 50% right at 0.55
    cal = calibration(y2, p2)
    assert cal["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert cal["confidence_right"] == pytest.approx((9 * 0.95 + 5 * 0.55) / 14)
    assert m["top5_accuracy"] is not None and classification_metrics([0, 1], np.eye(2), ["a", "b"])[
        "top5_accuracy"] is None
    same = agreement(probs, probs)
    assert same == {"agreement": 1.0, "max_prob_diff": 0.0}
