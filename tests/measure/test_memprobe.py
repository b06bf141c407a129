"""Memory measured in isolated processes: it grows with the model, a probe forked from the server measures what a
new interpreter does, a probe past its time is stopped, and the probe names a missing provider."""

from __future__ import annotations

import pytest
import torch
from conftest import export_model
from torch import nn

from edgecv.measure.memprobe import measure_isolated

MB = 2**20


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


def test_the_memory_probe_names_a_missing_provider_and_measures_no_device_memory_on_the_cpu(lenet):
    run, _ = lenet
    with pytest.raises(RuntimeError, match="no cuda provider"):
        measure_isolated(run / "model.onnx", {"provider": "cuda"}, (1, 32, 32), "float32", 1, 8)
    cpu = measure_isolated(run / "model.onnx", {"provider": "cpu"}, (1, 32, 32), "float32", 1, 8)
    assert cpu["provider"] == "cpu" and cpu["device_bytes"] is None and cpu["big_batch"] == 8


def test_a_probe_forked_from_the_server_measures_what_a_new_interpreter_does(lenet, tmp_path):
    run, source = lenet
    torch.manual_seed(0)
    big = export_model(source, nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 4096), nn.ReLU(), nn.Linear(4096, 10)),
                       tmp_path / "big.onnx")  # 4.2M parameters: 17 MB of weights
    options = {"provider": "cpu", "threads": 1}
    forked = [measure_isolated(big, options, (1, 32, 32), "float32", 1, 64, fork=True) for _ in range(2)]
    fresh = measure_isolated(big, options, (1, 32, 32), "float32", 1, 64, fork=False)
    assert forked[0]["pid"] != forked[1]["pid"] != fresh["pid"]  # a process of its own every time
    for f in forked:  # the libraries the server had mapped are in the child's baseline, as in a new interpreter's
        assert abs(f["model_bytes"] - fresh["model_bytes"]) < 2 * MB, (f, fresh)
        assert abs(f["big_batch_bytes"] - fresh["big_batch_bytes"]) < 3 * MB, (f, fresh)
        assert f["baseline_bytes"] > 20 * MB and f["load_ms"] > 0 and f["first_run_ms"] > 0


def test_a_probe_past_its_time_is_stopped_and_the_next_one_runs(lenet):
    run, _ = lenet
    with pytest.raises(RuntimeError, match="took over"):
        measure_isolated(run / "model.onnx", {"provider": "cpu"}, (1, 32, 32), "float32", 1, 8, timeout=0.001)
    after = measure_isolated(run / "model.onnx", {"provider": "cpu"}, (1, 32, 32), "float32", 1, 8)
    assert after["model_bytes"] > 0 and after["big_batch"] == 8
