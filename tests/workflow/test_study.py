"""Studies through the real CLI on digits: several models, one run folder each, one table, one Pareto front,
constraint answers, a report that renders offline, per-stage caching across models, a failing model that does
not stop the others, an interrupted study that resumes, and bad names refused before any training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import STUDY_ARGS, assert_user_error, cli_env, invoke, run_cli

from edgecv.measure.bench import BenchReport
from edgecv.measure.verdicts import faster


def _rows(folder):
    return json.loads((folder / "study-table.json").read_text())["rows"]


def test_a_study_runs_every_model_in_its_own_folder_and_compares_them_in_one_table(study):
    folder, stdout = study
    record = json.loads((folder / "study.json").read_text())
    assert [o["model"] for o in record["outcomes"]] == ["mlp", "cnn-tiny"] and all(o["ok"] for o in record["outcomes"])
    for model in ("mlp", "cnn-tiny"):
        for name in ("config.json", "checkpoints/best.pt", "model.onnx", "model.int8.onnx", "bench.json",
                     "report.html"):
            assert (folder / model / name).is_file(), (model, name)
    rows = _rows(folder)
    assert len(rows) == 12 and {r["model"] for r in rows} == {"mlp", "cnn-tiny"}
    for model in ("mlp", "cnn-tiny"):  # the study's rows are each model's own bench rows
        bench = json.loads((folder / model / "bench.json").read_text())
        mine = sorted((r["name"], r["metrics"]["accuracy"], r["size_bytes"]) for r in rows if r["model"] == model)
        assert mine == sorted((f"{model} {v['name']}", v["metrics"]["accuracy"], v["size_bytes"])
                              for v in bench["variants"])
        assert f"{model}" in stdout and "study: 2 models, 12 rows" in stdout
    assert stdout.strip().splitlines()[-1] == f"report: {folder / 'report.html'}"


def test_the_front_spans_every_model_and_follows_the_noise_rule(study):
    folder, stdout = study
    rows = _rows(folder)
    variants = {r["name"]: BenchReport.from_dict({"env": {}, "variants": [r]}).variants[0] for r in rows}
    front = {r["name"] for r in rows if r["front"]}
    labels = {f"{r['model']}: {r['name'].removeprefix(r['model'] + ' ')}" for r in rows if r["front"]}
    assert front and set(json.loads((folder / "study.json").read_text())["front"]) == labels
    for name, v in variants.items():  # off the front <=> something beats it (as accurate and faster beyond noise,
        beaten = any(  # or more accurate and not slower beyond noise)
            o is not v and ((o.metrics["accuracy"] >= v.metrics["accuracy"] and faster(o, v))
                            or (o.metrics["accuracy"] > v.metrics["accuracy"] and not faster(v, o)))
            for o in variants.values())
        assert (name in front) == (not beaten), name
    assert "front:" in stdout


def test_constraints_pick_the_best_row_or_name_the_closest(study):
    folder, stdout = study
    rows = _rows(folder)
    meeting = [r for r in rows if r["latency_ci_ms"]["p50"][1] <= 50 and 100 * r["metrics"]["accuracy"] >= 5]
    best_acc = max(r["metrics"]["accuracy"] for r in meeting)
    answer = json.loads((folder / "study.json").read_text())["answer"]
    assert answer["met"] and answer["constraints"] == "p50 <= 50 ms, accuracy >= 5%"
    chosen = next(r for r in rows if f"{r['model']}: {r['name'].removeprefix(r['model'] + ' ')}" == answer["row"])
    assert chosen["metrics"]["accuracy"] == best_acc and chosen["meets"]
    assert f"{len(meeting)} of 12 rows meet" in answer["text"] and "answer: best under" in stdout
    # a second run with impossible constraints redoes no stage and says which row comes closest
    proc = invoke("pipeline", "--model", "mlp,cnn-tiny", *STUDY_ARGS, "--out", folder, "--max-size-mb", "0.001",
                  "--min-accuracy", "100", check=True)  # in this process: the study itself ran in one of its own
    assert proc.stdout.count("current, skipped") == 10
    answer = json.loads((folder / "study.json").read_text())["answer"]
    assert not answer["met"] and "size" in answer["misses"] and "no row meets" in proc.stdout
    smallest = min(rows, key=lambda r: r["size_bytes"])
    assert answer["row"] == f"{smallest['model']}: {smallest['name'].removeprefix(smallest['model'] + ' ')}"


@pytest.mark.slow  # make test-all
def test_adding_a_model_trains_only_that_one_and_a_failing_model_does_not_stop_the_study(study):
    folder, _ = study
    proc = run_cli("pipeline", "--model", "mlp,cnn-tiny,lenet5,vgg16-transfer", *STUDY_ARGS, "--no-isolate", "--out",
                   folder, check=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("mlp ", "cnn-tiny ", "lenet5 "))]
    assert all("current, skipped" in line for line in lines if not line.startswith("lenet5"))
    assert sum("current, skipped" in line for line in lines if line.startswith("lenet5")) == 0
    record = json.loads((folder / "study.json").read_text())
    failed = next(o for o in record["outcomes"] if o["model"] == "vgg16-transfer")
    assert not failed["ok"] and "--weights" in failed["error"]
    assert "failed" in proc.stdout and "vgg16-transfer" in proc.stderr
    assert {r["model"] for r in _rows(folder)} == {"mlp", "cnn-tiny", "lenet5"}


@pytest.mark.slow  # make test-all
def test_an_interrupted_study_resumes_where_it_stopped(tmp_path):
    folder = tmp_path / "s"
    args = [sys.executable, "-m", "edgecv", "pipeline", "--model", "cnn-tiny,mlp", *STUDY_ARGS, "--no-isolate", "--out",
            str(folder)]
    proc = subprocess.Popen(args, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (folder / "cnn-tiny" / "report.html").is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (folder / "study.json").is_file()
    again = run_cli("pipeline", "--model", "cnn-tiny,mlp", *STUDY_ARGS, "--no-isolate", "--out", folder, check=True)
    assert sum("current, skipped" in line for line in again.stdout.splitlines() if line.startswith("cnn-tiny")) == 5
    assert all(o["ok"] for o in json.loads((folder / "study.json").read_text())["outcomes"])


@pytest.mark.slow  # make test-all
def test_ctrl_c_in_a_study_says_how_to_continue(tmp_path):
    folder = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "edgecv", "pipeline", "--model", "cnn-tiny,mlp", *STUDY_ARGS,
                             "--no-isolate", "--out", str(folder)], env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (folder / "cnn-tiny" / "config.json").is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert "run the same edgecv pipeline command again to continue" in stderr


def test_unknown_or_repeated_names_are_refused_before_any_training(tmp_path):
    out = tmp_path / "s"
    assert_user_error(run_cli("pipeline", "--model", "mlp,nope", "--out", out), "'nope'", "models:", "studies:")
    assert_user_error(invoke("pipeline", "--model", "mlp,mlp", "--out", out), "more than once")
    assert_user_error(invoke("pipeline", "--model", "mlp,lenet5", "--min-accuracy", "120", "--out", out),
                      "--min-accuracy")
    assert not out.exists()


def test_a_named_study_expands_to_its_models():
    from edgecv.cli.pipeline import parse_models
    from edgecv.workflow.studies import STUDIES

    assert parse_models("regularisation") == ("regularisation", ["cnn", "cnn-dropout", "cnn-bn"])
    assert parse_models(" lenet5 , mlp ") == (None, ["lenet5", "mlp"])
    assert set(STUDIES.get("quick").models) == {"mlp", "lenet5", "cnn-bn"}


def test_a_named_study_trains_each_model_for_its_own_epochs_and_epochs_overrides_them(tmp_path):
    from edgecv.core.errors import EdgecvError
    from edgecv.workflow.study import StudyOptions, run_study

    quick = invoke("models", check=True).stdout
    assert "quick = mlp (15 epochs), lenet5 (15 epochs), cnn-bn (8 epochs)" in " ".join(quick.split())
    asked = {"models": ["mlp"], "model_epochs": {"mlp": 2}, "out": tmp_path / "s", "seconds": 0.05, "isolate": False}
    first = run_study(StudyOptions(**asked))
    assert json.loads((first.outcomes[0].run_dir / "config.json").read_text())["epochs"] == 2
    again = run_study(StudyOptions(**asked))  # the study's own epochs again: nothing is redone
    assert all(not s.ran for s in again.outcomes[0].stages)
    with pytest.raises(EdgecvError, match=r"epochs 2 \(asked: 1\)"):  # --epochs is every model's
        run_study(StudyOptions(**asked, epochs=1))
