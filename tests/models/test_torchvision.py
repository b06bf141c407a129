"""torchvision models by name, deployed as they are at their native resolution: weights from files the tests
save, preprocessing and categories from torchvision's own metadata, the Predictor against torchvision's own
evaluation transform."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_user_error, invoke, run_cli
from PIL import Image
from torchvision import models as tv

from edgecv import ModelError, Predictor
from edgecv.core.preprocess import to_model_input
from edgecv.models import create_model
from edgecv.models.weights import read_state_dict

# (width, height) of the photos the skew test classifies: portrait, landscape, square, panorama, tiny
PHOTO_SIZES = [(640, 480), (480, 640), (224, 224), (1000, 300), (300, 1000), (257, 333), (120, 90), (800, 799)]


def _photos(folder, sizes=PHOTO_SIZES, seed=0):
    """JPEGs of smooth random colour fields (a photo's statistics, not white noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (w, h) in enumerate(sizes):
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
        paths.append(folder / f"photo_{i}.jpg")
        img.save(paths[-1], quality=90)
    return paths


@pytest.fixture(scope="session")
def resnet18_run(tmp_path_factory):
    """``edgecv export torchvision:resnet18 --weights FILE``, the file a Lightning checkpoint (keys under
    state_dict, prefixed ``model.``) of randomly initialised weights."""
    root = tmp_path_factory.mktemp("resnet18")
    torch.manual_seed(0)
    reference = tv.resnet18().eval()
    with torch.no_grad():  # BatchNorm statistics a trained net would have, so eval mode is not the identity
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    ckpt = root / "epoch=3-step=100.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in reference.state_dict().items()},
                "hyper_parameters": {"lr": 0.1}}, ckpt)
    run = root / "run"
    proc = run_cli("export", "torchvision:resnet18", "--weights", ckpt, "--format", "onnx", "--out", run, check=True)
    return run, reference, proc


def test_a_torchvision_model_is_deployed_as_it_is_with_its_weights_metadata(resnet18_run):
    run, reference, proc = resnet18_run
    assert "preprocessing from ResNet18_Weights.IMAGENET1K_V1: resize the shorter side to 256, centre-crop " \
           "224x224, bilinear (the architecture's DEFAULT entry" in proc.stdout
    assert f"wrote run directory {run} (1000 classes, input 3x224x224)" in proc.stdout
    spec = json.loads((run / "spec.json").read_text())
    categories = tv.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert (spec["labels"], spec["input_shape"], spec["resize"], spec["interpolation"]) == (categories,
                                                                                          [3, 224, 224], 256,
                                                                                          "bilinear")
    assert spec["mean"] == [0.485, 0.456, 0.406] and spec["std"] == [0.229, 0.224, 0.225]
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "torchvision:resnet18" and config["weights"].endswith(".ckpt")
    parity = json.loads((run / "export.json").read_text())["exports"]["model.onnx"]
    assert parity["passed"] and [r["inputs"] for r in parity["parity"]] == ["random x1", "random x37"]
    # the checkpoint holds the file's weights exactly
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert all(torch.equal(best["model"][k], v) for k, v in reference.state_dict().items())


