"""The trainer: run directory contents, accuracy, exact resume after SIGKILL, divergence, bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import Exploit, assert_user_error, cli_env, invoke, make_image_folder, run_cli
from torchvision.models.vgg import cfgs, make_layers

from edgecv import ModelSpec
from edgecv.core.errors import TrainingDiverged
from edgecv.core.history import COLUMNS, read_history
from edgecv.train import TrainConfig, resume, train
from edgecv.train.checkpoint import load_checkpoint, save_checkpoint


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mlp"
    train(TrainConfig(model="mlp", epochs=3, out=str(out)))
    return out


def test_run_directory_has_everything_a_later_step_needs(mlp_run):
    names = {p.name for p in mlp_run.iterdir()}
    assert {"config.json", "spec.json", "history.csv", "metrics.json", "checkpoints"} <= names
    with open(mlp_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and tuple(rows[0]) == COLUMNS
    assert all(float(r["images_per_s"]) > 0 and 0 <= float(r["val_acc"]) <= 1 for r in rows)
    ckpt = torch.load(mlp_run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "config", "spec", "epoch"} <= set(ckpt)
    assert ckpt["epoch"] == 3 and ckpt["config"]["model"] == "mlp"
    best = load_checkpoint(mlp_run / "checkpoints" / "best.pt")
    spec = ModelSpec.from_dict(best["spec"])
    assert spec.arch == "mlp" and spec.input_shape == (1, 28, 28) and spec.labels == [str(i) for i in range(10)]
    assert spec.metrics["test_accuracy"] > 0.5
    assert ModelSpec.from_json((mlp_run / "spec.json").read_text()) == spec
    metrics = json.loads((mlp_run / "metrics.json").read_text())
    assert {"accuracy", "loss", "macro_f1", "per_class", "confusion_matrix", "ece", "top5_accuracy"} <= set(metrics)
    assert len(metrics["per_class"]) == 10 and {"label", "precision", "recall", "f1", "support",
                                                "one_vs_all_accuracy"} == set(metrics["per_class"][0])
    assert sum(map(sum, metrics["confusion_matrix"])) == 360
    assert metrics["accuracy"] == pytest.approx(spec.metrics["test_accuracy"])


def test_lenet5_beats_98_5_percent_on_digits_with_its_defaults(tmp_path):
    proc = run_cli("train", "--data", "digits", "--model", "lenet5", "--out", tmp_path / "lenet5", check=True)
    metrics = json.loads((tmp_path / "lenet5" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.985, metrics["accuracy"]
    assert "test accuracy" in proc.stdout and "epoch 30/30" in proc.stdout


def test_three_channel_folder_data_trains_end_to_end(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=12)
    result = train(TrainConfig(data=f"folder:{root}", model="resnet", epochs=2, batch_size=8,
                               out=str(tmp_path / "run")))
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["color"] == "RGB" and spec["input_shape"] == [3, 32, 32] and spec["labels"] == ["cat", "dog", "fox"]
    assert len(result.history) == 2 and result.metrics["num_samples"] == 8


def _train_args(out: Path) -> list[str]:
    return ["train", "--model", "cnn", "--epochs", "4", "--seed", "3", "--out", str(out)]


@pytest.mark.slow  # make test-all
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    run_cli(*_train_args(tmp_path / "ref"), check=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edgecv", *_train_args(run)], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if history.is_file() and len(history.read_text().splitlines()) >= 2:  # epoch 1 checkpointed
            break
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(history.read_text().splitlines()) - 1
    assert 1 <= done < 4
    before = _digest(run)

    resumed = run_cli("train", "--resume", run, check=True)
    assert "Resuming" in resumed.stdout
    assert _digest(run)["config.json"] == before["config.json"]
    ref, got = read_history(tmp_path / "ref" / "history.csv"), read_history(history)
    assert [r["epoch"] for r in got] == [1, 2, 3, 4]
    for a, b in zip(ref, got, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (key, a["epoch"])
    ref_ckpt = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    got_ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    for key, tensor in ref_ckpt["model"].items():
        assert torch.allclose(tensor, got_ckpt["model"][key], atol=1e-6), key
    ref_metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == pytest.approx(ref_metrics["accuracy"])


def test_resuming_a_finished_run_changes_nothing(mlp_run):
    before = _digest(mlp_run)
    result = resume(mlp_run)
    assert result.epochs_run == 3 and _digest(mlp_run) == before


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "nan"
    train(TrainConfig(model="mlp", epochs=2, optimizer="sgd", schedule="constant", lr=0.01, out=str(run)))
    last = run / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)
    ckpt["config"]["epochs"] = 4
    ckpt["finished"] = False
    for group in ckpt["optimizer"]["param_groups"]:
        group["lr"] = 1e30  # the next step explodes
    save_checkpoint(last, ckpt)
    good = last.read_bytes()
    with pytest.raises(TrainingDiverged, match="training diverged"):
        resume(run)
    assert last.read_bytes() == good
    assert len(read_history(run / "history.csv")) == 2
    assert_user_error(invoke("train", "--resume", run), "training diverged", "lower --lr", code=1)


def test_early_stopping_on_validation_loss(tmp_path):
    result = train(TrainConfig(model="mlp", epochs=40, lr=0.05, optimizer="adam", schedule="constant", patience=2,
                               out=str(tmp_path / "es")))
    assert result.stopped_early and result.epochs_run < 40
    losses = [r["val_loss"] for r in result.history]
    best = min(losses[:-2])
    assert all(v >= best for v in losses[-2:])
    assert result.best_epoch == losses.index(min(losses)) + 1
    assert load_checkpoint(tmp_path / "es" / "checkpoints" / "best.pt")["epoch"] == result.best_epoch


def test_lr_sweep_trains_one_sub_run_per_value(tmp_path):
    proc = invoke("train", "--model", "mlp", "--epochs", "1", "--lr", "0.01,0.001", "--out", tmp_path / "sw",
                  check=True)
    summary = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert sorted(r["lr"] for r in summary["runs"]) == [0.001, 0.01]
    assert (tmp_path / "sw" / "lr-0.01" / "metrics.json").is_file()
    assert (tmp_path / "sw" / "lr-0.001" / "metrics.json").is_file()
    assert "learning-rate sweep" in proc.stdout
    again = invoke("train", "--model", "mlp", "--epochs", "1", "--lr", "0.01,0.001", "--out", tmp_path / "sw",
                   check=True)
    assert "nothing to do" in again.stdout  # finished sub-runs are reused, not retrained
    other = invoke("train", "--model", "mlp", "--epochs", "2", "--lr", "0.01,0.001", "--out", tmp_path / "sw")
    assert_user_error(other, "was trained with other settings")


def test_vgg16_transfer_trains_only_the_new_head(tmp_path):
    torch.manual_seed(0)  # the features part of a torchvision VGG16 state dict (test_models loads a whole one)
    features = make_layers(cfgs["D"]).state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, tmp_path / "vgg16.pth")
    root = make_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=10)
    invoke("train", "--data", f"folder:{root}", "--model", "vgg16-transfer", "--weights", tmp_path / "vgg16.pth",
           "--epochs", "1", "--batch-size", "4", "--out", tmp_path / "run", check=True)
    state = torch.load(tmp_path / "vgg16.pth", weights_only=True)
    trained = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert torch.equal(trained["features.0.weight"], state["features.0.weight"])
    assert torch.equal(trained["features.28.weight"], state["features.28.weight"])
    # resume rebuilds the model from the checkpoint, not from the weights file
    (tmp_path / "vgg16.pth").unlink()
    invoke("train", "--resume", tmp_path / "run", check=True)


def test_bad_checkpoints_are_refused_before_anything_runs(mlp_run, tmp_path):
    victim = tmp_path / "victim"
    train(TrainConfig(model="mlp", epochs=1, out=str(victim)))
    last = victim / "checkpoints" / "last.pt"
    original = last.read_bytes()
    marker = tmp_path / "pwned"
    cases = {
        "corrupt or truncated": original[: len(original) // 2],
        "objects other than tensors": pickle.dumps(Exploit(marker)),
    }
    for fragment, payload in cases.items():
        last.write_bytes(payload)
        before = _digest(victim)
        assert_user_error(invoke("train", "--resume", victim), fragment)
        assert _digest(victim) == before
    assert not marker.exists()
    torch.save({"weights": torch.zeros(3)}, last)
    assert_user_error(invoke("train", "--resume", victim), "is not an edgecv checkpoint")
    last.write_bytes(original)
    ckpt = load_checkpoint(last)
    ckpt["config"]["model"] = "lenet5"  # weights of an mlp, claimed to be a lenet5
    save_checkpoint(last, ckpt)
    before = _digest(victim)
    assert_user_error(invoke("train", "--resume", victim), "does not fit model 'lenet5'")
    assert _digest(victim) == before
    assert_user_error(invoke("train", "--resume", tmp_path / "nowhere"), "no such run directory")


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, mlp_run):
    assert_user_error(invoke("train", "--model", "alexnet"), "unknown model 'alexnet'", "lenet5")
    assert_user_error(invoke("train", "--data", "imagenet"), "unknown data set 'imagenet'", "digits")
    assert_user_error(invoke("train", "--data", "mnist", "--data-root", tmp_path), "--download")
    assert_user_error(invoke("train", "--data", f"folder:{tmp_path / 'none'}"), "does not exist")
    assert_user_error(invoke("train", "--optimizer", "lion"), "--optimizer must be one of")
    assert_user_error(invoke("train", "--lr", "fast"), "--lr takes a number")
    assert_user_error(invoke("train", "--out", mlp_run), "already exists", "--resume")
    assert_user_error(invoke("train", "--resume", mlp_run, "--epochs", "9"), "drop --epochs")
    if not torch.cuda.is_available():
        assert_user_error(invoke("train", "--device", "cuda"), "no CUDA GPU is visible")
    assert_user_error(invoke("train", "--model", "lenet5", "--img-size", "8"), "cannot take 1x8x8")


def test_overwrite_replaces_only_edgecv_run_directories(tmp_path):
    run = tmp_path / "run"
    invoke("train", "--model", "mlp", "--epochs", "1", "--out", run, check=True)
    invoke("train", "--model", "mlp", "--epochs", "2", "--out", run, "--overwrite", check=True)
    assert len(read_history(run / "history.csv")) == 2
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    assert_user_error(invoke("train", "--out", precious, "--overwrite"), "not an edgecv run directory")
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_cli_basics():
    version = run_cli("--version", check=True)
    assert version.stdout.strip().startswith("edgecv ")
    helptext = run_cli("--help", check=True).stdout
    for command in ("train", "models", "datasets", "summary"):
        assert command in helptext
    train_help = run_cli("train", "--help", check=True).stdout
    assert "--resume" in train_help and "--lr" in train_help
    datasets = run_cli("datasets", check=True).stdout
    for name in ("digits", "mnist", "fashion-mnist", "cifar10", "folder"):
        assert name in datasets


@pytest.mark.slow  # make test-all: a training interrupted with Ctrl-C
def test_ctrl_c_keeps_finished_epochs_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "edgecv", *_train_args(run)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = run / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (history.is_file() and len(history.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert f"continue with: edgecv train --resume {run}" in stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] >= 1


def test_names_with_brackets_are_printed_verbatim(tmp_path):
    root = make_image_folder(tmp_path / "[imgs]", classes=("[cat]", "dog"), per_class=10)
    proc = invoke("train", "--data", f"folder:{root}", "--model", "mlp", "--epochs", "1", "--out", tmp_path / "r",
                  check=True)
    assert "[cat]" in proc.stdout and "[imgs]" in proc.stdout
    assert_user_error(invoke("train", "--data", f"folder:{tmp_path / '[missing]'}"), "[missing]")


def test_mnist_format_files_train_end_to_end_and_resume_from_elsewhere(tmp_path, monkeypatch):
    from conftest import make_mnist_like

    make_mnist_like(tmp_path / "data", "MNIST", n_train=60, n_test=20)
    monkeypatch.chdir(tmp_path)
    invoke("train", "--data", "mnist", "--data-root", "data", "--model", "cnn-tiny", "--epochs", "2",
                  "--batch-size", "16", "--out", "run", check=True)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_root"] == str(tmp_path / "data")  # stored absolute
    assert json.loads((tmp_path / "run" / "spec.json").read_text())["input_shape"] == [1, 28, 28]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed after the last epoch, before scoring
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    invoke("train", "--resume", tmp_path / "run", check=True)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
    assert [r["epoch"] for r in read_history(tmp_path / "run" / "history.csv")] == [1, 2]
