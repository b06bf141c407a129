"""edgecv.export_module: a live nn.Module from a notebook becomes a run directory that quantize, bench and the
Predictor work on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke, make_image_folder
from torch import nn

import edgecv
from edgecv import ModelError, Predictor


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, 3))


def test_a_live_module_is_exported_with_its_preprocessing_and_measured_like_a_run(tmp_path):
    folder = make_image_folder(tmp_path / "photos", per_class=10, size=(40, 30))
    module = _net().train()  # the caller's module is left as it was
    reports = edgecv.export_module(module, tmp_path / "run", labels=["cat", "dog", "fox"], input_size=32,
                                   mean=[0.5], std=[0.25], resize=36, interpolation="bicubic",
                                   data=f"folder:{folder}")
    assert module.training
    assert [Path(r.file).name for r in reports] == ["model.onnx", "model.pt"] and all(r.passed for r in reports)
    assert reports[0].parity[0].inputs.startswith("validation x")
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert (spec["input_shape"], spec["resize"], spec["interpolation"], spec["mean"]) == ([3, 32, 32], 36, "bicubic",
                                                                                         [0.5, 0.5, 0.5])
    recorded = json.loads((tmp_path / "run" / "export.json").read_text())["exports"]
    assert set(recorded) == {"model.onnx", "model.pt"}
    image = next((folder / "dog").glob("*.png"))
    with torch.no_grad():
        x = torch.from_numpy((Predictor(tmp_path / "run" / "model.onnx").preprocess(str(image))[None] / 255.0
                              - 0.5) / 0.25).float()
        want = int(module.eval()(x).argmax())
    assert Predictor(tmp_path / "run" / "model.onnx").predict(str(image)).index == want
    invoke("quantize", tmp_path / "run", "--speed-batch", "1", check=True)
    invoke("bench", tmp_path / "run", "--seconds", "0.05", "--no-isolate", "--batch-sizes", "1", check=True)
    rows = {Path(v["file"]).name for v in json.loads((tmp_path / "run" / "bench.json").read_text())["variants"]}
    assert rows == {"model.pt", "model.onnx", "model.int8.onnx", "model.int8-dynamic.onnx", "model.fp16.onnx"}


def test_a_module_that_does_not_fit_its_labels_or_size_is_one_error(tmp_path):
    common = dict(input_size=32, mean=[0.5], std=[0.25])
    with pytest.raises(ModelError, match=r"gives \(2, 3\) for 2 images, not \(2, 4\) logits, one per label"):
        edgecv.export_module(_net(), tmp_path / "a", labels=list("abcd"), **common)
    with pytest.raises(ModelError, match="cannot take 1x32x32 images: RuntimeError"):
        edgecv.export_module(_net(), tmp_path / "b", labels=list("abc"), color="L", **common)
    with pytest.raises(ModelError, match="takes a torch nn.Module, got ndarray"):
        edgecv.export_module(np.zeros(3), tmp_path / "c", labels=list("abc"), **common)
    assert not any((tmp_path / n).exists() for n in "abc")
