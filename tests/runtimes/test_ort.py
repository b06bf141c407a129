"""ONNX Runtime provider selection: a missing provider fails at once naming the available ones, provider
options are applied, and a silent fallback is refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import assert_user_error, invoke

from edgecv.runtimes import RuntimeOptions
from edgecv.runtimes import ort as ort_rt


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
