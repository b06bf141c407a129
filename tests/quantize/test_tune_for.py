"""Int8 files shaped for one engine: hard-swish as one op, SiLU gates and squeeze-excite blocks found by
structure, and an OpenVINO-tuned file whose convolution outputs stay in float, measured and timed on OpenVINO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from conftest import run_cli
from onnxruntime.quantization.shape_inference import quant_pre_process
from test_quantize import copy_run

from edgecv.core.onnxfile import quantization_of
from edgecv.quantize.graph import fuse_hard_swish, squeeze_excite_nodes, swish_nodes


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.hardswish(self.a(x))
        return torch.nn.functional.silu(self.b(y))


def _export(tmp_path: Path) -> Path:
    path = tmp_path / "block.onnx"
    torch.onnx.export(_Block().eval(), torch.randn(1, 3, 16, 16), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"])
    return path


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_hard_swish_becomes_one_op_again_with_the_same_outputs_and_silu_gates_are_found(tmp_path):
    prepared = tmp_path / "prepared.onnx"
    quant_pre_process(str(_export(tmp_path)), str(prepared))
    model = onnx.load(str(prepared))
    ops = [n.op_type for n in model.graph.node]
    assert "HardSigmoid" in ops and "HardSwish" not in ops  # what quant_pre_process made of torch's HardSwish
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    before = _run(model, x)
    assert fuse_hard_swish(model.graph) == 1
    ops = [n.op_type for n in model.graph.node]
    assert "HardSigmoid" not in ops and ops.count("HardSwish") == 1
    onnx.checker.check_model(model)
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-5, atol=1e-6)
    assert fuse_hard_swish(model.graph) == 0  # nothing left to fuse
    gates = swish_nodes(model.graph)
    by_name = {n.name: n.op_type for n in model.graph.node}
    assert sorted(by_name[g] for g in gates) == ["Mul", "Sigmoid"]


class _Excited(torch.nn.Module):
    """Two squeeze-excite blocks as torchvision builds them (SiLU and hard-sigmoid gates), then a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.ops import SqueezeExcitation

        self.conv = torch.nn.Conv2d(3, 16, 3)
        self.se1 = SqueezeExcitation(16, 4, activation=torch.nn.SiLU)
        self.se2 = SqueezeExcitation(16, 8, scale_activation=torch.nn.Hardsigmoid)
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.se2(self.se1(self.conv(x))))


def test_squeeze_excite_blocks_are_found_whole_and_a_pooled_head_is_not_one(tmp_path):
    path = tmp_path / "excited.onnx"
    torch.onnx.export(_Excited().eval(), torch.randn(1, 3, 16, 16), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"])
    graph = onnx.load(str(path)).graph
    by_name = {n.name: n for n in graph.node}
    found = [by_name[name] for name in squeeze_excite_nodes(graph)]
    silu_block = ["GlobalAveragePool", "Conv", "Sigmoid", "Mul", "Conv", "Sigmoid", "Mul"]  # SiLU inside
    hard_block = ["GlobalAveragePool", "Conv", "Relu", "Conv", "HardSigmoid", "Mul"]
    assert sorted(n.op_type for n in found) == sorted(silu_block + hard_block)
    pools = [n for n in graph.node if n.op_type == "GlobalAveragePool"]
    assert len(pools) == 3 and pools[-1] not in found  # the classifier head's pool starts no SE block
    gates = [n for n in found if n.op_type == "Mul" and pools[0].input[0] in n.input]
    assert len(gates) == 1  # the block ends at the Mul that scales the pooled tensor by its gate


def _conv_outputs_quantised(path: Path) -> bool:
    graph = onnx.load(str(path)).graph
    quantise_inputs = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    return any(out in quantise_inputs for n in graph.node if n.op_type == "Conv" for out in n.output)


def test_an_openvino_tuned_file_is_written_beside_onnx_runtimes_and_timed_on_openvino(lenet_onnx, tmp_path):
    model = copy_run(lenet_onnx, tmp_path / "run")
    proc = run_cli("quantize", model, "--tune-for", "openvino", "--calib-size", "64", "--speed-batch", "8",
                   check=True)
    tuned = tmp_path / "run" / "model.int8-openvino.onnx"
    assert tuned.is_file() and "model.int8-openvino.onnx" in proc.stdout
    assert not (tmp_path / "run" / "model.int8.onnx").exists()  # ONNX Runtime's file is not replaced
    assert quantization_of(onnx.load(str(tuned)))["settings"]["tuned_for"] == "openvino"
    entry = json.loads((tmp_path / "run" / "quantize.json").read_text())["models"]["model.int8-openvino.onnx"]
    assert entry["settings"]["tuned_for"] == "openvino" and entry["speed"]["batch"] == 8
    assert entry["speed"]["fp32_images_per_s"] > 0 and 0 <= entry["test_accuracy"] <= 1
    assert not _conv_outputs_quantised(tuned)  # OpenVINO fuses the float output and the next quantise step
    run_cli("quantize", model, "--method", "int8-static", "--calib-size", "64", "--speed-batch", "8", check=True)
    assert _conv_outputs_quantised(tmp_path / "run" / "model.int8.onnx")  # ONNX Runtime's QLinearConv needs them
