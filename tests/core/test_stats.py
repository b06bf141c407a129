"""McNemar's exact test against scipy's binomial test and by hand, on real bench rows."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import export_model, quick_bench_options
from scipy.stats import binomtest

from edgecv.core import stats
from edgecv.data import load_dataset
from edgecv.measure.bench import bench
from edgecv.measure.evaluate import evaluate
from edgecv.runtimes import RuntimeOptions


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


def test_mcnemar_by_hand():
    right = np.array([1, 1, 1, 1, 0, 0, 1, 1], bool)
    ref = np.array([1, 0, 0, 0, 0, 1, 1, 1], bool)
    result = stats.mcnemar(right, ref)
    assert (result["only_this_right"], result["only_reference_right"], result["differs_on"]) == (3, 1, 4)
    assert result["p_value"] == pytest.approx(0.625)  # 2 * P(X <= 1), X ~ Bin(4, 1/2) = 2 * 5/16
