"""edgecv pipeline: every stage in order, stages whose outputs are current skipped, --force, and refusals."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from conftest import assert_user_error, invoke, run_cli

from edgecv.core.history import read_history

STAGE_LINE = re.compile(r"^\[(\d)/5\] (\w+)\s+(.*)$", re.M)


def _stages(stdout: str) -> dict[str, str]:
    return {m.group(2): m.group(3) for m in STAGE_LINE.finditer(stdout)}


def test_pipeline_runs_every_stage_and_ends_with_the_bench_table_and_report(piped):
    run, stdout = piped
    stages = _stages(stdout)
    assert list(stages) == ["train", "export", "quantize", "bench", "report"]
    assert all("skipped" not in s for s in stages.values())
    for name in ("checkpoints/best.pt", "model.onnx", "model.pt", "model.int8.onnx", "model.int8-dynamic.onnx",
                 "model.fp16.onnx", "quantize.json", "bench.json", "report.html", "report.md"):
        assert (run / name).is_file(), name
    bench = json.loads((run / "bench.json").read_text())
    assert len(bench["variants"]) == 6
    tail = stdout[stdout.index("[5/5]"):]
    for v in bench["variants"]:
        assert v["name"] in tail  # the bench table comes after the last stage line
    assert stdout.strip().splitlines()[-1] == f"report: {run / 'report.html'}"
    history = read_history(run / "history.csv")
    assert len(history) == 2 and all(0 < r["train_precision"] <= 1 and 0 < r["train_recall"] <= 1 for r in history)


@pytest.mark.slow  # make test-all
def test_a_rerun_skips_current_stages_and_a_stale_input_redoes_only_what_follows(piped, tmp_path):
    run, _ = piped
    args = ("pipeline", "--model", "lenet5", "--epochs", "2", "--out", run, "--seconds", "0.05")
    before = (run / "report.html").stat().st_mtime_ns
    again = _stages(run_cli(*args, check=True).stdout)
    assert set(again.values()) == {"current, skipped"}
    assert (run / "report.html").stat().st_mtime_ns == before
    os.utime(run / "model.onnx")  # the fp32 ONNX file is newer than what was made from it
    partly = _stages(run_cli(*args, check=True).stdout)
    assert [k for k, v in partly.items() if v == "current, skipped"] == ["train", "export"]
    assert (run / "report.html").stat().st_mtime_ns > before
    # a bench.json from before intervals and isolated memory (schema 1) is stale: bench and report run again
    old = json.loads((run / "bench.json").read_text())
    old.pop("schema")
    (run / "bench.json").write_text(json.dumps(old))
    rebenched = _stages(run_cli(*args, check=True).stdout)
    assert [k for k, v in rebenched.items() if v != "current, skipped"] == ["bench", "report"]
    assert json.loads((run / "bench.json").read_text())["schema"] == 2


@pytest.mark.slow  # make test-all
def test_force_redoes_every_stage(tmp_path):
    run = tmp_path / "run"
    args = ("pipeline", "--model", "mlp", "--epochs", "1", "--out", run, "--seconds", "0.02")
    run_cli(*args, check=True)
    first = (run / "checkpoints" / "best.pt").stat().st_mtime_ns
    forced = _stages(run_cli(*args, "--force", check=True).stdout)
    assert all("skipped" not in s for s in forced.values())
    assert (run / "checkpoints" / "best.pt").stat().st_mtime_ns > first
    # an mlp has no convolution: the report says so instead of drawing Grad-CAM
    assert "no convolution layers" in (run / "report.html").read_text()


def test_pipeline_and_report_refuse_bad_input_in_one_line(piped, tmp_path):
    run, _ = piped
    assert_user_error(run_cli("pipeline", "--model", "cnn", "--out", run), "holds a different run", "--force")
    assert_user_error(invoke("pipeline", "--model", "lenet5", "--epochs", "2", "--no-calibrate", "--out", run),
                      "calibrate", "--force")
    (tmp_path / "file").write_text("x")
    assert_user_error(invoke("pipeline", "--out", tmp_path / "file"), "is a file")
    assert_user_error(invoke("pipeline", "--epochs", "0", "--out", tmp_path / "r"), "--epochs")
    assert_user_error(invoke("pipeline", "--seconds", "0", "--out", tmp_path / "r"), "--seconds")
    assert_user_error(invoke("pipeline", "--model", "nope", "--out", tmp_path / "r"), "nope")
    half = tmp_path / "half"
    shutil.copytree(run, half)
    (half / "bench.json").unlink()
    assert_user_error(invoke("report", half), "bench.json", "edgecv bench")
    assert_user_error(invoke("report", tmp_path / "missing"), "no such run directory")
