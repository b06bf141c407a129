"""Device and numeric settings: selection logic and the CPU paths of the CUDA options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgecv.core.errors import EdgecvError
from edgecv.train import TrainConfig, train
from edgecv.train.device import amp_dtype, pick_device, set_deterministic


def test_auto_device_and_amp_selection():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert amp_dtype("auto", torch.device("cpu")) is None  # mixed precision is a CUDA feature here
    assert amp_dtype("bf16", torch.device("cpu")) is None
    cuda = torch.device("cuda")
    assert amp_dtype("fp16", cuda) is torch.float16
    assert amp_dtype("bf16", cuda) is torch.bfloat16
    assert amp_dtype("off", cuda) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(EdgecvError, match="no CUDA GPU is visible.*use --device cpu"):
        pick_device("cuda")


def test_deterministic_switch_toggles_torch_global_state():
    try:
        set_deterministic(True, torch.device("cpu"))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(False, torch.device("cpu"))
    assert not torch.are_deterministic_algorithms_enabled()


def test_channels_last_training_matches_the_default_layout(tmp_path):
    common = dict(model="cnn-bn", epochs=1, batch_size=128, device="cpu")
    plain = train(TrainConfig(out=str(tmp_path / "a"), channels_last=False, **common))
    nhwc = train(TrainConfig(out=str(tmp_path / "b"), channels_last=True, deterministic=True, **common))
    set_deterministic(False, torch.device("cpu"))
    # other conv kernels round differently, so the runs agree closely rather than bit for bit
    assert nhwc.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"], rel=0.03)
    assert nhwc.metrics["accuracy"] == pytest.approx(plain.metrics["accuracy"], abs=0.05)


def test_vgg16_transfer_needs_pretrained_weights_to_train():
    with pytest.raises(EdgecvError, match="pass --weights FILE.*use --model vgg"):
        TrainConfig(model="vgg16-transfer").resolved()
    resolved = TrainConfig(model="vgg16-transfer", weights="w.pth").resolved()
    assert resolved.weights == str(Path("w.pth").resolve())  # stored absolute
