"""timm models by name through the same path as torchvision's: the tag's pretrained_cfg gives the framing, the
Predictor sees what timm's own evaluation transform gives the torch model."""

from __future__ import annotations

import json

import numpy as np
import timm  # the timm extra: make test installs it
import torch
from conftest import assert_user_error, invoke
from PIL import Image
from timm.data import create_transform, resolve_data_config

from edgecv import Predictor
from edgecv.core.preprocess import to_model_input
from edgecv.models import model_entry

NAME = "mobilenetv3_small_100.lamb_in1k"


def test_a_timm_model_deploys_at_its_tags_preprocessing_and_matches_timms_transform(tmp_path):
    torch.manual_seed(0)
    reference = timm.create_model(NAME, pretrained=False).eval()
    with torch.no_grad():
        reference.get_classifier().weight.mul_(50)  # logits far enough apart for a meaningful top-1
    weights = tmp_path / "mnv3.pth"
    torch.save({"state_dict_ema": reference.state_dict()}, weights)
    run = tmp_path / "run"
    proc = invoke("export", f"timm:{NAME}", "--weights", weights, "--format", "onnx", "--out", run, check=True)
    assert f"preprocessing from timm {NAME}: resize the shorter side to 256, centre-crop 224x224, bicubic" \
        in proc.stdout
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["resize"], spec["interpolation"], spec["labels"][:2], len(spec["labels"])) == (
        256, "bicubic", ["tench", "goldfish"], 1000)
    assert len(set(spec["labels"])) == 1000  # ImageNet's two "crane"s are told apart by their synsets
    transform = create_transform(**resolve_data_config({}, model=reference))
    predictor = Predictor(run / "model.onnx", top_k=1)
    rng = np.random.default_rng(3)
    for w, h in ((640, 480), (300, 1000), (224, 224), (333, 250)):
        img = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        x = transform(img)[None]
        with torch.no_grad():
            want = reference(x)[0].numpy()
        pixels = predictor.preprocess(img)
        got = predictor.session.run(None, {"input": to_model_input(pixels[None], predictor.spec)})[0][0]
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max())), (w, h)
        assert predictor.predict(img).index == int(want.argmax())


def test_the_tag_picks_the_preprocessing():
    a1, tv = model_entry("timm:resnet50.a1_in1k").native(None), model_entry("timm:resnet50.tv_in1k").native(None)
    assert (a1.size, a1.resize, a1.interpolation) == (224, 235, "bicubic")  # crop_pct 0.95
    assert (tv.size, tv.resize, tv.interpolation) == (224, 256, "bilinear")  # crop_pct 0.875
    assert "timm's default tag for resnet50" in model_entry("timm:resnet50").native(None).chosen


def test_bad_timm_names_and_weights_are_one_line(tmp_path, monkeypatch):
    cases = [
        (("export", "timm:mobilenetv3_smal_100"), "timm has no model 'mobilenetv3_smal_100'; did you mean "
                                                  "timm:mobilenetv3_small_100"),
        (("export", "timm:resnet50.nope_in1k"), "timm:resnet50 has no pretrained tag 'nope_in1k'; it has"),
        (("export", f"timm:{NAME}", "--weights-meta", "IMAGENET1K_V1"), "the pretrained tag in the name picks"),
    ]
    for args, fragment in cases:
        assert_user_error(invoke(*args, "--format", "onnx", cwd=tmp_path), fragment)
    import huggingface_hub.constants

    # offline, as HF_HUB_OFFLINE=1 makes it (the hub client reads the variable once, at import)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert_user_error(invoke("export", f"timm:{NAME}", "--weights", "DEFAULT", "--format", "onnx", cwd=tmp_path),
                      f"cannot download the weights of timm:{NAME}", "offline, pass --weights FILE")
