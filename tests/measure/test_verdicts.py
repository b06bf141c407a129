"""Figures no finer than their noise, with real ONNX Runtime sessions: interleaved rounds do not call a file
faster than itself but do see a slowed one."""

from __future__ import annotations

import torch
from conftest import export_model, quick_bench_options
from torch import nn

from edgecv.measure.bench import bench
from edgecv.measure.verdicts import faster, speed
from edgecv.runtimes import RuntimeOptions


class Slowed(nn.Module):
    """The same predictions after a heavy detour through 24 1024x1024 matmuls that adds exactly zero."""

    def __init__(self, model: nn.Module, width: int = 1024, depth: int = 24) -> None:
        super().__init__()
        self.model = model
        self.heavy = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.heavy:
            h = torch.tanh(layer(h))
        return self.model(x) + 0.0 * h.sum(1, keepdim=True)


def test_the_same_file_twice_is_not_called_different(lenet):
    run, _ = lenet
    report = bench([run / "model.onnx", run / "model.onnx"], RuntimeOptions(threads=1), quick_bench_options())
    a, b = report.row("onnx fp32"), report.row("onnx fp32 (2)")
    ratio = speed(a, b)
    assert ratio is not None and ratio.low <= ratio.ratio <= ratio.high
    assert not faster(a, b) and not faster(b, a), ratio
    assert a.pareto and b.pareto  # neither beats the other
    assert report.recommended == "onnx fp32" and report.recommendation.startswith("keep onnx fp32")
    assert len(a.round_p50_ms) == 10 and a.timed_calls >= 10
    lo, hi = a.latency_ci_ms["p50"]
    assert lo <= a.latency_ms["p50"] <= hi


def test_a_slowed_variant_is_called_slower(lenet, tmp_path):
    run, source = lenet
    torch.manual_seed(0)
    slow = export_model(source, Slowed(source.model), tmp_path / "slow.onnx")
    # the slowed file first: it is the reference, and the plain one must win against it beyond noise
    report = bench([slow, run / "model.onnx"], RuntimeOptions(threads=1), quick_bench_options())
    slowed, plain = report.row("onnx fp32"), report.row("onnx fp32 (2)")
    assert slowed.metrics["accuracy"] == plain.metrics["accuracy"]
    ratio = speed(plain, slowed)
    assert ratio is not None and faster(plain, slowed) and ratio.low >= 1.05, ratio
    assert plain.pareto and not slowed.pareto
    assert report.recommended == "onnx fp32 (2)" and "beyond noise" in report.recommendation
