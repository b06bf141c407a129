"""The base install has no torch: the core, the digits data and the CLI's help must work without it."""

from __future__ import annotations

import subprocess
import sys

from conftest import cli_env

# An import hook that makes `import torch` fail as it does where torch is not installed.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTorch())
"""


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
