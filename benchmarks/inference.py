"""Inference speed per zoo model, as ratios measured in one run with edgecv's bench harness: ONNX Runtime fp32
against torch eager at batch 1 (p50 latency), and ONNX Runtime int8 (QDQ, the host's default flavour)
against fp32 at batch 64 (images/s).

Weights are random (speed does not depend on them); inputs are the same random images for every variant.
Calibration uses 64 random images, which is fine for timing and meaningless for accuracy.

Usage: python benchmarks/inference.py [--models lenet5,cnn-bn] [--seconds 1] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from edgecv.core.cpu import host_cpu
from edgecv.core.spec import ModelSpec
from edgecv.core.stats import speed_ratio
from edgecv.measure.bench import BenchOptions
from edgecv.measure.timing import measure
from edgecv.models import MODELS, create_model
from edgecv.quantize import methods as m
from edgecv.runtimes import RuntimeOptions, load_model
from edgecv.runtimes.torch_rt import wrap_module


def variants(name: str, tmp: Path, options: RuntimeOptions):
    """torch eager, ONNX fp32 and ONNX int8 of one randomly initialised zoo model."""
    from onnxruntime.quantization import quant_pre_process

    size = MODELS.get(name).input_size
    spec = ModelSpec(labels=[str(i) for i in range(10)], input_shape=(1, size, size), mean=[0.5], std=[0.25])
    torch.manual_seed(0)
    model = create_model(name, 1, 10, size).eval()
    fp32 = tmp / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 1, size, size),), str(fp32), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    prepared, int8 = tmp / f"{name}.prep.onnx", tmp / f"{name}.int8.onnx"
    quant_pre_process(str(fp32), str(prepared))
    flavour = m.default_flavour(host_cpu())
    settings = m.Int8Settings(flavour.activation_type, flavour.weight_type, flavour.reduce_range, True, "minmax", 64)
    calib = np.random.default_rng(1).standard_normal((64, 1, size, size)).astype(np.float32)
    m.int8_static(prepared, int8, settings, m.calibration_reader("input", calib, None), tmp / f"{name}.cache")
    eager = wrap_module(model, "torch", fp32, spec, "cpu")
    return eager, load_model(fp32, options, spec), load_model(int8, options, spec)


def preset_args(doc: str) -> argparse.Namespace:
    """--models (default: every preset without pretrained weights), --seconds and --threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    names = [n for n, e in MODELS.items() if not e.pretrained]
    parser.add_argument("--models", default=",".join(names))
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


def main() -> None:
    args = preset_args(__doc__)
    options = RuntimeOptions(threads=args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{host_cpu().describe()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {ort.__version__}, int8 flavour {m.default_flavour(host_cpu()).reason}")
    print("| model | torch eager p50 (b1) | ORT fp32 p50 (b1) | ORT vs torch (95% interval) | ORT fp32 img/s (b64) | "
          "ORT int8 img/s (b64) | int8 vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    opts = BenchOptions(batch_sizes=(64,), warmup=10, seconds=args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            eager, fp32, int8 = variants(name, Path(tmp), options)
            raw = np.random.default_rng(2).integers(0, 256, (64, *eager.spec.input_shape), dtype=np.uint8)
            t, f, i = measure([eager, fp32, int8], raw, opts)  # interleaved rounds: drift hits all three alike
            r = speed_ratio(f["round_p50_ms"], t["round_p50_ms"])
            print(f"| {name} | {t['latency_ms']['p50']:.3f} ms | {f['latency_ms']['p50']:.3f} ms | {r.ratio:.2f}x "
                  f"({r.low:.2f}-{r.high:.2f}) | {f['throughput']['64']:,.0f} | {i['throughput']['64']:,.0f} | "
                  f"{i['throughput']['64'] / f['throughput']['64']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
