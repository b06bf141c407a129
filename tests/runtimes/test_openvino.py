"""OpenVINO's own runtime beside ONNX Runtime: the same ONNX files and specs, the same metrics suite, rows in
the same bench table and report; refused in one line when it is not installed or cannot apply."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_user_error, cli_env, invoke, run_cli

from edgecv.core.preprocess import to_model_input
from edgecv.data import load_dataset
from edgecv.measure.evaluate import evaluate
from edgecv.runtimes import RuntimeOptions, load_model

OPENVINO = RuntimeOptions(runtime="openvino")


BLOCK_OPENVINO = """
import sys
class _NoOpenVINO:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "openvino":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoOpenVINO())
from edgecv.cli.app import app
"""


@pytest.mark.parametrize("name", ["model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8-dynamic.onnx"])
def test_openvino_runs_every_onnx_variant_like_onnx_runtime(full_run, name):
    """Real OpenVINO compiled models: the spec read from the file, logits next to ONNX Runtime's (float files
    within 1e-3, int8 files agreeing on at least 99% of the answers), fp32 next to the torch checkpoint."""
    ort_model, ov_model = load_model(full_run / name), load_model(full_run / name, OPENVINO)
    assert (ov_model.format, ov_model.precision, ov_model.provider) == ("openvino", ort_model.precision, "cpu")
    assert ov_model.name == f"openvino {ort_model.precision}" and ov_model.spec == ort_model.spec
    images = load_dataset("digits", 32, color="L").test.x[:300]
    x = to_model_input(images, ov_model.spec)
    a, b = ort_model.logits(x), ov_model.logits(x)
    assert b.shape == (300, 10) and np.isfinite(b).all()
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99
    if "int8" not in name:
        np.testing.assert_allclose(b, a, atol=1e-3)
    if name == "model.onnx":
        torch_logits = load_model(full_run / "checkpoints" / "best.pt").logits(x)
        np.testing.assert_allclose(b, torch_logits, atol=1e-3)


def test_eval_on_openvino_gives_the_same_suite(full_run, tmp_path):
    ort_result = evaluate(full_run / "model.int8.onnx")
    ov_result = evaluate(full_run / "model.int8.onnx", OPENVINO)
    assert ov_result.variant == "openvino int8" and ov_result.format == "openvino"
    assert ov_result.metrics["num_samples"] == ort_result.metrics["num_samples"] == 360
    assert abs(ov_result.metrics["accuracy"] - ort_result.metrics["accuracy"]) <= 0.01
    assert set(ov_result.metrics) == set(ort_result.metrics)
    proc = run_cli("eval", full_run / "model.onnx", "--runtime", "openvino", "--json", tmp_path / "e.json", check=True)
    assert "openvino fp32 on cpu" in proc.stdout
    assert json.loads((tmp_path / "e.json").read_text())["variant"] == "openvino fp32"


def test_bench_and_report_put_openvino_rows_in_the_same_table(full_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(full_run, run, ignore=shutil.ignore_patterns("bench.json", "report*", "eval", "plots"))
    # a process of its own: run in-process after the rest of the suite, bench and report ended in a segfault
    run_cli("bench", run, "--runtimes", "onnxruntime,openvino", "--no-isolate", "--iters", "3", "--rounds", "2",
            "--batch-sizes", "1,4", check=True)
    bench = json.loads((run / "bench.json").read_text())
    rows = {v["name"]: v for v in bench["variants"]}
    for precision in ("fp32", "fp16", "int8", "int8-dynamic"):
        onnx_row, ov_row = rows[f"onnx {precision}"], rows[f"openvino {precision}"]
        assert ov_row["format"] == "openvino" and ov_row["file"] == onnx_row["file"]
        assert ov_row["metrics"]["num_samples"] == onnx_row["metrics"]["num_samples"]
        assert ov_row["metrics"]["agreement"] >= 0.99 and ov_row["latency_ms"]["p50"] > 0
        assert "pareto" in ov_row
    assert bench["reference"] == "onnx fp32" and bench["env"]["openvino"]
    run_cli("report", run, check=True)  # scores OpenVINO rows: a process of its own for the same reason
    assert "openvino int8" in (run / "report.md").read_text()
    assert (run / "eval" / "model.int8.onnx.openvino.json").is_file()
    assert (run / "eval" / "model.int8.onnx.json").is_file()
    # memory and cold start of an OpenVINO row come from a process of its own, like any other
    single = run_cli("bench", run / "model.onnx", "--runtimes", "openvino", "--iters", "3", "--rounds", "2",
                     "--batch-sizes", "1", "--json", tmp_path / "one.json", check=True)
    row = json.loads((tmp_path / "one.json").read_text())["variants"][0]
    assert row["name"] == "openvino fp32" and row["memory"]["peak_bytes"] > 0, single.stderr


def test_openvino_is_refused_in_one_line_when_missing_or_misapplied(full_run, tmp_path):
    for args in (["eval", str(full_run / "model.onnx"), "--runtime", "openvino"],
                 ["bench", str(full_run), "--runtimes", "onnxruntime,openvino", "--no-isolate"]):
        script = BLOCK_OPENVINO + f"sys.argv = ['edgecv', *{args!r}]\nfrom edgecv.cli import main\nmain()\n"
        proc = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True,
                              timeout=600)
        assert_user_error(proc, "needs OpenVINO", "pip install 'edgecv[openvino]'")
    assert_user_error(invoke("eval", full_run / "model.onnx", "--runtime", "tflite"), "--runtime must be one of")
    assert_user_error(invoke("eval", full_run / "checkpoints" / "best.pt", "--runtime", "openvino"),
                      "openvino runs ONNX files", "export")
    assert_user_error(invoke("bench", full_run, "--runtimes", "ort"), "--runtimes takes a comma list")
    assert_user_error(invoke("eval", full_run / "model.onnx", "--runtime", "openvino", "--provider", "cuda"),
                      "runs on cpu, gpu, npu")


def test_onnx_export_checks_the_file_on_openvino_too(full_run, tmp_path):
    from edgecv.exporters import export_onnx, load_source

    report = export_onnx(load_source(full_run), tmp_path / "m.onnx")
    other = report.to_dict()["other_runtimes"]["openvino"]
    assert other["passed"] and other["max_abs_diff"] <= report.atol and other["top1_agreement"] == 1.0
