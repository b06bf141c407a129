"""Grad-CAM and feature maps: overlays and grids written as PNG files, and a heatmap that points at the
evidence."""

from __future__ import annotations

import numpy as np
from conftest import assert_user_error, invoke, run_cli
from PIL import Image


def test_explain_writes_gradcam_overlays_and_activation_grids(piped, tmp_path):
    run, _ = piped
    out = tmp_path / "explain"
    proc = run_cli("explain", run, "--samples", "3", "--out", out, check=True)
    grads = sorted(out.glob("gradcam_*.png"))
    acts = sorted(out.glob("activations_*.png"))
    assert len(grads) == 3 and len(acts) == 2  # lenet5 has two convolutions
    assert "Grad-CAM at conv" in proc.stdout or "Grad-CAM at features" in proc.stdout
    img_path = tmp_path / "seven.png"
    from edgecv.data import load_dataset

    Image.fromarray(load_dataset("digits", 8).test.x[0, 0]).save(img_path)
    one = tmp_path / "one"
    invoke("explain", run / "checkpoints" / "best.pt", "--image", img_path, "--out", one, check=True)
    assert len(list(one.glob("gradcam_*.png"))) == 1
    assert_user_error(invoke("explain", run, "--layer", "nope", "--out", one), "--layer", "nope")
    assert_user_error(invoke("explain", tmp_path / "missing"), "no such checkpoint")
    assert_user_error(invoke("explain", run, "--image", tmp_path / "missing.png", "--out", one), "does not exist")


def test_grad_cam_points_at_the_evidence():
    """A network whose class-0 score is the mean brightness: Grad-CAM for class 0 must peak on the bright
    patch and be zero where the image is black."""
    import torch
    from torch import nn

    from edgecv.core.spec import ModelSpec
    from edgecv.explain import grad_cam

    conv = nn.Conv2d(1, 1, 1, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    spec = ModelSpec(labels=["bright", "dark"], input_shape=(1, 16, 16), mean=[0.0], std=[1.0], color="L")
    pixels = np.zeros((1, 1, 16, 16), np.uint8)
    pixels[0, 0, 2:6, 9:13] = 255
    cam = grad_cam(model, spec, pixels, layer="0")
    assert cam.predicted.tolist() == [0] and cam.layer == "0"
    assert cam.cams[0, 2:6, 9:13].min() > 0.5 and cam.cams[0, 10:, :6].max() == 0
    assert np.unravel_index(cam.cams[0].argmax(), (16, 16))[0] in range(1, 7)
