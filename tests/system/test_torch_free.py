"""The base install has no torch: the core, the digits data and the CLI's help must work without it."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import BLOCK_TORCH, cli_env


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




def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], env=cli_env(), capture_output=True,
                          text=True, timeout=600)


def test_torch_is_really_blocked():
    proc = _run("import torch")
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr


def test_core_modules_and_digits_data_work_without_torch():
    proc = _run(
        "import numpy as np\n"
        "import edgecv\n"
        "from edgecv import ModelSpec\n"
        "from edgecv.core.metrics import classification_metrics\n"
        "from edgecv.data import load_dataset\n"
        "from edgecv.core.preprocess import to_model_input\n"
        "from edgecv.core.cpu import host_cpu\n"
        "b = load_dataset('digits', 16)\n"
        "assert to_model_input(b.test.x[:2], ModelSpec(labels=b.labels, input_shape=b.input_shape, mean=b.mean,\n"
        "                      std=b.std)).shape == (2, 1, 16, 16) and host_cpu().arch\n"
        "m = classification_metrics(b.test.y, np.eye(10)[b.test.y], b.labels)\n"
        "s = ModelSpec(labels=b.labels, input_shape=b.input_shape, mean=b.mean, std=b.std)\n"
        "print(edgecv.__version__, b.input_shape, m['accuracy'], s.channels, 'torch' in sys.modules)"
    )
    assert proc.returncode == 0, proc.stderr
    assert "(1, 16, 16) 1.0 1 False" in proc.stdout


def test_cli_help_version_and_datasets_work_without_torch():
    for argv, expected in ((["--help"], "train"), (["--version"], "edgecv"), (["datasets"], "fashion-mnist")):
        proc = _run(f"from edgecv.cli import main; sys.argv = ['edgecv', *{argv!r}]; main()")
        assert proc.returncode == 0, (argv, proc.stderr)
        assert expected in proc.stdout


def test_training_commands_without_torch_say_which_extra_to_install():
    for argv in (["train"], ["models"], ["summary", "lenet5"]):
        proc = _run(f"from edgecv.cli import main; sys.argv = ['edgecv', *{argv!r}]; main()")
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "pip install 'edgecv[train]'" in proc.stderr


def test_quantize_without_onnx_says_which_extra_to_install(tmp_path):
    """The base install has neither torch nor onnx, which quantisation needs."""
    block_onnx = BLOCK_TORCH.replace('("torch", "torchvision")', '("torch", "torchvision", "onnx")')
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read")
    code = f"from edgecv.cli import main; sys.argv = ['edgecv', 'quantize', {str(model)!r}]; main()"
    proc = subprocess.run([sys.executable, "-c", block_onnx + code], env=cli_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs onnx" in proc.stderr and "pip install 'edgecv[train]'" in proc.stderr