def test_the_predictor_sees_what_torchvisions_own_transform_gives_the_torch_model(resnet18_run, tmp_path):
    """Train/serve skew at 224: JPEGs of many sizes and aspect ratios through the Predictor (Pillow and numpy,
    from the file's spec) against ``weights.transforms()`` followed by the torch model."""
    run, reference, _ = resnet18_run
    transform = tv.ResNet18_Weights.IMAGENET1K_V1.transforms()
    predictor = Predictor(run / "model.onnx", top_k=1)
    worst, agree = 0.0, 0
    for path in _photos(tmp_path / "photos"):
        with Image.open(path) as img:
            x = transform(img.convert("RGB"))[None]
        with torch.no_grad():
            want = reference(x)[0].numpy()
        ours = predictor.preprocess(str(path))
        got = predictor.session.run(None, {"input": to_model_input(ours[None], predictor.spec)})[0][0]
        worst = max(worst, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
        agree += int(predictor.predict(str(path)).index == int(want.argmax()))
    assert agree == len(PHOTO_SIZES)
    assert worst < 1e-4  # the pixels are torchvision's exactly; what is left is float arithmetic


def test_a_state_dict_trained_elsewhere_deploys_with_its_labels_and_is_scored_on_its_folder(tmp_path):
    """mobilenet_v3_small with a 3-class head, saved from DataParallel (``module.`` keys under ``model``):
    exported with --labels from a file and --data, scored by edgecv eval on the folder it names."""
    torch.manual_seed(1)
    net = tv.mobilenet_v3_small(num_classes=3)
    weights = tmp_path / "mine.pth"
    torch.save({"model": {f"module.{k}": v for k, v in net.state_dict().items()}}, weights)
    folder = tmp_path / "shapes"
    for i, name in enumerate(("circle", "square", "star")):
        _photos(folder / name, sizes=[(260 + 7 * j, 240 - 5 * j) for j in range(5)], seed=10 + i)
    (tmp_path / "labels.txt").write_text("circle\nsquare\n\nstar\n")
    run = tmp_path / "run"
    proc = invoke("export", weights, "--model", "torchvision:mobilenet_v3_small", "--labels",
                  f"@{tmp_path / 'labels.txt'}", "--data", f"folder:{folder}", "--format", "onnx", "--out", run,
                  check=True)
    assert "wrote run directory" in proc.stdout and "(3 classes, input 3x224x224)" in proc.stdout
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["labels"], spec["resize"], spec["dataset"]) == (["circle", "square", "star"], 256, f"folder:{folder}")
    rows = json.loads((run / "export.json").read_text())["exports"]["model.onnx"]["parity"]
    assert rows[0]["inputs"].startswith("validation x")  # the folder's own images, framed as the spec says
    invoke("eval", run / "model.onnx", "--json", tmp_path / "eval.json", check=True)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert (report["split"], report["metrics"]["num_samples"]) == ("test", 3)  # a fifth of 15, stratified
    assert sum(map(sum, report["metrics"]["confusion_matrix"])) == 3
    # quantised (calibrated on the folder's training split) and benchmarked at 224 like any run
    invoke("quantize", run, "--speed-batch", "1", check=True)
    quantized = json.loads((run / "quantize.json").read_text())
    assert set(quantized["models"]) == {"model.int8.onnx", "model.int8-dynamic.onnx", "model.fp16.onnx"}
    invoke("bench", run, "--seconds", "0.05", "--no-isolate", "--batch-sizes", "1", check=True)
    benched = {Path(v["file"]).name: v for v in json.loads((run / "bench.json").read_text())["variants"]}
    assert {"best.pt", "model.onnx", "model.int8.onnx", "model.fp16.onnx"} <= set(benched)
    assert all(v["metrics"]["num_samples"] == 3 for v in benched.values())
    predicted = json.loads(invoke("predict", folder / "star", "--model", run / "model.int8.onnx", "--json",
                                  check=True).stdout)
    assert len(predicted) == 5 and {p["label"] for p in predicted} <= {"circle", "square", "star"}


def test_checkpoints_load_however_people_saved_them(tmp_path):
    from safetensors.torch import save_file

    net = tv.squeezenet1_1(num_classes=4)  # its head is a 1x1 convolution
    state = net.state_dict()
    forms = {
        "bare.pth": state,
        "nested.pt": {"state_dict": state, "optimizer": {"lr": 0.1}},
        "ema.pth": {"state_dict_ema": {f"module.{k}": v for k, v in state.items()}},
        "model_ema.pth": {"model_ema": state},
        "lightning.ckpt": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 2},
        "compiled.pth": {f"_orig_mod.{k}": v for k, v in state.items()},
        "weights.safetensors": None,
    }
    for name, payload in forms.items():
        path = tmp_path / name
        if payload is None:
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            torch.save(payload, path)
        loaded = create_model("torchvision:squeezenet1_1", 3, 4, 224, weights=str(path))
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items()), name
    # fine-tuning: a file with another head keeps everything but the head
    tuned = create_model("torchvision:squeezenet1_1", 3, 7, 224, weights=str(tmp_path / "bare.pth"))
    assert tuned.classifier[1].out_channels == 7
    assert torch.equal(tuned.features[0].weight, state["features.0.weight"])
    assert set(read_state_dict(tmp_path / "lightning.ckpt")) == {f"model.{k}" for k in state}


