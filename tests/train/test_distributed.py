"""Distributed training on torch.distributed: 2 gloo processes on the CPU, launched by `edgecv train --nproc 2`
or by torchrun itself, in real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_user_error, cli_env, invoke, run_cli

from edgecv.train.checkpoint import load_checkpoint

EPOCHS = 20  # lenet5 on digits converges by then, so one run's accuracy says something about the other's


def _ranks_of(launcher: int) -> dict[int, int]:
    """local rank -> pid of the training processes under a launcher process."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = dict(item.split("=", 1) for item in (proc / "environ").read_text().split("\0") if "=" in item)
            cmd = (proc / "cmdline").read_text()
        except OSError:
            continue
        if "edgecv" in cmd and "LOCAL_RANK" in env and int(proc.name) != launcher:
            found[int(env["LOCAL_RANK"])] = int(proc.name)
    return found


def _wait_for(path: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.is_file(), path


def test_two_gloo_processes_train_one_run_as_good_as_one_process(trained, tmp_path):
    run = tmp_path / "ddp"
    proc = run_cli("train", "--model", "lenet5", "--epochs", EPOCHS, "--nproc", 2, "--out", run, check=True)
    assert "2 processes: global batch 64 = 2 x 32 per rank; lr 0.002 as for one process" in proc.stdout
    assert proc.stdout.count("Training lenet5") == 1 and proc.stdout.count("test accuracy") == 1  # rank 0 speaks
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.json", "history.csv", "metrics.json",
                                                     "spec.json"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len((run / "history.csv").read_text().splitlines()) == EPOCHS + 1
    import json

    single = json.loads((trained("lenet5", epochs=EPOCHS) / "metrics.json").read_text())["accuracy"]
    multi = json.loads((run / "metrics.json").read_text())["accuracy"]
    assert abs(multi - single) <= 0.01, (multi, single)
    weights = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert not any(k.startswith("module.") for k in weights)  # the plain model's weights, not DDP's wrapper
    invoke("export", run, "--format", "onnx", check=True)  # exports like any other run
    assert (run / "model.onnx").is_file()


@pytest.mark.slow  # make test-all
def test_a_distributed_run_resumes_under_torchrun_and_a_lost_rank_stops_the_run(tmp_path):
    run = tmp_path / "ddp"
    args = [sys.executable, "-m", "edgecv", "train", "--model", "lenet5", "--epochs", "8", "--nproc", "2", "--out",
            str(run)]
    launcher = subprocess.Popen(args, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    _wait_for(run / "checkpoints" / "last.pt")
    ranks = _ranks_of(launcher.pid)
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[1], signal.SIGKILL)  # one rank dies: the launcher stops the other and says so, no hang
    _, stderr = launcher.communicate(timeout=600)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert launcher.returncode == 2 and len(lines) == 1, stderr
    assert "training stopped: rank 1 failed (signal 9)" in lines[0]
    assert not _ranks_of(launcher.pid)  # no rank left behind
    done = len((run / "history.csv").read_text().splitlines()) - 1
    assert 1 <= done < 8
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                              "-m", "edgecv", "train", "--resume", str(run)], env=cli_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert len((run / "history.csv").read_text().splitlines()) == 9
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 8 and ckpt["finished"]
    assert torch.isfinite(torch.cat([t.flatten().float() for t in ckpt["model"].values()])).all()


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "63"], "does not split evenly over 2 processes"),
    (["--lr", "0.1,0.01"], "--nproc trains one run"),
    (["--nproc", "0"], "--nproc must be at least 1"),
])
def test_bad_distributed_settings_are_one_line_before_any_process_starts(tmp_path, args, message):
    base = ["train", "--model", "mlp", "--epochs", "1", "--out", tmp_path / "x"]
    full = [*base, *args] if "--nproc" in args else [*base, "--nproc", "2", *args]
    assert_user_error(invoke(*full), message)
    assert not (tmp_path / "x").exists()
