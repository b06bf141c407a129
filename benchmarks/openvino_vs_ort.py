"""OpenVINO's own runtime against ONNX Runtime on the same ONNX files, as ratios measured in one run.

For each preset (random weights: speed does not depend on them), the fp32 file and the static int8 file (QDQ,
the host's default flavour, 64 random calibration images) from ``benchmarks/inference.py`` run on both
runtimes, all four timed in the same interleaved rounds on the same random images with edgecv's bench
harness. Printed: batch-1 p50 latency and batch-64 images/s of each, and OpenVINO's speed over ONNX Runtime's
at the same precision (batch 1: the paired ratio of per-round medians with its 95% interval; above 1 means
OpenVINO is faster). OpenVINO runs fp32 files at fp32 (``INFERENCE_PRECISION_HINT`` f32) with its LATENCY
hint; ONNX Runtime with its defaults. Both use every core unless ``--threads`` is given.

Usage: python benchmarks/openvino_vs_ort.py [--models lenet5,resnet] [--seconds 1] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
from inference import variants  # benchmarks/inference.py: fp32 and int8 files of a zoo model

from edgecv.bench import BenchOptions
from edgecv.cpu import host_cpu
from edgecv.models import MODELS
from edgecv.runtimes import RuntimeOptions, load_model
from edgecv.stats import speed_ratio
from edgecv.timing import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [n for n, e in MODELS.items() if not e.pretrained]
    parser.add_argument("--models", default=",".join(names))
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    options = RuntimeOptions(threads=args.threads)
    print(f"{host_cpu().describe()}, {args.threads or 'all'} threads, onnxruntime {ort.__version__}, "
          f"openvino {ov.__version__}")
    print("| model | ORT fp32 p50 | OV fp32 p50 | OV/ORT b1 (95% interval) | ORT fp32 img/s b64 | OV fp32 img/s b64 | "
          "OV/ORT b64 | ORT int8 p50 | OV int8 p50 | OV/ORT b1 (95% interval) | ORT int8 img/s b64 | "
          "OV int8 img/s b64 | OV/ORT b64 |")
    print("|---|" + "---:|" * 12)
    opts = BenchOptions(batch_sizes=(64,), warmup=10, seconds=args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            _, fp32, int8 = variants(name, Path(tmp), options)
            ov_options = replace(options, runtime="openvino")
            ov_fp32 = load_model(fp32.file, ov_options, fp32.spec)
            ov_int8 = load_model(int8.file, ov_options, int8.spec)
            raw = np.random.default_rng(2).integers(0, 256, (64, *fp32.spec.input_shape), dtype=np.uint8)
            results = measure([fp32, ov_fp32, int8, ov_int8], raw, opts)  # interleaved: drift hits all alike
            cells = [name]
            for a, b in (results[0:2], results[2:4]):
                r = speed_ratio(b["round_p50_ms"], a["round_p50_ms"])
                cells += [f"{a['latency_ms']['p50']:.3f} ms", f"{b['latency_ms']['p50']:.3f} ms",
                          f"{r.ratio:.2f}x ({r.low:.2f}-{r.high:.2f})", f"{a['throughput']['64']:,.0f}",
                          f"{b['throughput']['64']:,.0f}", f"{b['throughput']['64'] / a['throughput']['64']:.2f}x"]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
