"""edgecv bench: every variant measured on the same inputs with the documented schema, isolated memory and
cold start through the CLI, fixed-batch models, and bad timing options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
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
    for args, fragment in ((("--rounds", "1"), "--rounds"), (("--min-speedup", "0.5"), "--min-speedup"),
                           (("--max-latency-ms", "0"), "--max-latency-ms must be positive")):
        proc = invoke("bench", run / "model.onnx", *args)
        assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr


def test_the_sweep_times_every_variant_at_every_thread_setting_and_a_budget_picks_from_it(full_run):
    """--threads 2,1 --max-latency-ms: the table at 2 threads, every variant x batch size again at 1 thread in
    sessions of its own, and, of all those settings, the most images/s whose p99 batch call is within the
    budget; with none within it, the one that comes closest."""
    from edgecv.measure.bench import bench
    from edgecv.measure.sweep import within_budget
    from edgecv.measure.types import BenchOptions
    from edgecv.measure.verdicts import fp16_pays
    from edgecv.runtimes import RuntimeOptions

    files = [full_run / "model.onnx", full_run / "model.int8.onnx"]
    report = bench(files, RuntimeOptions(threads=2), BenchOptions(
        batch_sizes=(1, 8), seconds=0.2, rounds=4, isolate=False, end_to_end=False, max_latency_ms=1e4,
        sweep_threads=(1,)))
    points = report.sweep
    assert sorted((p["variant"], p["threads"], p["batch"]) for p in points) == sorted(
        (v.name, t, b) for v in report.variants for t in (1, 2) for b in (1, 8))
    at_two = {(p["variant"], p["batch"]): p for p in points if p["threads"] == 2}
    for v in report.variants:  # the table's own timing is the 2-thread setting
        assert at_two[(v.name, 8)]["images_per_s"] == v.throughput["8"]
        assert at_two[(v.name, 8)]["p99_ms"] == v.batch_p99_ms["8"] >= at_two[(v.name, 8)]["p50_ms"] > 0
    best = max(points, key=lambda p: p["images_per_s"])
    assert report.within_budget.startswith(f"within p99 10000 ms per call: {best['variant']} ") and \
        f"at batch {best['batch']}, {best['threads']} thread" in report.within_budget and "8 of 8" in \
        report.within_budget
    closest = min(points, key=lambda p: p["p99_ms"])
    tight = within_budget(points, report.variants, report.row(report.reference), closest["p99_ms"] / 2, 1.0,
                          fp16_pays)
    assert tight.startswith("no variant within 1 pp of the reference meets p99") and \
        f"closest: {closest['variant']} " in tight and f"at batch {closest['batch']}," in tight


def test_the_sweep_through_the_cli_adds_openvinos_throughput_hint_and_prints_the_budget(lenet, tmp_path):
    """In a process of its own, as OpenVINO's other tests: ONNX Runtime and OpenVINO rows at 1 and 2 threads,
    and OpenVINO's THROUGHPUT hint as a setting of its own, a batch in flight per stream."""
    run, _ = lenet
    out = tmp_path / "bench.json"
    proc = run_cli("bench", run / "model.onnx", "--runtimes", "onnxruntime,openvino", "--threads", "1,2,1",
                   "--batch-sizes", "1,4", "--seconds", "0.1", "--rounds", "2", "--no-isolate", "--no-end-to-end",
                   "--max-latency-ms", "1000", "--json", out, check=True)
    data = json.loads(out.read_text())
    names = sorted(v["name"] for v in data["variants"])
    ort_row, ov_row = names[0], names[1]
    assert (ort_row, ov_row) == ("onnx fp32", "openvino fp32")
    settings = sorted((p["variant"], p["setting"], p["batch"]) for p in data["sweep"])
    streams = next(p["requests"] for p in data["sweep"] if p["hint"] == "THROUGHPUT")
    through = f"OpenVINO THROUGHPUT, {streams} stream" + ("s" if streams != 1 else "")
    assert settings == sorted([(n, f"{t} thread{'s' if t > 1 else ''}", b) for n in names for t in (1, 2)
                               for b in (1, 4)] + [(ov_row, through, b) for b in (1, 4)])
    for p in data["sweep"]:  # images/s counts every stream's batch of a call
        assert p["images_per_s"] == pytest.approx(p["batch"] * p["requests"] / p["p50_ms"] * 1e3)
    assert data["env"]["threads"] == 1 and data["within_budget"].startswith("within p99 1000 ms per call: ")
    assert "deployment sweep" in proc.stdout and "latency budget:" in proc.stdout and through in proc.stdout
    bad = invoke("bench", run / "model.onnx", "--threads", "2,x")
    assert bad.returncode == 2 and "--threads takes comma-separated whole numbers" in bad.stderr


def test_the_sweep_figure_draws_a_line_per_variant_and_thread_setting():
    from edgecv.report import figures

    points = [{"variant": v, "threads": t, "batch": b, "images_per_s": 100.0 * b / t, "p99_ms": 1.0 + b * t,
               "p50_ms": 1.0, "setting": f"{t} threads"} for v in ("onnx fp32", "onnx int8") for t in (1, 2)
              for b in (1, 8, 32)]
    fig = figures.sweep(points)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 and all(len(line.get_xdata()) == 3 for line in lines)
    assert figures.png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_slow_call_is_warmed_up_three_times_and_a_fast_one_as_often_as_asked():
    import time as clock

    from edgecv.measure.timing import WARM_AT_LEAST, warm_up

    slow, fast = [], []
    warm_up(lambda: (slow.append(1), clock.sleep(0.02)), 10, 0.01)  # past the slice after its first call
    warm_up(lambda: fast.append(1), 10, 5.0)
    assert len(slow) == WARM_AT_LEAST == 3 and len(fast) == 10
