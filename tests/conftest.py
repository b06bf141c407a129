"""Fixtures that write small data sets in the real on-disk formats, and a CLI runner."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Run directories trained on digits, one per (model, epochs), made on first use and shared by every
    test module; ``epochs=None`` trains with the model's defaults."""
    root = tmp_path_factory.mktemp("runs")
    runs: dict[str, Path] = {}

    def get(name: str, epochs: int | None = 1) -> Path:
        import torch
        from torchvision.models.vgg import cfgs, make_layers

        from edgecv.models import MODELS
        from edgecv.train import TrainConfig, train

        key = f"{name}-{epochs or 'full'}"
        if key not in runs:
            weights = None
            if MODELS.get(name).pretrained:
                torch.manual_seed(0)
                weights = root / "vgg16-features.pth"
                torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, weights)
            runs[key] = root / key
            train(TrainConfig(model=name, epochs=epochs, out=str(runs[key]),
                              weights=str(weights) if weights else None))
        return runs[key]

    return get


@pytest.fixture(scope="session")
def lenet_onnx(trained) -> Path:
    """A lenet5 trained one epoch on digits, exported to ONNX: the model the Predictor, load and isolation
    tests share."""
    from edgecv.exporters import export_onnx, load_source

    run = trained("lenet5", epochs=1)
    path = run / "shared.onnx"
    if not path.is_file():
        export_onnx(load_source(run), path)
    return path


@pytest.fixture(scope="session")
def full_run(trained, tmp_path_factory):
    """A lenet5 digits run with every variant: checkpoint, TorchScript, ONNX fp32/fp16/int8/int8-dynamic."""
    import shutil

    from edgecv.exporters import export_onnx, export_torchscript, load_source
    from edgecv.quantize import QuantizeOptions, quantize

    run = tmp_path_factory.mktemp("measure") / "run"
    shutil.copytree(trained("lenet5", epochs=3), run,
                    ignore=shutil.ignore_patterns("model*", "export.json", "quantize.json"))
    source = load_source(run)
    export_onnx(source, run / "model.onnx")
    export_torchscript(source, run / "model.pt")
    quantize(run / "model.onnx", QuantizeOptions(calib_size=128))
    return run


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format MNIST ships in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 | array.ndim
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def make_mnist_like(root: Path, folder: str, n_train: int = 60, n_test: int = 20, seed: int = 0):
    """Tiny MNIST-format files: class k images have a bright row band at row 2k+4."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", x)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8))
        arrays[prefix] = (x, y)
    return arrays


def make_cifar10(root: Path, per_batch: int = 10, n_test: int = 20, seed: int = 0):
    """Tiny CIFAR-10 python-format batches (pickled dicts of uint8 rows, as the release ships)."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    written = {}
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(files):
        n = n_test if name == "test_batch" else per_batch
        labels = [(j + i) % 10 for j in range(n)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        with open(base / name, "wb") as fh:
            pickle.dump({"batch_label": name, "labels": labels, "data": data}, fh)
        written[name] = (data, labels)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch}, fh)
    return written, names


def make_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 10, size=(20, 14),
                      mode: str = "RGB", seed: int = 0) -> Path:
    """PNG files, one sub-folder per class; each class has its own dominant colour/brightness."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((size[1], size[0], 3), np.uint8)
            base[..., k % 3] = 200
            noise = rng.integers(0, 50, size=base.shape, dtype=np.uint8)
            Image.fromarray(base + noise).convert(mode).save(folder / f"{name}_{i}.png")
    return root


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels and whose data is a few bytes: what an upload
    claiming a huge image sends before its pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images")


class Exploit:
    """Pickles to a call of os.system: loading it must never create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECV_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, check: bool = False):
    """Run ``python -m edgecv ARGS`` in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "edgecv", *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"edgecv {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def assert_user_error(proc, *fragments: str, code: int = 2) -> None:
    """One line on stderr naming the problem, the given exit code, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


