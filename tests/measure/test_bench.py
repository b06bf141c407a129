"""edgecv bench: every variant measured on the same inputs with the documented schema, isolated memory and
cold start through the CLI, fixed-batch models, and bad timing options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import RUN_VARIANTS, invoke, run_cli


def test_bench_measures_every_variant_and_writes_the_documented_schema(full_run, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("bench", full_run, "--batch-sizes", "1,8", "--iters", "5", "--warmup", "2", "--json", out,
                   check=True)
    report = json.loads(out.read_text())
    assert set(report) >= {"env", "variants"}
    assert {"cpu", "cores", "threads", "os", "python", "onnxruntime", "torch"} <= set(report["env"])
    variants = report["variants"]
    assert sorted(v["file"].split("/")[-1] for v in variants) == sorted(Path(n).name for n in RUN_VARIANTS)
    for v in variants:
        assert set(v) >= {"name", "format", "precision", "provider", "file", "size_bytes", "latency_ms",
                          "latency_ci_ms", "round_p50_ms", "throughput", "throughput_ci", "memory", "cold_start_ms",
                          "metrics", "pareto"}
        assert v["memory"]["model_bytes"] > 0 and v["cold_start_ms"]["load"] > 0
        assert v["provider"] == "cpu" and v["size_bytes"] == Path(v["file"]).stat().st_size
        lat = v["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and lat["mean"] > 0
        assert set(v["throughput"]) == {"1", "8"} and min(v["throughput"].values()) > 0
        assert {"accuracy", "accuracy_ci", "macro_f1", "ece", "loss", "agreement", "paired"} <= set(v["metrics"])
        assert 0.9 <= v["metrics"]["agreement"] <= 1.0
        e2e = v["end_to_end"]  # the Predictor on a photo's JPEG bytes, every variant, stage by stage
        assert list(e2e["stages_ms"]) == ["decode", "preprocess", "inference", "postprocess"]
        assert min(e2e["stages_ms"].values()) > 0 and e2e["p50_ci_ms"][0] <= e2e["p50_ms"] <= e2e["p50_ci_ms"][1]
        assert e2e["photo"].startswith("a 640x480 JPEG") and e2e["calls"] >= 30
    p50 = [v["latency_ms"]["p50"] for v in variants]
    assert p50 == sorted(p50)  # sorted by latency
    assert any(v["pareto"] for v in variants)
    assert report["schema"] == 2 and report["method"]["split"] == "test"
    assert "recommended:" in proc.stdout and "Pareto" in proc.stdout
    assert report["profile_command"] == f"edgecv profile {full_run / 'model.onnx'} {full_run / 'model.int8.onnx'}"
    assert f"layer by layer: {report['profile_command']}" in " ".join(proc.stdout.split())
    assert "e2e split for" in proc.stdout and "through edgecv.Predictor" in report["method"]["end_to_end"]
    from edgecv.core.cpu import host_cpu

    if not host_cpu().native_fp16:  # fp16 is no speed recommendation on such a CPU, and bench says why
        assert report["recommended"] != "onnx fp16"
        assert any(n.startswith("fp16 only saves size here") for n in report["notes"]) and "fp16 only saves" in \
            proc.stderr
    assert next(v for v in variants if v["name"] == "onnx fp32")["metrics"]["agreement"] == 1.0


def test_bench_of_a_fixed_batch_model_reports_what_it_can_run(full_run, tmp_path):
    from edgecv.exporters import export_onnx, load_source

    path = tmp_path / "model.b4.onnx"
    export_onnx(load_source(full_run), path, batch=4)
    shutil.copy(full_run / "config.json", tmp_path / "config.json")
    proc = invoke("bench", path, "--batch-sizes", "1,4", "--iters", "3", "--no-end-to-end", "--json",
                  tmp_path / "b.json", check=True)
    data = json.loads((tmp_path / "b.json").read_text())
    variant = data["variants"][0]
    assert variant["latency_ms"] == {} and list(variant["throughput"]) == ["4"]  # batch 1 cannot run on it
    assert variant["end_to_end"] is None and data["method"]["end_to_end"] is None  # --no-end-to-end
    assert variant["metrics"]["accuracy"] > 0.5 and "recommended" not in proc.stdout


MB = 2**20


def test_bench_reports_isolated_memory_cold_start_and_intervals_through_the_cli(lenet, tmp_path):
    run, _ = lenet
    out = tmp_path / "bench.json"
    proc = run_cli("bench", run / "model.onnx", "--batch-sizes", "1,8", "--seconds", "0.2", "--rounds", "4",
                   "--json", out, check=True)
    data = json.loads(out.read_text())
    assert data["schema"] == 2 and data["method"]["rounds"] == 4 and data["method"]["images"] == 360
    assert data["variants"][0]["end_to_end"]["stages_ms"]["decode"] > 0
    v = data["variants"][0]
    assert 0 < v["memory"]["model_bytes"] < 40 * MB and v["memory"]["baseline_bytes"] > v["memory"]["model_bytes"]
    assert v["cold_start_ms"]["load"] > 0 and v["cold_start_ms"]["first_run"] > 0
    assert len(v["round_p50_ms"]) == 4 and set(v["throughput_ci"]) == {"1", "8"}
    lo, hi = v["metrics"]["accuracy_ci"]
    assert lo < v["metrics"]["accuracy"] <= hi <= 1
    assert "95% CI" in proc.stdout and "interleaved rounds" in proc.stdout and "fresh process" in proc.stdout


def test_bad_timing_options_are_one_line_errors(lenet):
    run, _ = lenet
    for args, fragment in ((("--rounds", "1"), "--rounds"), (("--min-speedup", "0.5"), "--min-speedup")):
        proc = invoke("bench", run / "model.onnx", *args)
        assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr
