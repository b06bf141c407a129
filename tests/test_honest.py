"""Figures no finer than their noise, with real ONNX Runtime sessions: interleaved rounds that do not call a
file faster than itself but do see a slowed one, memory measured in isolated processes that grows with the
model, accuracy intervals and McNemar's test against scipy, and a temperature the ONNX file applies itself."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import export_model, invoke, quick_bench_options, run_cli
from scipy.stats import binomtest
from torch import nn

from edgecv.core import stats
from edgecv.core.calibration import fit_temperature, nll, uncalibrated
from edgecv.core.metrics import softmax
from edgecv.data import load_dataset
from edgecv.measure.bench import bench
from edgecv.measure.evaluate import evaluate
from edgecv.measure.memprobe import measure_isolated
from edgecv.measure.verdicts import faster, speed
from edgecv.runtimes import RuntimeOptions, load_model

MB = 2**20


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


def test_memory_grows_with_the_model_in_isolated_processes(lenet, tmp_path):
    run, source = lenet
    torch.manual_seed(0)
    big_model = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 8192), nn.ReLU(), nn.Linear(8192, 10))
    big = export_model(source, big_model, tmp_path / "big.onnx")  # 8.5M parameters: 34 MB of weights
    options = {"provider": "cpu", "threads": 1}
    small_m = measure_isolated(run / "model.onnx", options, (1, 32, 32), "float32", 1, 64)
    big_m = measure_isolated(big, options, (1, 32, 32), "float32", 1, 64)
    assert small_m["pid"] != big_m["pid"]  # two fresh processes
    assert small_m["model_bytes"] < 40 * MB, small_m  # small for a 250 KB model: not the whole process
    assert big_m["model_bytes"] > small_m["model_bytes"] + 25 * MB, (small_m, big_m)
    assert small_m["load_ms"] > 0 and small_m["first_run_ms"] > 0


def test_bench_reports_isolated_memory_cold_start_and_intervals_through_the_cli(lenet, tmp_path):
    run, _ = lenet
    out = tmp_path / "bench.json"
    proc = run_cli("bench", run / "model.onnx", "--batch-sizes", "1,8", "--seconds", "0.2", "--rounds", "4",
                   "--json", out, check=True)
    data = json.loads(out.read_text())
    assert data["schema"] == 2 and data["method"]["rounds"] == 4 and data["method"]["images"] == 360
    v = data["variants"][0]
    assert 0 < v["memory"]["model_bytes"] < 40 * MB and v["memory"]["baseline_bytes"] > v["memory"]["model_bytes"]
    assert v["cold_start_ms"]["load"] > 0 and v["cold_start_ms"]["first_run"] > 0
    assert len(v["round_p50_ms"]) == 4 and set(v["throughput_ci"]) == {"1", "8"}
    lo, hi = v["metrics"]["accuracy_ci"]
    assert lo < v["metrics"]["accuracy"] <= hi <= 1
    assert "95% CI" in proc.stdout and "interleaved rounds" in proc.stdout and "fresh process" in proc.stdout


def test_the_memory_probe_names_a_missing_provider_and_measures_no_device_memory_on_the_cpu(lenet):
    run, _ = lenet
    with pytest.raises(RuntimeError, match="no cuda provider"):
        measure_isolated(run / "model.onnx", {"provider": "cuda"}, (1, 32, 32), "float32", 1, 8)
    cpu = measure_isolated(run / "model.onnx", {"provider": "cpu"}, (1, 32, 32), "float32", 1, 8)
    assert cpu["provider"] == "cpu" and cpu["device_bytes"] is None and cpu["big_batch"] == 8


def test_bad_timing_options_are_one_line_errors(lenet):
    run, _ = lenet
    for args, fragment in ((("--rounds", "1"), "--rounds"), (("--min-speedup", "0.5"), "--min-speedup")):
        proc = invoke("bench", run / "model.onnx", *args)
        assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr


def test_mcnemar_figures_match_scipys_binomial_test(trained, lenet, tmp_path):
    from edgecv.exporters import load_source

    strong_run, _ = lenet
    weak_source = load_source(trained("lenet5", epochs=1))
    weak = export_model(weak_source, weak_source.model, tmp_path / "weak.onnx")
    report = bench([weak, strong_run / "model.onnx"], RuntimeOptions(threads=1),
                   quick_bench_options(seconds=0.1, rounds=3, warmup=2))
    assert report.reference == "onnx fp32"
    paired = report.row("onnx fp32 (2)").metrics["paired"]
    right_weak = evaluate(weak).probs.argmax(1) == load_dataset("digits", 32).test.y
    right_strong = evaluate(strong_run / "model.onnx").probs.argmax(1) == load_dataset("digits", 32).test.y
    only_strong = int((right_strong & ~right_weak).sum())
    only_weak = int((~right_strong & right_weak).sum())
    assert only_strong + only_weak > 0, "the two models must disagree somewhere for this test to mean anything"
    assert paired["differs_on"] == only_strong + only_weak
    assert (paired["only_this_right"], paired["only_reference_right"]) == (only_strong, only_weak)
    assert paired["p_value"] == pytest.approx(binomtest(only_strong, only_strong + only_weak, 0.5).pvalue)
    ref_row = report.row("onnx fp32")
    assert ref_row.metrics["paired"]["differs_on"] == 0 and ref_row.metrics["paired"]["p_value"] == 1.0
    n = len(right_weak)
    lo, hi = ref_row.metrics["accuracy_ci"]
    assert lo < right_weak.mean() < hi and hi - lo < 0.11 and ref_row.metrics["accuracy"] == right_weak.sum() / n


def test_a_quantisation_that_does_not_pay_is_said_by_quantize_and_bench(lenet, tmp_path):
    from edgecv.quantize import QuantizeOptions, quantize

    run, _ = lenet
    src = tmp_path / "model.onnx"
    shutil.copy(run / "model.onnx", src)
    r = quantize(src, QuantizeOptions(methods=("int8-static",), calib_size=64)).results[0]
    assert r.speed["batch"] == 64 and r.speed["vs_fp32"] > 0 and r.speed["fp32_images_per_s"] > 0
    assert any("does not pay" in n for n in r.notes) == r.speed["slower_beyond_noise"]
    recorded = json.loads((tmp_path / "quantize.json").read_text())["models"]["model.int8.onnx"]["speed"]
    assert recorded["vs_fp32"] == pytest.approx(r.speed["vs_fp32"])
    report = bench([src, tmp_path / "model.int8.onnx"], RuntimeOptions(threads=1),
                   quick_bench_options(batch_sizes=(1, 64), seconds=0.5))
    fp32, int8 = report.row("onnx fp32"), report.row("onnx int8")
    slower = int8.throughput_ci["64"][1] * 1.05 < fp32.throughput_ci["64"][0]
    assert slower == any(n.startswith("onnx int8 runs") and "does not pay" in n for n in report.notes)


def test_mcnemar_by_hand():
    right = np.array([1, 1, 1, 1, 0, 0, 1, 1], bool)
    ref = np.array([1, 0, 0, 0, 0, 1, 1, 1], bool)
    result = stats.mcnemar(right, ref)
    assert (result["only_this_right"], result["only_reference_right"], result["differs_on"]) == (3, 1, 4)
    assert result["p_value"] == pytest.approx(0.625)  # 2 * P(X <= 1), X ~ Bin(4, 1/2) = 2 * 5/16


def test_the_temperature_lowers_validation_nll_and_the_onnx_file_applies_it(lenet):
    from edgecv.serve.predictor import Predictor
    from edgecv.train.checkpoint import load_checkpoint, model_from_checkpoint

    run, _ = lenet
    model, spec, _ = model_from_checkpoint(load_checkpoint(run / "checkpoints" / "best.pt"))
    t = spec.temperature
    assert t != 1.0
    data = load_dataset("digits", 32)
    with torch.no_grad():
        val_logits = model(torch.from_numpy(data.val.x).float().div(255).sub(spec.mean[0]).div(spec.std[0])).numpy()
    assert nll(val_logits, data.val.y, t) < nll(val_logits, data.val.y, 1.0)
    assert fit_temperature(val_logits, data.val.y) == pytest.approx(t, rel=1e-2)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration"]["fitted_on"] == "val" and metrics["calibration"]["val_images"] == len(data.val.y)
    val = metrics["calibration"]["val"]
    assert val["after"]["nll"] < val["before"]["nll"]
    # the ONNX file divides by T itself: its logits are the torch model's over T, and it says so in its spec
    x = np.random.default_rng(0).standard_normal((5, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        raw = model(torch.from_numpy(x)).numpy()
    loaded = load_model(run / "model.onnx")
    assert loaded.spec.temperature == pytest.approx(t)
    np.testing.assert_allclose(loaded.run(x), raw / t, atol=1e-4)
    # the Predictor reads calibrated scores straight from the file
    image = data.test.x[0, 0]
    top = Predictor(run / "model.onnx").predict(image).topk
    x0 = ((image.astype(np.float32) / 255 - spec.mean[0]) / spec.std[0])[None, None]
    with torch.no_grad():
        expect = softmax(model(torch.from_numpy(x0)).numpy() / t)[0]
    np.testing.assert_allclose([score for _, score in top[:3]], np.sort(expect)[::-1][:3], atol=1e-4)
    # and the raw scores are recoverable from the calibrated ones
    np.testing.assert_allclose(uncalibrated(softmax(raw / t), t), softmax(raw), atol=1e-6)


def test_no_calibrate_keeps_raw_scores(tmp_path):
    proc = run_cli("train", "--model", "mlp", "--epochs", "1", "--no-calibrate", "--out", tmp_path / "r", check=True)
    assert "temperature" not in proc.stdout
    spec = json.loads((tmp_path / "r" / "spec.json").read_text())
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert spec["temperature"] == 1.0 and metrics["calibration"] == {"temperature": 1.0, "fitted_on": None}
