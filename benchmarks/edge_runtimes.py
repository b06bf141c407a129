"""Edge runtimes side by side: ONNX Runtime, OpenVINO and ExecuTorch on the same preset, as ratios measured in
one run.

For each preset (random weights: speed does not depend on them):

- ONNX Runtime and OpenVINO run the same files: the fp32 ONNX file and the static int8 file (QDQ, the host's
  default flavour, 64 random calibration images) from ``benchmarks/inference.py``;
- ExecuTorch runs ``.pte`` files lowered from the same torch model to XNNPACK: fp32, and int8 through XNNPACK's
  PT2E quantiser calibrated on the same 64 images.

All six are timed in the same interleaved rounds on the same random images with edgecv's bench harness.
Printed per precision: batch-1 p50 latency of each runtime, and each other runtime's speed over ONNX Runtime's
(batch 1: the paired ratio of per-round medians with its 95% interval; batch 64: images/s). Above 1 means
faster than ONNX Runtime. OpenVINO runs fp32 files at fp32 with its LATENCY hint; ONNX Runtime and ExecuTorch
with their defaults. Every runtime uses all cores unless ``--threads`` is given (ExecuTorch: its own pool).

Usage: python benchmarks/edge_runtimes.py [--models lenet5,resnet] [--seconds 1] [--threads N]
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from inference import preset_args, variants  # benchmarks/inference.py: presets, their fp32 and int8 files

from edgecv.core.cpu import host_cpu
from edgecv.core.stats import speed_ratio
from edgecv.exporters.executorch import MAX_BATCH, lower
from edgecv.measure.bench import BenchOptions
from edgecv.measure.timing import measure
from edgecv.models import create_model
from edgecv.runtimes import RuntimeOptions, load_model

RUNTIMES = ("ORT", "OpenVINO", "ExecuTorch")


def pte_files(name: str, spec, tmp: Path) -> tuple[Path, Path]:
    """fp32 and int8 .pte files of the same randomly initialised model as :func:`inference.variants`."""
    size = spec.input_shape[1]
    torch.manual_seed(0)
    model = create_model(name, 1, 10, size).eval()  # the same seed and init as inference.variants
    example = torch.randn(MAX_BATCH, 1, size, size)
    calib = np.random.default_rng(1).standard_normal((64, 1, size, size)).astype(np.float32)
    fp32, int8 = tmp / f"{name}.pte", tmp / f"{name}.int8.pte"
    fp32.write_bytes(lower(model, spec, example))
    int8.write_bytes(lower(model, spec, example, calib=calib))
    return fp32, int8


def main() -> None:
    args = preset_args(__doc__)
    options = RuntimeOptions(threads=args.threads)
    print(f"{host_cpu().describe()}, {args.threads or 'all'} threads, onnxruntime {ort.__version__}, "
          f"openvino {importlib.metadata.version('openvino')}, executorch {importlib.metadata.version('executorch')}")
    head = []
    for precision in ("fp32", "int8"):
        head += [f"{precision} p50 ORT / OV / ET", f"{precision} b1 OV/ORT", f"{precision} b1 ET/ORT",
                 f"{precision} b64 OV/ORT", f"{precision} b64 ET/ORT"]
    print("| model | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    opts = BenchOptions(batch_sizes=(64,), warmup=10, seconds=args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            _, fp32, int8 = variants(name, Path(tmp), options)
            ov = replace(options, runtime="openvino")
            pte32, pte8 = pte_files(name, fp32.spec, Path(tmp))
            models = [fp32, load_model(fp32.file, ov, fp32.spec), load_model(pte32),
                      int8, load_model(int8.file, ov, int8.spec), load_model(pte8)]
            raw = np.random.default_rng(2).integers(0, 256, (64, *fp32.spec.input_shape), dtype=np.uint8)
            results = measure(models, raw, opts)  # interleaved: drift hits all six alike
            cells = [name]
            for base, ov_r, et_r in (results[0:3], results[3:6]):
                cells.append(" / ".join(f"{r['latency_ms']['p50']:.3f}" for r in (base, ov_r, et_r)) + " ms")
                for other in (ov_r, et_r):
                    ratio = speed_ratio(other["round_p50_ms"], base["round_p50_ms"])
                    cells.append(f"{ratio.ratio:.2f}x ({ratio.low:.2f}-{ratio.high:.2f})")
                for other in (ov_r, et_r):
                    cells.append(f"{other['throughput']['64'] / base['throughput']['64']:.2f}x")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