def test_auxiliary_outputs_are_left_out_and_fixed_size_transformers_refuse_other_sizes(tmp_path):
    full = tv.googlenet(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path / "googlenet.pth"
    torch.save(full.state_dict(), path)  # as torchvision publishes it: aux1 and aux2 included
    net = create_model("torchvision:googlenet", 3, 1000, 224, weights=str(path)).train()
    out = net(torch.zeros(2, 3, 224, 224))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)  # the main output, in training mode too
    assert all(k in net.state_dict() for k in full.state_dict() if not k.startswith(("aux1.", "aux2.")))
    with pytest.raises(ModelError, match=r"cannot take 3x160x160 inputs: Wrong image height! Expected 224"):
        create_model("torchvision:vit_b_16", 3, 10, 160)


def test_every_torchvision_classifier_is_listed_with_its_preprocessing():
    proc = invoke("models", "--source", "torchvision", check=True)
    listed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("│ torchvision:")]
    assert listed == [f"torchvision:{n}" for n in tv.list_models(module=tv)]
    row = next(line for line in proc.stdout.splitlines() if "torchvision:efficientnet_b0 " in line)
    assert [cell.strip() for cell in row.split("│")[2:6]] == ["224", "256", "bicubic", "1000"]
    assert f"{len(listed)} models" in proc.stdout


def test_bad_models_and_weights_are_one_line(tmp_path, monkeypatch):
    resnet = tmp_path / "resnet18.pth"
    torch.save(tv.resnet18().state_dict(), resnet)
    onnx = ("--format", "onnx")
    cases = [
        (("export", "torchvision:resnet19", *onnx), "torchvision has no classification model 'resnet19'; did you "
                                                    "mean torchvision:resnet18"),
        (("export", "torchvision:mobilenet_v2", "--weights", resnet, *onnx), "lacks features.0.0.weight"),
        (("export", "torchvision:resnet18", "--weights", resnet, "--labels", "cat,dog", *onnx),
         "has a head of 1000 classes (fc), but the model has 2: pass labels for 1000 classes"),
        (("export", "torchvision:resnet18", "--weights-meta", "IMAGENET1K_V9", *onnx),
         "torchvision:resnet18 has no weights 'IMAGENET1K_V9'; it has DEFAULT, IMAGENET1K_V1"),
        (("export", "torchvision:resnet18", "--weights", tmp_path / "missing.pth", *onnx), "does not exist"),
        (("export", "torchvision:resnet18", "--format", "executorch", "--out", tmp_path / "pte"),
         "model.int8.pte is calibrated on images like those the model will see: pass --data folder:PATH"),
        (("export", tmp_path, "--weights", resnet, *onnx), "--weights applies to a model deployed as it is"),
        (("export", "timm2:resnet18", *onnx), "models from other libraries are named torchvision:NAME"),
        (("export", "torchvision:resnet18", "--labels", "onlyone", *onnx), "--labels needs at least 2"),
        (("train", "--model", "torchvision:resnet18", "--color", "L", "--out", tmp_path / "t"),
         "torchvision:resnet18 takes RGB images (3 channels), not 1: pass --color RGB"),
        (("pipeline", "--model", "lenet5,torchvision:resnet19", "--out", tmp_path / "p"),
         "torchvision has no classification model 'resnet19'"),
        (("export", "w.pth", "--model", "lenet5"), "--model lenet5 takes a weights file as SOURCE"),
    ]
    for args, fragment in cases:
        assert_user_error(invoke(*args, cwd=tmp_path), fragment)
    assert not (tmp_path / "pte").exists() and not (tmp_path / "t").exists()
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # a closed port: the download fails at once
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert_user_error(invoke("export", "torchvision:resnet18", "--weights", "DEFAULT", "--format", "onnx",
                             cwd=tmp_path),
                      "cannot download ResNet18_Weights.IMAGENET1K_V1 for torchvision:resnet18",
                      "offline, pass --weights FILE (the published file is https://download.pytorch.org/models/"
                      "resnet18-f37072fd.pth)")
    assert not list(tmp_path.glob("runs/*"))  # nothing half-written


