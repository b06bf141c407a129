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
        ({"interpolation": "area"}, "interpolation must be one of nearest, bilinear, bicubic, lanczos"),
        ({"resize": 6}, "resize 6 is smaller than the 8x8 crop"),
        ({"resize": -1}, "resize must be 0"),
        ({"channel_order": "gbr"}, "channel_order must be rgb or bgr"),
        ({"channel_order": "bgr"}, "bgr needs color RGB"),
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


def test_a_spec_written_before_resize_and_channel_order_reads_as_a_straight_rgb_resize():
    old = {k: v for k, v in _spec().to_dict().items() if k not in ("resize", "channel_order")}
    spec = ModelSpec.from_dict(old)
    assert (spec.resize, spec.channel_order, spec.framing.resize, spec.framing.interpolation) == (0, "rgb", 0,
                                                                                                  "bilinear")
    framed = _spec(resize=10, interpolation="bicubic")
    assert ModelSpec.from_json(framed.to_json()).framing == framed.framing
