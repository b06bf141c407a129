"""edgecv profile: per-layer kernel time of an fp32 file against its int8 twin, on ONNX Runtime's profiler and
OpenVINO's counters, with the int8 kernels matched to the fp32 layers they came from."""

import json

import onnx
import pytest
from conftest import assert_user_error, invoke, run_cli

from edgecv.measure.layers import LayerNamer
from edgecv.measure.profile import LAYOUT, PRECISION, profile
from edgecv.runtimes import RuntimeOptions


def _products(path):
    """The names of the fp32 graph's convolutions and matrix products: the layers every file must show."""
    return {n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")}


def _check_lined_up(report: dict, fp32) -> None:
    assert [f["precision"] for f in report["files"]] == ["fp32", "int8"]
    assert all(f["batch"] == 4 and f["runs"] == 5 and f["total_us"] > 0 for f in report["files"])
    rows = {r["layer"]: r for r in report["layers"]}
    for layer in _products(fp32):  # each conv/gemm has its time in both files, under its fp32 name
        assert rows[layer]["us"][0] > 0 and rows[layer]["us"][1] > 0, layer
        assert rows[layer]["ratio"][1] == pytest.approx(rows[layer]["us"][1] / rows[layer]["us"][0])
    excess = [r["excess_us"] for r in report["layers"]]
    assert excess == sorted(excess, reverse=True)  # what int8 loses most on first
    overhead = {r["layer"]: r["us"] for r in report["overhead"]}
    assert overhead[PRECISION][0] == 0 and overhead[PRECISION][1] > 0  # int8 pays for quantising, fp32 not
    for f in report["files"]:  # every kernel is counted once: in a layer, or on an overhead line
        assert sum(f["layers"].values()) + sum(f["overhead"].values()) == pytest.approx(f["total_us"])
        assert sum(f["op_types"].values()) == pytest.approx(f["total_us"])


def test_fp32_and_int8_line_up_layer_by_layer_on_onnx_runtime(full_run):
    fp32, int8 = full_run / "model.onnx", full_run / "model.int8.onnx"
    report = profile([fp32, int8], RuntimeOptions(), batch=4, runs=5, warmup=2)
    _check_lined_up(report.to_dict(), fp32)


def test_fp32_and_int8_line_up_layer_by_layer_on_openvino(full_run, tmp_path):
    fp32, int8 = full_run / "model.onnx", full_run / "model.int8.onnx"
    # a process of its own: OpenVINO run in the suite's process ends in a segfault later on (see test_openvino)
    run_cli("profile", fp32, int8, "--runtime", "openvino", "--batch", "4", "--runs", "5", "--warmup", "2",
            "--json", tmp_path / "ov.json", check=True)
    report = json.loads((tmp_path / "ov.json").read_text())
    assert {f["runtime"] for f in report["files"]} == {"openvino"}
    _check_lined_up(report, fp32)


def test_engine_names_go_back_to_the_graphs_layers(full_run):
    namer = LayerNamer.of(full_run / "model.onnx")
    conv = next(n.name for n in onnx.load(str(full_run / "model.onnx")).graph.node if n.op_type == "Conv")
    relu_out = next(n.output[0] for n in onnx.load(str(full_run / "model.onnx")).graph.node if n.op_type == "Relu")
    # ONNX Runtime's fused conv+relu is named after the relu's output; OpenVINO splits off the bias
    assert namer.layer(f"{relu_out}_nchwc") == conv
    assert namer.layer(f"{conv}/WithoutBiases") == conv
    assert namer.layer(f"{conv}_token_7") == conv
    assert namer.layer("something_else_entirely") == "something_else_entirely"
    assert LayerNamer().layer(f"{conv}_quant") == conv  # without the graph: the engine's suffixes dropped


def test_cli_writes_the_table_the_json_and_a_chart(full_run, tmp_path):
    fp32, int8 = full_run / "model.onnx", full_run / "model.int8.onnx"
    proc = invoke("profile", fp32, int8, "--runs", "3", "--warmup", "1", "--json", tmp_path / "p.json",
                  "--chart", tmp_path / "p.png", check=True)
    assert "model.int8.onnx (int8, onnxruntime)" in proc.stdout and PRECISION in proc.stdout
    assert LAYOUT in proc.stdout and "by op type" in proc.stdout
    data = json.loads((tmp_path / "p.json").read_text())
    assert [f["precision"] for f in data["files"]] == ["fp32", "int8"]
    assert {r["layer"] for r in data["layers"]} >= _products(fp32)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line(full_run, tmp_path):
    fp32 = full_run / "model.onnx"
    assert_user_error(invoke("profile", full_run / "model.pt"), "ONNX files")
    assert_user_error(invoke("profile", tmp_path / "missing.onnx"), "missing.onnx")
    assert_user_error(invoke("profile", fp32, "--batch", "0"), "--batch")
    assert_user_error(invoke("profile", fp32, "--runtime", "tflite"), "--runtime")
    (tmp_path / "a-file").write_text("")
    assert_user_error(invoke("profile", fp32, "--chart", tmp_path / "a-file" / "p.png", "--runs", "1"),
                      "cannot write")
