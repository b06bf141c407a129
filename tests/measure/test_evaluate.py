"""edgecv eval: the same metrics suite for every variant, foreign ONNX files and their missing facts, bad
model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import RUN_VARIANTS, assert_user_error, invoke, run_cli

from edgecv.data import load_dataset
from edgecv.runtimes import load_model, runtime_for


def test_eval_gives_the_same_suite_for_every_variant(full_run, tmp_path):
    data = load_dataset("digits", 32)
    y = data.test.y
    for name, (fmt, precision) in RUN_VARIANTS.items():
        out = tmp_path / f"{Path(name).name}.json"
        run = run_cli if name == "model.onnx" else invoke  # one real process; the other variants in-process
        proc = run("eval", full_run / name, "--json", out, check=True)
        assert "per class" in proc.stdout and "confusion matrix" in proc.stdout and "ECE" in proc.stdout
        result = json.loads(out.read_text())
        assert (result["format"], result["precision"], result["provider"]) == (fmt, precision, "cpu")
        m = result["metrics"]
        assert m["num_samples"] == len(y) and sum(map(sum, m["confusion_matrix"])) == len(y)
        # independent check: the confusion matrix's diagonal is the accuracy
        assert m["accuracy"] == pytest.approx(np.trace(m["confusion_matrix"]) / len(y))
        assert 0 <= m["ece"] <= 1 and m["top5_accuracy"] >= m["accuracy"]
        assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1] and "95% CI" in proc.stdout
        assert len(m["reliability"]) == 15 and sum(b["count"] for b in m["reliability"]) == len(y)
    # the eager model and its ONNX export score the same on the same split
    torch_m = json.loads((tmp_path / "best.pt.json").read_text())["metrics"]
    onnx_m = json.loads((tmp_path / "model.onnx.json").read_text())["metrics"]
    assert torch_m["accuracy"] == onnx_m["accuracy"] and torch_m["loss"] == pytest.approx(onnx_m["loss"], abs=1e-5)


def test_a_foreign_onnx_file_needs_the_missing_facts(full_run, tmp_path):
    m = onnx.load(str(full_run / "model.onnx"))
    del m.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(m, str(foreign))
    assert_user_error(invoke("eval", foreign), "no edgecv spec", "--labels", "--mean", "--std")
    assert_user_error(invoke("eval", foreign, "--labels", ",".join("0123456789")), "pass --mean, --std")
    spec = load_model(full_run / "model.onnx").spec
    flags = ["--labels", ",".join(spec.labels), "--mean", str(spec.mean[0]), "--std", str(spec.std[0]),
             "--input-shape", "1,32,32", "--data", "digits", "--split", "test", "--json", tmp_path / "f.json"]
    invoke("eval", foreign, *flags, check=True)
    own = invoke("eval", full_run / "model.onnx", "--json", tmp_path / "o.json", check=True)
    assert own.returncode == 0
    assert json.loads((tmp_path / "f.json").read_text())["metrics"]["accuracy"] == \
        json.loads((tmp_path / "o.json").read_text())["metrics"]["accuracy"]
    # facts that contradict the file are one line, not a runtime traceback
    wrong = [*flags[:6], "--input-shape", "1,28,28", "--data", "digits"]
    assert_user_error(invoke("eval", foreign, *wrong), "takes input 1x32x32 (NCHW)", "1x28x28")


def test_bad_model_files_are_one_line_errors(full_run, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    empty = tmp_path / "empty.onnx"
    empty.touch()
    other = tmp_path / "weights.npz"
    np.savez(other, a=np.zeros(3))
    for path, fragment in ((tmp_path / "missing.onnx", "does not exist"), (text, "ONNX Runtime cannot load"),
                           (empty, "is empty"), (other, "not a TorchScript file or an edgecv checkpoint"),
                           (tmp_path, "is a folder")):
        assert_user_error(invoke("eval", path), fragment)
    assert_user_error(invoke("eval", full_run / "model.onnx", "--split", "dev"), "--split must be one of")
    assert_user_error(invoke("bench", full_run / "model.onnx", "--batch-sizes", "0"), "--batch-sizes")
    assert_user_error(invoke("bench", tmp_path), "holds no model files")
    # a data set whose test split has no images
    from PIL import Image

    for split in ("train", "val", "test"):
        for cls in ("a", "b"):
            folder = tmp_path / "imgs" / split / cls
            folder.mkdir(parents=True)
            for i in range(3 if split != "test" else 0):
                Image.new("L", (10, 10), 40 * i).save(folder / f"{i}.png")
    assert_user_error(invoke("eval", full_run / "model.onnx", "--data", f"folder:{tmp_path / 'imgs'}"),
                      "test", "no valid file")
    assert runtime_for(full_run / "model.pt") == "torchscript"
    assert runtime_for(full_run / "checkpoints" / "best.pt") == "torch"
