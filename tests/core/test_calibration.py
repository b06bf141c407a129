"""Temperature scaling: a fitted temperature lowers the validation NLL and the ONNX file applies it;
--no-calibrate keeps raw scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import invoke

from edgecv.core.calibration import fit_temperature, nll, uncalibrated
from edgecv.core.outputs import softmax
from edgecv.data import load_dataset
from edgecv.runtimes import load_model


def test_the_temperature_lowers_validation_nll_and_the_onnx_file_applies_it(lenet):
    from edgecv.serve.predictor import Predictor
    from edgecv.train.checkpoint import load_checkpoint, model_from_checkpoint

    run, _ = lenet
    model, spec, _ = model_from_checkpoint(load_checkpoint(run / "checkpoints" / "best.pt"))
    t = spec.temperature
    assert t != 1.0
    data = load_dataset("digits", 32)
    with torch.no_grad():
        val_logits = model(torch.from_numpy(data.val.x).float().div(255).sub(spec.mean[0]).div(spec.std[0])).numpy()
    assert nll(val_logits, data.val.y, t) < nll(val_logits, data.val.y, 1.0)
    assert fit_temperature(val_logits, data.val.y) == pytest.approx(t, rel=1e-2)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration"]["fitted_on"] == "val" and metrics["calibration"]["val_images"] == len(data.val.y)
    val = metrics["calibration"]["val"]
    assert val["after"]["nll"] < val["before"]["nll"]
    # the ONNX file divides by T itself: its logits are the torch model's over T, and it says so in its spec
    x = np.random.default_rng(0).standard_normal((5, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        raw = model(torch.from_numpy(x)).numpy()
    loaded = load_model(run / "model.onnx")
    assert loaded.spec.temperature == pytest.approx(t)
    np.testing.assert_allclose(loaded.run(x), raw / t, atol=1e-4)
    # the Predictor reads calibrated scores straight from the file
    image = data.test.x[0, 0]
    top = Predictor(run / "model.onnx").predict(image).topk
    x0 = ((image.astype(np.float32) / 255 - spec.mean[0]) / spec.std[0])[None, None]
    with torch.no_grad():
        expect = softmax(model(torch.from_numpy(x0)).numpy() / t)[0]
    np.testing.assert_allclose([score for _, score in top[:3]], np.sort(expect)[::-1][:3], atol=1e-4)
    # and the raw scores are recoverable from the calibrated ones
    np.testing.assert_allclose(uncalibrated(softmax(raw / t), t), softmax(raw), atol=1e-6)


def test_no_calibrate_keeps_raw_scores(tmp_path):
    proc = invoke("train", "--model", "mlp", "--epochs", "1", "--no-calibrate", "--out", tmp_path / "r", check=True)
    assert "temperature" not in proc.stdout
    spec = json.loads((tmp_path / "r" / "spec.json").read_text())
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert spec["temperature"] == 1.0 and metrics["calibration"] == {"temperature": 1.0, "fitted_on": None}
