"""One metrics suite for every format: `edgecv eval` and `edgecv bench` on every variant of a digits run,
provider selection without silent fallback, foreign models, torch-free runs and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from conftest import RUN_VARIANTS, assert_user_error, cli_env, invoke, run_cli
from sklearn.metrics import accuracy_score, f1_score
from test_torch_free import BLOCK_TORCH

from edgecv.core.metrics import agreement, calibration, classification_metrics, softmax
from edgecv.data import load_dataset
from edgecv.runtimes import RuntimeOptions, load_model, runtime_for
from edgecv.runtimes import ort as ort_rt


def test_eval_gives_the_same_suite_for_every_variant(full_run, tmp_path):
    data = load_dataset("digits", 32)
    y = data.test.y
    for name, (fmt, precision) in RUN_VARIANTS.items():
        out = tmp_path / f"{Path(name).name}.json"
        proc = run_cli("eval", full_run / name, "--json", out, check=True)
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
    p50 = [v["latency_ms"]["p50"] for v in variants]
    assert p50 == sorted(p50)  # sorted by latency
    assert any(v["pareto"] for v in variants)
    assert report["schema"] == 2 and report["method"]["split"] == "test"
    assert "recommended:" in proc.stdout and "Pareto" in proc.stdout
    from edgecv.core.cpu import host_cpu

    if not host_cpu().native_fp16:  # fp16 is no speed recommendation on such a CPU, and bench says why
        assert report["recommended"] != "onnx fp16"
        assert any(n.startswith("fp16 only saves size here") for n in report["notes"]) and "fp16 only saves" in \
            proc.stderr
    assert next(v for v in variants if v["name"] == "onnx fp32")["metrics"]["agreement"] == 1.0


def test_eval_and_bench_run_without_torch(full_run, tmp_path):
    code = BLOCK_TORCH + "from edgecv.cli.app import app\n"
    for args in (["eval", str(full_run / "model.int8.onnx"), "--json", str(tmp_path / "e.json")],
                 ["bench", str(full_run), "--iters", "3", "--batch-sizes", "1,4", "--json", str(tmp_path / "b.json")]):
        script = code + f"app({args!r}, standalone_mode=False)\nassert 'torch' not in sys.modules, 'torch'\n"
        proc = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
    bench_report = json.loads((tmp_path / "b.json").read_text())
    assert bench_report["env"]["torch"] is None
    assert sorted(v["name"] for v in bench_report["variants"]) == \
        ["onnx fp16", "onnx fp32", "onnx int8", "onnx int8-dynamic"]  # the run's ONNX files
    assert "skipped best.pt, model.pt: torch is not installed" in bench_report["notes"][0]
    assert json.loads((tmp_path / "e.json").read_text())["precision"] == "int8"


def test_a_missing_provider_fails_at_once_naming_the_available_ones(full_run):
    proc = invoke("bench", full_run / "model.onnx", "--provider", "cuda")
    assert_user_error(proc, "no cuda provider", "available:", "cpu")
    assert_user_error(invoke("eval", full_run / "model.onnx", "--provider", "tpu"), "--provider must be one of")
    assert_user_error(invoke("eval", full_run / "checkpoints" / "best.pt", "--provider", "tensorrt"),
                      "torch runs on cpu or cuda")


def test_provider_chains_options_and_silent_fallback(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    chain = ort_rt.provider_chain(RuntimeOptions(provider="tensorrt", trt_fp16=True, trt_cache="/tmp/trt"))
    assert [c[0] if isinstance(c, tuple) else c for c in chain] == \
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert chain[0][1] == {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                           "trt_engine_cache_path": "/tmp/trt"}
    cuda = ort_rt.provider_chain(RuntimeOptions(provider="cuda", cudnn_algo_search="heuristic"))
    assert cuda == [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"]
    # a session that ended up on the CPU although CUDA was asked for
    fell_back = SimpleNamespace(get_providers=lambda: ["CPUExecutionProvider"])
    with pytest.raises(ort_rt.ProviderError, match="fell back to cpu.*--allow-fallback"):
        ort_rt.check_used(fell_back, RuntimeOptions(provider="cuda"), Path("m.onnx"))
    assert ort_rt.check_used(fell_back, RuntimeOptions(provider="cuda", allow_fallback=True), Path("m.onnx")) == "cpu"
    on_cuda = SimpleNamespace(get_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert ort_rt.check_used(on_cuda, RuntimeOptions(provider="cuda"), Path("m.onnx")) == "cuda"


def test_a_foreign_onnx_file_needs_the_missing_facts(full_run, tmp_path):
    m = onnx.load(str(full_run / "model.onnx"))
    del m.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(m, str(foreign))
    assert_user_error(invoke("eval", foreign), "no edgecv spec", "--labels", "--input-shape")
    assert_user_error(invoke("eval", foreign, "--labels", ",".join("0123456789")), "also needs --mean, --std")
    spec = load_model(full_run / "model.onnx").spec
    flags = ["--labels", ",".join(spec.labels), "--mean", str(spec.mean[0]), "--std", str(spec.std[0]),
             "--input-shape", "1,32,32", "--data", "digits", "--json", tmp_path / "f.json"]
    run_cli("eval", foreign, *flags, check=True)
    own = run_cli("eval", full_run / "model.onnx", "--json", tmp_path / "o.json", check=True)
    assert own.returncode == 0
    assert json.loads((tmp_path / "f.json").read_text())["metrics"]["accuracy"] == \
        json.loads((tmp_path / "o.json").read_text())["metrics"]["accuracy"]
    # facts that contradict the file are one line, not a runtime traceback
    wrong = [*flags[:6], "--input-shape", "1,28,28", "--data", "digits"]
    assert_user_error(invoke("eval", foreign, *wrong), "takes input [1, 32, 32]")


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


def test_metrics_suite_against_scikit_learn_and_by_hand():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300)
    logits = rng.normal(size=(300, 6)) + 3 * np.eye(6)[y] * rng.random((300, 1))
    probs = softmax(logits)
    m = classification_metrics(y, probs, [f"c{i}" for i in range(6)])
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    top5 = np.mean([y[i] in np.argsort(-probs[i])[:5] for i in range(len(y))])
    assert m["top5_accuracy"] == pytest.approx(top5)
    c0 = ((pred == 0) == (y == 0)).mean()
    assert m["per_class"][0]["one_vs_all_accuracy"] == pytest.approx(c0)
    # ECE by hand: two bins' worth of predictions with known confidence and accuracy
    conf = np.array([0.95] * 10 + [0.55] * 10)
    p2 = np.stack([conf, 1 - conf], axis=1)
    y2 = np.array([0] * 9 + [1] + [0] * 5 + [1] * 5)  # 90% right at 0.95, 50% right at 0.55
    cal = calibration(y2, p2)
    assert cal["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert cal["confidence_right"] == pytest.approx((9 * 0.95 + 5 * 0.55) / 14)
    assert m["top5_accuracy"] is not None and classification_metrics([0, 1], np.eye(2), ["a", "b"])[
        "top5_accuracy"] is None
    same = agreement(probs, probs)
    assert same == {"agreement": 1.0, "max_prob_diff": 0.0}


def test_bench_of_a_fixed_batch_model_reports_what_it_can_run(full_run, tmp_path):
    from edgecv.exporters import export_onnx, load_source

    path = tmp_path / "model.b4.onnx"
    export_onnx(load_source(full_run), path, batch=4)
    shutil.copy(full_run / "config.json", tmp_path / "config.json")
    proc = run_cli("bench", path, "--batch-sizes", "1,4", "--iters", "3", "--json", tmp_path / "b.json", check=True)
    variant = json.loads((tmp_path / "b.json").read_text())["variants"][0]
    assert variant["latency_ms"] == {} and list(variant["throughput"]) == ["4"]  # batch 1 cannot run on it
    assert variant["metrics"]["accuracy"] > 0.5 and "recommended" not in proc.stdout