class Invoked:
    """The result of an in-process CLI call, shaped like ``subprocess.CompletedProcess``."""

    def __init__(self, result) -> None:
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def invoke(*args, cwd: Path | None = None, check: bool = False) -> Invoked:
    """Run the real ``edgecv`` Typer app in this process (for the many bad-input cases, and the repeats of a
    command that has a subprocess run elsewhere); ``check`` fails the test on a non-zero exit, as in run_cli."""
    from typer.testing import CliRunner

    from edgecv.cli import app

    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = Invoked(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"}))
    finally:
        os.chdir(old)
    if check and result.returncode != 0:
        raise AssertionError(f"edgecv {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def zoo_names() -> list:
    """Every zoo model as a test parameter; vgg16-transfer (VGG16's 14.7M-parameter features: the slowest to
    train, export and quantise by far) is make test-all's."""
    from edgecv.models import MODELS

    return [pytest.param(n, marks=pytest.mark.slow) if n == "vgg16-transfer" else n for n in MODELS.names()]


# what full_run holds: file -> (format, precision)
RUN_VARIANTS = {"checkpoints/best.pt": ("torch", "fp32"), "model.pt": ("torchscript", "fp32"),
                "model.onnx": ("onnx", "fp32"), "model.fp16.onnx": ("onnx", "fp16"),
                "model.int8.onnx": ("onnx", "int8"), "model.int8-dynamic.onnx": ("onnx", "int8-dynamic")}


def export_model(source, model, path: Path) -> Path:
    """``model`` exported to ONNX at ``path`` with ``source``'s spec (a variant of a run's model)."""
    from edgecv.exporters import export_onnx

    export_onnx(replace(source, model=model.eval()), path)
    return path


@pytest.fixture(scope="session")
def lenet(trained, tmp_path_factory):
    """A 3-epoch lenet5 digits run of its own (calibrated by default) with its ONNX file, and its export source."""
    from edgecv.exporters import load_source

    run = tmp_path_factory.mktemp("honest") / "run"
    shutil.copytree(trained("lenet5", epochs=3), run, ignore=shutil.ignore_patterns("model*", "*.json.tmp"))
    source = load_source(run)
    export_model(source, source.model, run / "model.onnx")
    return run, source


def quick_bench_options(**kw):
    """Bench options for comparing a few files at batch 1 in-process, with enough rounds for intervals."""
    from edgecv.measure.types import BenchOptions

    return BenchOptions(**{"batch_sizes": (1,), "seconds": 1.0, "rounds": 10, "warmup": 20, "isolate": False, **kw})


@pytest.fixture(scope="session")
def piped(tmp_path_factory) -> tuple[Path, str]:
    """A full pipeline run: lenet5 for 2 epochs on digits (short enough to leave some mistakes)."""
    run = tmp_path_factory.mktemp("pipeline") / "run"
    proc = run_cli("pipeline", "--model", "lenet5", "--epochs", "2", "--out", run, "--seconds", "0.05", check=True)
    return run, proc.stdout


STUDY_ARGS = ("--epochs", "1", "--seconds", "0.05")


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """mlp and cnn-tiny on digits, one epoch each, with constraints every row can meet (memory in a process
    of its own is the pipeline fixture's and bench's tests' to check)."""
    folder = tmp_path_factory.mktemp("study") / "s"
    proc = run_cli("pipeline", "--model", "mlp,cnn-tiny", *STUDY_ARGS, "--no-isolate", "--out", folder,
                   "--max-latency-ms", "50", "--min-accuracy", "5", check=True)
    return folder, proc.stdout


# property tests of hostile inputs: many examples, no deadline (a decode can take a while)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# An import hook that makes `import torch` fail as it does where torch is not installed.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTorch())
"""


def chromium_render(page: Path, out: Path) -> list[str]:
    """Screenshot ``page`` in headless Chromium; the URLs the page itself asked the network for."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is needed to render the report (make test installs it: apt-get install chromium)"
    log = out.with_suffix(".netlog.json")
    subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    "--disable-background-networking", f"--user-data-dir={out.parent / 'profile'}",
                    "--window-size=1280,2000", f"--screenshot={out}", f"--log-net-log={log}",
                    "--net-log-capture-mode=Everything", page.resolve().as_uri()],
                   capture_output=True, timeout=600, check=True)
    net = json.loads(log.read_text())
    start_job = net["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # the page's own requests carry its origin as initiator; the browser's background ones "not an origin"
    starts = [e["params"] for e in net["events"] if e["type"] == start_job and "url" in e.get("params", {})]
    return [p["url"] for p in starts if p.get("initiator") != "not an origin"]
