"""Torch-free core: ModelSpec, Registry, metrics and atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from edgecv import ModelError, ModelSpec
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import atomic_path, remove_stale_temps, write_json
from edgecv.core.metrics import classification_metrics, macro_scores
from edgecv.core.registry import Registry


def _spec(**kw):
    base = dict(labels=["a", "b"], input_shape=(1, 8, 8), mean=[0.5], std=[0.25], arch="mlp", dataset="digits")
    return ModelSpec(**{**base, **kw})


def test_spec_json_round_trip_keeps_every_field():
    spec = _spec(metrics={"test_accuracy": 0.99}, source_sha256="ab" * 32)
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert again.input_shape == (1, 8, 8)
    assert json.loads(spec.to_json())["input_shape"] == [1, 8, 8]


def test_spec_ignores_unknown_keys_from_newer_versions():
    data = _spec().to_dict() | {"future_field": 1}
    assert ModelSpec.from_dict(data).labels == ["a", "b"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": []}, "no labels"),
        ({"labels": ["a", "a"]}, "duplicate"),
        ({"color": "RGB"}, "does not match"),
        ({"mean": [0.1, 0.2]}, "one value per input channel"),
        ({"std": [0.0]}, "positive"),
        ({"layout": "CHWN"}, "layout"),
        ({"dtype": "int4"}, "dtype"),
        ({"input_shape": (1, 0, 8)}, "input_shape"),
    ],
)
def test_spec_rejects_inconsistent_fields(change, message):
    with pytest.raises(ModelError, match=message):
        _spec(**change)


def test_spec_from_json_names_missing_and_malformed_fields():
    with pytest.raises(ModelError, match="lacks input_shape, mean"):
        ModelSpec.from_dict({"labels": ["a"], "std": [1.0]})
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelSpec.from_json("{nope")


def test_registry_lists_valid_names_and_refuses_duplicates():
    reg: Registry[int] = Registry("widget")
    reg.add("one", 1)

    @reg.register("two")
    def _two():
        return 2

    assert reg.names() == ["one", "two"] and "two" in reg and len(reg) == 2
    with pytest.raises(EdgecvError, match="unknown widget 'three'; choose one of: one, two"):
        reg.get("three")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("one", 3)


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


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "config.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)  # same permissions as a plain open()


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / ".last.pt.abc.tmp").write_text("x")
    (tmp_path / "last.pt").write_text("keep")
    remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
