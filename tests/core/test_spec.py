"""ModelSpec: its JSON round trip, older and newer files, and the fields it refuses."""

from __future__ import annotations

import json

import pytest

from edgecv import ModelError, ModelSpec


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
