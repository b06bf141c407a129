"""The model zoo: every registered model builds, learns, and is described correctly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import assert_user_error, invoke, run_cli

from edgecv.core.errors import ModelError
from edgecv.models import MODELS, create_model, param_groups
from edgecv.models.summary import summarize

EXPECTED = {"mlp", "lenet5", "cnn-tiny", "cnn", "cnn-dropout", "cnn-bn", "vgg", "resnet", "mobilenet-v2",
            "mobilenet-v3-small", "vgg16-transfer"}


def test_the_zoo_has_every_classic_model():
    assert EXPECTED <= set(MODELS.names())


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_model_learns_a_fixed_batch(name, channels):
    """A few optimiser steps on one batch lower the loss: gradients reach the trainable weights."""
    torch.manual_seed(0)
    size = MODELS.get(name).input_size
    model = create_model(name, channels, 5, size)
    x = torch.randn(8, channels, size, size)
    y = torch.arange(8) % 5
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def measured_loss() -> float:  # train mode (batch statistics), the same dropout masks every time
        torch.manual_seed(123)
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    model.train()
    before = measured_loss()
    for _ in range(8):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = measured_loss()
    assert model(x).shape == (8, 5)
    assert after < before


@pytest.mark.parametrize("name", MODELS.names())
def test_any_number_of_classes_and_other_input_sizes(name):
    model = create_model(name, 3, 7, 40).eval()
    assert model(torch.zeros(2, 3, 40, 40)).shape == (2, 7)


def test_too_small_inputs_and_unknown_options_are_model_errors():
    with pytest.raises(ModelError, match="cannot take 1x8x8 inputs"):
        create_model("lenet5", 1, 10, 8)
    with pytest.raises(ModelError, match="does not take option"):
        create_model("lenet5", 1, 10, weights="x.pt")
    with pytest.raises(ModelError, match="unknown model"):
        create_model("resnet152")


def test_lenet5_summary_counts_macs_and_params_exactly():
    s = summarize(create_model("lenet5", 1, 10, 32), (1, 32, 32))
    convs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25
    dense = 400 * 120 + 120 * 84 + 84 * 10
    assert s.macs == convs + dense
    assert s.total_params == (6 * 25 + 6) + (16 * 150 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert [r.output_shape for r in s.rows if r.kind == "Conv2d"] == [(6, 28, 28), (16, 10, 10)]
    assert sum(r.params for r in s.rows) == s.total_params


def _vgg16_weights(path):
    torch.manual_seed(1)
    state = torchvision.models.vgg16().state_dict()
    torch.save(state, path)
    return state


def test_vgg16_transfer_loads_pretrained_features_and_freezes_them(tmp_path):
    state = _vgg16_weights(tmp_path / "vgg16.pth")
    model = create_model("vgg16-transfer", 3, 4, 32, weights=str(tmp_path / "vgg16.pth"))
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.features[28].weight, state["features.28.weight"])
    assert not any(p.requires_grad for p in model.features.parameters())
    groups = param_groups("vgg16-transfer", model, 0.01, {})
    assert len(groups) == 1 and all(not n.startswith("features") for n, p in model.named_parameters()
                                    if any(p is q for q in groups[0]["params"]))
    gray = create_model("vgg16-transfer", 1, 4, 32, weights=str(tmp_path / "vgg16.pth"), freeze=False)
    assert torch.allclose(gray.features[0].weight, state["features.0.weight"].sum(1, keepdim=True))
    groups = param_groups("vgg16-transfer", gray, 0.01, {"feature_lr_scale": 0.5})
    assert [g["lr"] for g in groups] == [0.01, 0.005]


def test_vgg16_weights_that_do_not_fit_are_refused(tmp_path):
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="lacks features.0.weight"):
        create_model("vgg16-transfer", 3, 4, 32, weights=str(tmp_path / "other.pth"))
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="cannot load weights"):
        create_model("vgg16-transfer", 3, 4, 32, weights=str(tmp_path / "junk.pth"))


def test_models_and_summary_commands(tmp_path):
    proc = run_cli("models", check=True)
    for name in EXPECTED:
        assert name in proc.stdout
    assert "416.52K" in proc.stdout  # lenet5's MACs
    proc = invoke("summary", "lenet5", check=True)
    assert "features.0" in proc.stdout and "6x28x28" in proc.stdout and "61,706" in proc.stdout
    assert "416,520" in proc.stdout
    assert_user_error(invoke("summary", "nonet"), "unknown model 'nonet'")
    assert_user_error(invoke("summary", "lenet5", "--img-size", "8"), "cannot take 1x8x8")


def test_unsettled_batch_norm_statistics_are_recomputed_from_the_training_images():
    """A BatchNorm at momentum 0.01 after 20 steps still holds mostly its starting statistics; they are
    recomputed as the plain mean and variance of the images given, frozen layers and settled ones left alone."""
    from torch import nn

    from edgecv.models import settle_batch_norms

    torch.manual_seed(0)
    slow, frozen = nn.BatchNorm2d(3, momentum=0.01), nn.BatchNorm2d(3)
    frozen.weight.requires_grad_(False)
    frozen.bias.requires_grad_(False)
    net = nn.Sequential(slow, frozen)
    images = [torch.randn(8, 3, 4, 4) * 3 + 5 for _ in range(4)]
    net.train()
    for x in images * 5:  # 20 steps: 0.2 steps x momentum, far from settled
        net(x)
    frozen_mean = frozen.running_mean.clone()
    assert settle_batch_norms(net, iter(images))
    pooled = torch.cat(images)
    assert torch.allclose(slow.running_mean, pooled.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(slow.running_var, torch.stack([x.var((0, 2, 3)) for x in images]).mean(0), atol=1e-4)
    assert slow.momentum == 0.01 and int(slow.num_batches_tracked) == 20  # the running average takes over again
    assert torch.equal(frozen.running_mean, frozen_mean) and net.training
    settled = nn.Sequential(nn.BatchNorm2d(3))  # momentum 0.1 after 40 steps: settled, left as it is
    settled.train()
    for x in images * 10:
        settled(x)
    before = settled[0].running_mean.clone()
    assert not settle_batch_norms(settled, iter(images)) and torch.equal(settled[0].running_mean, before)
