"""Faults from the real OS: processes killed with SIGKILL at random moments, a file-size limit
(RLIMIT_FSIZE, what a full disk looks like to a writer) and a read-only folder. Whatever happens, no file
under a final name is truncated, the previous good file survives, the error is one line, and running the
command again finishes the job."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import assert_user_error, cli_env, invoke, run_cli
from PIL import Image

FSIZE = 20_000  # bytes: config and spec files fit, a lenet5 model or checkpoint does not


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))


def _cli(*args, limited: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecv", *map(str, args)], env=cli_env(), capture_output=True,
                          text=True, timeout=600, preexec_fn=_limit_file_size if limited else None)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


def assert_complete(folder: Path) -> int:
    """Every file under a final name in ``folder`` is whole: it parses as what its name says. Returns how
    many files were checked."""
    import onnx
    import torch

    from edgecv.train.checkpoint import load_checkpoint

    checked = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or (path.name.startswith(".") and path.name.endswith(".tmp")):
            continue
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            onnx.checker.check_model(str(path))
        elif suffix == ".pt":
            names = zipfile.ZipFile(path).namelist()
            if any("/code/" in n for n in names):
                torch.jit.load(str(path))
            else:
                load_checkpoint(path)
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".csv":
            rows = list(csv.reader(path.read_text().splitlines()))
            assert rows and all(len(r) == len(rows[0]) for r in rows), path
        elif suffix == ".png":
            with Image.open(path) as img:
                img.verify()
        elif suffix in (".html", ".md"):
            assert path.read_text().rstrip().endswith(("</html>", "")), path
        checked += 1
    return checked


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(os.path.join(root, name))
                found[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
    return found


def _kill_while_writing(args: list, seed: int, times: int, folder: Path) -> list[int]:
    """Run ``edgecv ARGS`` ``times`` times and SIGKILL it in the middle of writing: the folder is watched
    every millisecond and the process is killed at a random one of the first writes it sees (a new or
    growing file), a few milliseconds in. After each kill every final file must be whole."""
    rng = random.Random(seed)
    kills = []
    for _ in range(times):
        target, seen = rng.randint(1, 4), 0
        before = _files(folder)
        proc = subprocess.Popen([sys.executable, "-m", "edgecv", *map(str, args)], env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            now = _files(folder)
            changed = {k for k, v in now.items() if before.get(k) != v}
            if changed:
                seen += 1
                before = now
                if seen >= target:
                    time.sleep(rng.uniform(0, 0.005))
                    break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(seen)
        assert assert_complete(folder) > 0
    return kills


def _kill_at_random(args: list, seed: int, times: int, folder: Path) -> list[float]:
    """Run ``edgecv ARGS`` ``times`` times, each killed with SIGKILL at a random moment within the time an
    uninterrupted run takes; after each kill every final file in ``folder`` must be whole."""
    start = time.monotonic()
    full = subprocess.run([sys.executable, "-m", "edgecv", *map(str, args)], env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr
    duration = time.monotonic() - start
    rng = random.Random(seed)
    moments = []
    for _ in range(times):
        moment = rng.uniform(0.05, 0.95) * duration
        proc = subprocess.Popen([sys.executable, "-m", "edgecv", *map(str, args)], env=cli_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        moments.append(moment)
        assert assert_complete(folder) > 0
    return moments


@pytest.fixture(scope="module")
def run(trained, tmp_path_factory) -> Path:
    """A copy of a trained lenet5 run with its ONNX export: the tests here write into it."""
    target = tmp_path_factory.mktemp("faults") / "run"
    shutil.copytree(trained("lenet5", epochs=1), target)
    invoke("export", target, "--format", "onnx", check=True)
    return target


@pytest.mark.parametrize("fmt, name", [("onnx", "model.onnx"), ("torchscript", "model.pt")])
def test_a_full_disk_during_export_is_one_line_and_keeps_the_previous_file(run, fmt, name):
    invoke("export", run, "--format", fmt, check=True)
    before = _digest(run / name)
    assert_user_error(_cli("export", run, "--format", fmt, limited=True), "cannot write", "File too large")
    assert _digest(run / name) == before and not _temps(run)


def test_a_full_disk_during_quantisation_is_one_line_and_keeps_the_previous_file(run):
    invoke("quantize", run / "model.onnx", "--method", "int8-static", check=True)
    before = _digest(run / "model.int8.onnx")
    assert_user_error(_cli("quantize", run / "model.onnx", "--method", "int8-static", limited=True),
                      "File too large")
    assert _digest(run / "model.int8.onnx") == before and not _temps(run)


@pytest.mark.slow  # make test-all: a training killed and resumed
def test_a_full_disk_during_training_keeps_the_last_good_checkpoint(tmp_path):
    """Killed after its first checkpoint, a run resumed under a file-size limit fails at its next checkpoint
    with one line, leaving the first one whole; resumed without the limit, it finishes."""
    out = tmp_path / "run"
    last = _start_and_kill_after_first_checkpoint(out, epochs=3)
    before = _digest(last)
    assert_user_error(_cli("train", "--resume", out, limited=True), "cannot write checkpoint", "File too large")
    assert _digest(last) == before and not _temps(out)
    assert assert_complete(out) > 0
    invoke("train", "--resume", out, check=True)
    assert len((out / "history.csv").read_text().splitlines()) == 4


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` read-only for this process: a permission bit for a normal user; for root, whom
    permission bits do not stop, a read-only bind mount (what a read-only volume gives)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_folder_is_one_line_for_every_writer(run, tmp_path):
    target = tmp_path / "ro"
    shutil.copytree(run, target)
    files = {p: _digest(p) for p in target.rglob("*") if p.is_file()}
    with read_only(target):
        assert_user_error(_cli("export", target, "--format", "onnx"), "cannot write", str(target))
        assert_user_error(invoke("quantize", target / "model.onnx", "--method", "fp16"), str(target))
        assert_user_error(invoke("train", "--model", "mlp", "--epochs", "1", "--out", target / "new"), str(target))
        assert_user_error(invoke("eval", target / "model.onnx", "--json", target / "eval.json"), "cannot write")
    assert {p: _digest(p) for p in target.rglob("*") if p.is_file()} == files


@pytest.mark.slow  # make test-all
def test_export_and_quantize_killed_while_writing_leave_only_whole_files(run):
    for fmt in ("onnx", "torchscript"):
        _kill_while_writing(["export", run, "--format", fmt], seed=1, times=4, folder=run)
    _kill_while_writing(["quantize", run / "model.onnx", "--method", "int8-static,fp16"], seed=2, times=4,
                        folder=run)
    run_cli("quantize", run / "model.onnx", "--method", "int8-static", check=True)
    assert assert_complete(run) > 0


@pytest.mark.slow  # make test-all
def test_a_pipeline_killed_at_random_moments_finishes_when_run_again(tmp_path):
    out = tmp_path / "run"
    args = ["pipeline", "--model", "mlp", "--epochs", "2", "--out", out, "--seconds", "0.02", "--no-isolate"]
    _kill_at_random([*args, "--force"], seed=3, times=3, folder=out)
    proc = subprocess.Popen([sys.executable, "-m", "edgecv", *map(str, args), "--force"], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = run_cli(*args, check=True)  # no --force: it resumes from what is whole
    assert "report" in done.stdout and (out / "report.html").is_file()
    assert assert_complete(out) > 10


def _start_and_kill_after_first_checkpoint(out: Path, epochs: int) -> Path:
    """Start ``edgecv train`` and SIGKILL it once its first checkpoint exists; the checkpoint's path."""
    proc = subprocess.Popen([sys.executable, "-m", "edgecv", "train", "--model", "lenet5", "--epochs", str(epochs),
                             "--out", str(out)], env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return last


@pytest.mark.slow  # make test-all
def test_training_killed_while_writing_checkpoints_resumes_to_the_end(tmp_path):
    out = tmp_path / "run"
    _start_and_kill_after_first_checkpoint(out, epochs=5)
    _kill_while_writing(["train", "--resume", out], seed=5, times=4, folder=out)
    run_cli("train", "--resume", out, check=True)
    assert len((out / "history.csv").read_text().splitlines()) == 6
    assert assert_complete(out) > 5
