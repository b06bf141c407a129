"""ExecuTorch .pte files: export (XNNPACK, int8 through PT2E) with the spec inside and parity checked, the
runtime in eval and bench beside ONNX Runtime, and one-line refusals without the extra."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from conftest import assert_user_error, invoke

from edgecv.core.errors import ModelError
from edgecv.core.preprocess import to_model_input
from edgecv.data import load_dataset
from edgecv.measure.evaluate import evaluate
from edgecv.runtimes import load_model


class _NoExecuTorch:
    """An import hook that makes ``import executorch`` fail, as in an install without the extra."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "executorch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.fixture(scope="module")
def pte_run(full_run, tmp_path_factory):
    """The shared lenet5 run, copied, with model.pte and model.int8.pte exported by the CLI."""
    run = tmp_path_factory.mktemp("executorch") / "run"
    shutil.copytree(full_run, run, ignore=shutil.ignore_patterns("bench.json", "report*", "eval", "plots"))
    proc = invoke("export", run, "--format", "executorch", "--calib-size", "64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote" in proc.stdout and "model.int8.pte" in proc.stdout
    return run


def test_export_writes_pte_files_that_carry_the_spec_and_match_torch(pte_run):
    exports = json.loads((pte_run / "export.json").read_text())["exports"]
    fp32, int8 = exports["model.pte"], exports["model.int8.pte"]
    assert fp32["passed"] and max(r["max_abs_diff"] for r in fp32["parity"]) <= 1e-4
    assert "XNNPACK" in fp32["exporter"] and "int8 PT2E" in int8["exporter"] and int8["passed"]
    onnx_model = load_model(pte_run / "model.onnx")
    pte, pte8 = load_model(pte_run / "model.pte"), load_model(pte_run / "model.int8.pte")
    assert (pte.name, pte8.name, pte.format) == ("executorch fp32", "executorch int8", "executorch")
    assert pte.spec == onnx_model.spec and pte8.spec == onnx_model.spec
    x = to_model_input(load_dataset("digits", 32, color="L").test.x, pte.spec)
    reference = onnx_model.logits(x)
    np.testing.assert_allclose(pte.logits(x), reference, atol=1e-3)
    assert (pte8.logits(x).argmax(1) == reference.argmax(1)).mean() >= 0.95
    assert pte8.file.stat().st_size < 0.5 * pte.file.stat().st_size
    with pytest.raises(ModelError, match="at most 8 images"):  # the default bound
        pte.run(np.zeros((9, *pte.spec.input_shape), np.float32))


def test_eval_and_bench_run_pte_files_beside_onnx_runtime(pte_run, tmp_path):
    onnx_result, pte_result = evaluate(pte_run / "model.onnx"), evaluate(pte_run / "model.pte")
    assert pte_result.variant == "executorch fp32" and set(pte_result.metrics) == set(onnx_result.metrics)
    assert pte_result.metrics["accuracy"] == onnx_result.metrics["accuracy"]
    from edgecv.serve.predictor import Predictor  # the app-side API takes a .pte as it takes an ONNX file

    image = load_dataset("digits", 32, color="L").test.x[5][0]
    a, b = Predictor(pte_run / "model.onnx").predict(image), Predictor(pte_run / "model.pte").predict(image)
    assert a.label == b.label and abs(a.score - b.score) < 1e-4
    proc = invoke("bench", pte_run, "--no-isolate", "--iters", "3", "--rounds", "2", "--batch-sizes", "1,4",
                  "--json", tmp_path / "b.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {v["name"]: v for v in json.loads((tmp_path / "b.json").read_text())["variants"]}
    assert {"executorch fp32", "executorch int8", "onnx fp32", "onnx int8"} <= set(rows)
    assert rows["executorch fp32"]["metrics"]["agreement"] == 1.0
    assert rows["executorch int8"]["metrics"]["agreement"] >= 0.95 and rows["executorch int8"]["latency_ms"]["p50"] > 0


def test_executorch_is_refused_in_one_line_without_its_extra(pte_run, monkeypatch, tmp_path):
    for name in [n for n in sys.modules if n.partition(".")[0] == "executorch"]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    monkeypatch.setattr(sys, "meta_path", [_NoExecuTorch(), *sys.meta_path])
    for args in (["export", pte_run, "--format", "executorch"], ["eval", pte_run / "model.pte"]):
        assert_user_error(invoke(*args), "ExecuTorch is not installed", "pip install 'edgecv[executorch]'")
    proc = invoke("bench", pte_run / "model.onnx", pte_run / "model.pte", "--no-isolate", "--iters", "2",
                  "--rounds", "2", "--batch-sizes", "1")
    assert_user_error(proc, "ExecuTorch is not installed")
    monkeypatch.undo()
    assert_user_error(invoke("export", pte_run, "--format", "executorch", "--uint8-input"),
                      "--uint8-input and --batch apply to onnx and torchscript")
    assert_user_error(invoke("eval", pte_run / "model.pte", "--provider", "cuda"), "run on the cpu (XNNPACK)")


def test_a_batch_bound_is_planned_for_kept_to_and_chunked_around(pte_run, tmp_path):
    """--max-batch: the program takes batches of at most N (1: a static single-image program), refuses more in
    one line, and eval and bench work in chunks of N or leave larger batch sizes out."""
    from edgecv.exporters import load_source
    from edgecv.exporters.executorch import export_executorch
    from edgecv.measure.timing import Subject

    source = load_source(pte_run)
    x = to_model_input(load_dataset("digits", 32, color="L").test.x[:40], source.spec)
    reference = load_model(pte_run / "model.pte")
    assert reference.max_batch == 8  # the default bound
    for bound in (4, 1):
        path = tmp_path / f"b{bound}.pte"
        report = export_executorch(source, path, max_batch=bound)
        assert report.passed and report.batch == (f"dynamic (1-{bound})" if bound > 1 else "1")
        pte = load_model(path)
        assert pte.max_batch == bound
        with pytest.raises(ModelError, match=f"at most {bound} images"):
            pte.run(np.zeros((bound + 1, *pte.spec.input_shape), np.float32))
        np.testing.assert_allclose(pte.logits(x), reference.logits(x), atol=1e-4)  # in chunks of the bound
        subject = Subject(pte, np.zeros((8, 1, 32, 32), np.uint8))
        assert subject.runs(bound) and not subject.runs(bound + 1)
    proc = invoke("export", pte_run, "--format", "onnx", "--max-batch", "8", "--out", tmp_path / "m.onnx")
    assert_user_error(proc, "--max-batch applies to --format executorch")
    assert_user_error(invoke("export", pte_run, "--format", "executorch", "--max-batch", "0"),
                      "--max-batch must be at least 1")
