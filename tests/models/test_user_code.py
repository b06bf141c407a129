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
                      "has no published weights and preprocessing to deploy it with as it is: train it")


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
