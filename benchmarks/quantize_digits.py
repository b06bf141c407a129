"""Size and test accuracy before and after each quantisation method, per model, on the embedded digits.

Each model is trained with its defaults (seed 0), exported to ONNX, and quantised with edgecv's defaults
(int8-static: 512 calibration images from the training split, minmax, per-channel, the host's int8
flavour). This is the quantisation table in docs/export.md.

Usage: python benchmarks/quantize_digits.py [--models lenet5,cnn-bn,mlp,resnet] [--runs DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnxruntime as ort

from edgecv.core.cpu import host_cpu
from edgecv.quantize import quantize
from edgecv.quantize.methods import default_flavour


def ensure_run(root: Path, name: str) -> Path:
    """A trained and exported run for ``name`` under ``root`` (reused when it is already there)."""
    from edgecv.exporters import export_onnx, load_source
    from edgecv.train import TrainConfig, train

    run = root / name
    if not (run / "checkpoints" / "best.pt").is_file():
        train(TrainConfig(model=name, out=str(run)), overwrite=True)
    if not (run / "model.onnx").is_file():
        export_onnx(load_source(run), run / "model.onnx")
    return run / "model.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,cnn-bn,mlp,resnet")
    parser.add_argument("--runs", type=Path, help="keep (and reuse) the run directories here")
    args = parser.parse_args()
    cpu = host_cpu()
    print(f"{cpu.describe()}, onnxruntime {ort.__version__}, int8 default: {default_flavour(cpu).reason}")
    print("| model | variant | size | vs fp32 | test accuracy | change |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.runs or Path(tmp)
        for name in args.models.split(","):
            report = quantize(ensure_run(root, name))
            src = report.source
            print(f"| {name} | fp32 | {src['size_bytes'] / 1e3:.1f} KB | 1.00x | {src['test_accuracy']:.2%} | |")
            for r in report.results:
                print(f"| {name} | {r.method} | {r.size_bytes / 1e3:.1f} KB | {r.size_bytes / src['size_bytes']:.2f}x "
                      f"| {r.test_accuracy:.2%} | {round(-r.test_drop_pp, 2) + 0.0:+.2f} pp |", flush=True)


if __name__ == "__main__":
    main()