def _colour_photos(folder, per_class=16, seed=5):
    """A learnable folder: each class is a dominant colour, on JPEGs of many sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(("red", "green", "blue")):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(rng.integers(150, 420)), int(rng.integers(150, 420))
            small = rng.integers(0, 90, (5, 5, 3), dtype=np.uint8)
            small[..., k] += 150
            Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(folder / name / f"{i}.jpg")
    return folder


def test_fine_tuning_at_224_keeps_the_weights_preprocessing_and_serves_what_torchvision_computes(tmp_path):
    """resnet18 from a state dict, its body frozen (BatchNorm statistics kept), a new 3-class head trained on
    a folder streamed at 224 (torchvision's random-resized crops of each whole photo) with the weights'
    resize, crop, mean and std for evaluation; then the Predictor against torchvision's
    own transform and the trained torch model on photos it never saw."""
    folder = _colour_photos(tmp_path / "colours")
    torch.manual_seed(0)
    start = tv.resnet18()
    weights = tmp_path / "resnet18.pth"
    torch.save(start.state_dict(), weights)
    run = tmp_path / "run"
    trained = invoke("train", "--model", "torchvision:resnet18", "--weights", weights, "--freeze",
                     "--data", f"folder:{folder}", "--epochs", "4", "--batch-size", "8", "--lr", "0.01", "--out", run,
                     check=True)
    assert "streamed from disk" in trained.stdout and "random-resized crops of each whole image" in trained.stdout
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["input_shape"], spec["resize"], spec["interpolation"]) == ([3, 224, 224], 256, "bilinear")
    assert spec["mean"] == [0.485, 0.456, 0.406] and spec["std"] == [0.229, 0.224, 0.225]  # the weights' own
    assert json.loads((run / "metrics.json").read_text())["accuracy"] >= 0.9
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    for key in ("layer1.0.bn1.running_mean", "layer4.1.conv2.weight", "bn1.running_var"):
        assert torch.equal(best[key], start.state_dict()[key]), key  # frozen, statistics included
    invoke("export", run, "--format", "onnx", check=True)
    model = tv.resnet18(num_classes=3)
    model.load_state_dict(best)
    model.eval()
    transform = tv.ResNet18_Weights.IMAGENET1K_V1.transforms()
    predictor = Predictor(run / "model.onnx", top_k=1)
    unseen = _colour_photos(tmp_path / "unseen", per_class=12, seed=9)
    paths = sorted(unseen.glob("*/*.jpg"))
    agree, worst = 0, 0.0
    for path in paths:
        with Image.open(path) as img:
            x = transform(img.convert("RGB"))[None]
        with torch.no_grad():
            want = model(x)[0].numpy() / spec["temperature"]  # the file's logits are calibrated
        got = predictor.session.run(None, {"input": to_model_input(predictor.preprocess(str(path))[None],
                                                                   predictor.spec)})[0][0]
        worst = max(worst, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
        agree += int(predictor.predict(str(path)).index == int(want.argmax()))
    assert agree / len(paths) >= 0.99 and worst < 1e-4
    assert len({predictor.predict(str(p)).label for p in paths}) > 1  # it learnt something: not one class
