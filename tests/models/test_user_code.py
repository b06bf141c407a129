"""Your own nn.Module: --model path/net.py:factory or package.module:factory, trained, exported and measured
from its run directory as a preset is, and refused once its file has changed (until --trust-code)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import assert_user_error, invoke

NET = '''
from torch import nn


def build(num_classes, in_channels=1):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(8 * 16, num_classes))


build.input_size = 16  # the default --img-size for this factory


def broken(num_classes):
    raise ValueError("no such width")


def not_a_module(num_classes):
    return 42
'''


def test_your_own_module_trains_exports_and_benches_and_a_changed_file_is_refused(tmp_path):
    net = tmp_path / "code" / "net.py"
    net.parent.mkdir()
    net.write_text(NET)
    invoke("train", "--model", "code/net.py:build", "--data", "digits", "--img-size", "16", "--epochs", "2",
           cwd=tmp_path, check=True)
    run = tmp_path / "runs" / "net-build-digits"  # a plain folder name
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == f"{net.resolve()}:build"  # absolute: the run builds from any directory
    assert config["model_code"] == {"path": str(net.resolve()), "sha256": hashlib.sha256(net.read_bytes()).hexdigest()}
    invoke("export", run, "--format", "onnx", check=True)
    assert (run / "model.onnx").is_file()
    invoke("bench", run, "--seconds", "0.05", "--no-isolate", "--batch-sizes", "1", check=True)
    rows = {Path(v["file"]).name for v in json.loads((run / "bench.json").read_text())["variants"]}
    assert {"best.pt", "model.onnx"} <= rows  # the torch checkpoint is rebuilt from the user's code
    net.write_text(NET + "\n# edited\n")
    for args in (("export", run, "--format", "onnx"), ("eval", run / "checkpoints" / "best.pt"),
                 ("train", "--resume", run)):
        assert_user_error(invoke(*args, cwd=tmp_path), "net.py has changed since this run was built from it",
                          "pass --trust-code")
    invoke("export", run, "--format", "onnx", "--trust-code", check=True)


def test_a_package_module_factory_and_bad_factories_are_one_line(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(NET)
    (tmp_path / "bad.py").write_text("def build(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    invoke("train", "--model", "mypkg.nets:build", "--img-size", "8", "--epochs", "1", "--out", tmp_path / "r",
           cwd=tmp_path, check=True)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model_code"]["path"] == str(pkg / "nets.py")
    cases = [
        ("mypkg/nets.py:broken", "broken(10) raised ValueError: no such width"),
        ("mypkg/nets.py:not_a_module", "not_a_module(10) returned int, not a torch nn.Module"),
        ("mypkg/nets.py:missing", "nets.py has no callable 'missing' (it defines broken, build, not_a_module"),
        ("nowhere.py:build", "nowhere.py does not exist"),
        ("bad.py:build", "importing bad.py raised SyntaxError"),
        ("nopkg.nets:build", "no module nopkg.nets is importable here"),
    ]
    for model, fragment in cases:
        assert_user_error(invoke("train", "--model", model, "--epochs", "1", "--out", tmp_path / "x", cwd=tmp_path),
                          fragment)
    assert not (tmp_path / "x").exists()
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    assert_user_error(invoke("export", weights, "--model", "mypkg/nets.py:build", "--labels", "a,b", cwd=tmp_path),
                      "deployed with the preprocessing it was trained with: pass --mean, --std")


def test_a_study_takes_your_own_module_beside_a_built_in_one(tmp_path):
    net = tmp_path / "net.py"
    net.write_text(NET)
    invoke("pipeline", "--model", "net.py:build,cnn-tiny", "--epochs", "1", "--seconds", "0.02", "--no-isolate",
           "--out", tmp_path / "study", cwd=tmp_path, check=True)
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    runs = {Path(o["run_dir"]).name for o in study["outcomes"]}
    assert runs == {"net-build", "cnn-tiny"}  # plain folder names
    assert all(o["ok"] for o in study["outcomes"])
    assert (tmp_path / "study" / "net-build" / "report.html").is_file()
    assert json.loads((tmp_path / "study" / "net-build" / "config.json").read_text())["model_code"]["sha256"]


def test_a_state_dict_of_your_own_module_trained_elsewhere_is_deployed_as_it_is(tmp_path):
    """``edgecv export weights.pth --model net.py:build`` with the preprocessing it was trained with: the run
    directory, an ONNX file within parity of the module, a spec that says what was stated, and eval on a
    folder by name."""
    import torch
    from conftest import make_image_folder

    from edgecv import Predictor
    from edgecv.models.user_code import entry_for

    net = tmp_path / "net.py"
    net.write_text(NET)
    torch.manual_seed(0)
    module = entry_for(f"{net}:build").build(1, 3, 16)
    weights = tmp_path / "weights.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in module.state_dict().items()}}, weights)
    run = tmp_path / "deployed"
    invoke("export", weights, "--model", f"{net}:build", "--labels", "cat,dog,fox", "--mean", "0.5", "--std", "0.25",
           "--color", "L", "--resize", "18", "--format", "onnx", "--out", run, check=True)
    spec = json.loads((run / "spec.json").read_text())
    assert (spec["labels"], spec["input_shape"], spec["resize"], spec["mean"]) == \
        (["cat", "dog", "fox"], [1, 16, 16], 18, [0.5])  # the factory's input_size, the facts stated
    exported = json.loads((run / "export.json").read_text())["exports"]["model.onnx"]
    assert exported["passed"] and max(row["max_abs_diff"] for row in exported["parity"]) < 1e-4
    config = json.loads((run / "config.json").read_text())
    assert config["model_code"]["path"] == str(net.resolve())
    folder = make_image_folder(tmp_path / "imgs", classes=("fox", "cat", "dog"), per_class=4)
    proc = invoke("eval", run / "model.onnx", "--data", f"folder:{folder}", "--split", "all", check=True)
    assert "12 images" in proc.stdout
    assert Predictor(run / "model.onnx").labels == ["cat", "dog", "fox"]
    assert_user_error(invoke("export", weights, "--model", f"{net}:build", "--labels", "a,b,c"), "--mean", "--std")
    assert_user_error(invoke("export", weights, "--model", f"{net}:build", "--labels", "a,b", "--mean", "0.5",
                             "--std", "0.25", "--color", "L"), "weights.pth", "head of 3 classes")
    assert_user_error(invoke("export", weights, "--model", "torchvision:resnet18", "--mean", "0.5"),
                      "--mean applies to your own module")
    assert not (tmp_path / "runs").exists()
