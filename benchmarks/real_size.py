"""Real-size deployment: torchvision classifiers at 224x224 on every engine edgecv runs, as ratios measured in one
run on this host.

For each model (random weights: speed does not depend on them) the files are the ones edgecv writes for a user:
``edgecv export torchvision:NAME --out RUN --data folder:…`` (checkpoint, ONNX, TorchScript), ``edgecv quantize``
(int8-static QDQ in the host's default flavour, fp16; 64 calibration images of a generated folder; and
``--tune-for openvino``'s int8 file, OpenVINO's int8 row, with ONNX Runtime's file on OpenVINO beside it) and
``edgecv export RUN --format executorch`` (fp32 and int8 ``.pte``, XNNPACK). Then, timed in the same interleaved
rounds on the same images with edgecv's bench harness:

- torch eager (``torch.inference_mode()``; channels_last too, and the faster of the two is kept as torch's row),
- ONNX Runtime fp32 / int8-static / fp16, OpenVINO fp32 / int8 (the same ONNX files), ExecuTorch fp32 / int8.

Printed per model: batch-1 p50 latency with the paired speed ratio against torch eager and its 95% interval,
batch-8 images/s, the app's end-to-end p50 (``edgecv.Predictor`` from a 640x480 JPEG's bytes to the label, on
the same session, as edgecv bench times it) as a multiple of the model's own p50, file size, and (unless
--no-isolate) peak memory and cold start, each variant in a fresh process as edgecv bench measures them.
Then the goals as ratios: int8 over fp32 on each engine at batch 1 and 8, the batch-8 ratio as a fraction of
the host's int8 limit (benchmarks/int8_limit.py's u8 x s8 GEMM against fp32, measured in this run), the
fastest int8 over the fastest fp32 at batch 8, the fastest variant over torch eager at batch 1, and ONNX
Runtime fp32's end-to-end p50 over its model p50.

Usage: python benchmarks/real_size.py [--models resnet18,mobilenet_v3_large,efficientnet_b0] [--seconds 1]
       [--threads N] [--no-isolate]
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from int8_limit import host_limit  # benchmarks/int8_limit.py
from PIL import Image

from edgecv.core.cpu import host_cpu
from edgecv.core.stats import speed_ratio
from edgecv.measure.bench import BenchOptions
from edgecv.measure.endtoend import sample_photo, time_end_to_end
from edgecv.measure.memprobe import measure_isolated
from edgecv.measure.timing import measure
from edgecv.quantize import QuantizeOptions, quantize
from edgecv.runtimes import Loaded, RuntimeOptions, load_model
from edgecv.runtimes.torch_rt import wrap_module
from edgecv.serve.predictor import Predictor

MODELS = "resnet18,mobilenet_v3_large,efficientnet_b0"
BATCH = 8
ENGINES = ("ORT", "OpenVINO", "ExecuTorch")


def calibration_folder(root: Path, n: int = 40) -> Path:
    """Two classes named as two of ImageNet's (the models' labels) of smooth random 320x256 photos-to-be."""
    rng = np.random.default_rng(0)
    for label in ("tench", "goldfish"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            small = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
            Image.fromarray(small).resize((320, 256), Image.BICUBIC).save(root / label / f"{i}.jpg", quality=90)
    return root


def edgecv_files(name: str, tmp: Path) -> Path:
    """The run directory edgecv writes for ``torchvision:name``: export, quantize, export to ExecuTorch."""
    run, folder = tmp / name, calibration_folder(tmp / f"{name}-photos")
    cli = [sys.executable, "-m", "edgecv", "export"]
    subprocess.run([*cli, f"torchvision:{name}", "--out", str(run), "--data", f"folder:{folder}"], check=True,
                   capture_output=True)
    subprocess.run([*cli, str(run), "--format", "executorch", "--calib-size", "64"], check=True, capture_output=True)
    quantize(run / "model.onnx", QuantizeOptions(methods=("int8-static", "fp16"), calib_size=64, speed_check=False))
    quantize(run / "model.onnx", QuantizeOptions(methods=("int8-static",), calib_size=64, speed_check=False,
                                                 tune_for="openvino"))
    return run


def variants(run: Path, options: RuntimeOptions) -> dict[str, Loaded]:
    """Every engine and precision on the run's files, torch eager at its fastest layout first."""
    ov = replace(options, runtime="openvino")
    eager = load_model(run / "checkpoints" / "best.pt", options)
    last = wrap_module(copy.deepcopy(eager.handle).to(memory_format=torch.channels_last), "torch", eager.file,
                       eager.spec, "cpu")
    last.prepare = lambda x, p=last.prepare: p(x).contiguous(memory_format=torch.channels_last)
    files = {"ORT fp32": ("model.onnx", options), "ORT int8": ("model.int8.onnx", options),
             "ORT fp16": ("model.fp16.onnx", options), "OpenVINO fp32": ("model.onnx", ov),
             "OpenVINO int8": ("model.int8-openvino.onnx", ov), "OpenVINO int8 (ORT's file)": ("model.int8.onnx", ov),
             "ExecuTorch fp32": ("model.pte", options),
             "ExecuTorch int8": ("model.int8.pte", options)}
    return {"torch eager": eager, "torch eager channels_last": last,
            **{key: load_model(run / file, opts) for key, (file, opts) in files.items()}}


def isolated(loaded: Loaded, options: RuntimeOptions) -> str:
    """Peak memory and cold start of one variant in a fresh process, as edgecv bench measures them."""
    runtime = "openvino" if loaded.format == "openvino" else "onnxruntime"
    probe = measure_isolated(loaded.file, asdict(replace(options, runtime=runtime)), loaded.spec.input_shape,
                             loaded.spec.dtype, 1, BATCH, spec_json=loaded.spec.to_json())
    memory = f"{probe['model_bytes'] / 2**20:.0f} MB" if probe.get("model_bytes") else "-"
    return f"{memory} | {probe['load_ms'] + probe['first_run_ms']:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per variant and batch size")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-isolate", action="store_true", help="skip the per-variant memory and cold start")
    args = parser.parse_args()
    options = RuntimeOptions(threads=args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        limit, _, _ = host_limit(Path(tmp), options, max(args.seconds, 1.0))
        print(f"{host_cpu().describe()}, {args.threads or 'all'} threads; torch {torch.__version__}, onnxruntime "
              f"{ort.__version__}, openvino {importlib.metadata.version('openvino')}, executorch "
              f"{importlib.metadata.version('executorch')}; host int8 limit (u8s8/fp32 GEMM) {limit:.2f}x\n")
        goals = []
        for name in args.models.split(","):
            run = edgecv_files(name, Path(tmp))
            models = variants(run, options)
            raw = np.random.default_rng(2).integers(0, 256, (BATCH, 3, 224, 224), dtype=np.uint8)
            timed = dict(zip(models, measure(list(models.values()), raw,
                                             BenchOptions(batch_sizes=(BATCH,), warmup=3, seconds=args.seconds)),
                             strict=True))
            apps = time_end_to_end([Predictor.from_loaded(m) for m in models.values()], sample_photo(), 10,
                                   args.seconds)
            for key, app in zip(models, apps, strict=True):
                timed[key]["end_to_end"] = app
            torch_key = min(("torch eager", "torch eager channels_last"), key=lambda k: timed[k]["latency_ms"]["p50"])
            _print_model(name, models, timed, torch_key, options, not args.no_isolate)
            goals.append(_goals(name, timed, torch_key, limit))
        print("| model | ORT int8/fp32 b1 | b8 | OpenVINO int8/fp32 b1 | b8 | ExecuTorch int8/fp32 b1 | b8 | "
              "best int8 b8 / limit | fastest int8 / fastest fp32 b8 | fastest / torch eager b1 | "
              "ORT fp32 end to end / model b1 |")
        print("|---|" + "---:|" * 10)
        for row in goals:
            print(row)


def _print_model(name: str, models: dict[str, Loaded], timed: dict, torch_key: str, options: RuntimeOptions,
                 isolate: bool) -> None:
    print(f"### {name} at 224 (torch eager row: {torch_key.removeprefix('torch eager').strip() or 'NCHW'})\n")
    print("| variant | size | p50 ms b1 | vs torch eager b1 (95% interval) | img/s b8 | end to end p50 ms "
          "(decode + preprocess + inference + postprocess) |" + (" memory | cold start |" if isolate else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if isolate else ""))
    base = timed[torch_key]["round_p50_ms"]
    for key, loaded in models.items():
        t = timed[key]
        ratio = speed_ratio(t["round_p50_ms"], base)
        size = loaded.file.stat().st_size / 2**20
        extra = ""
        if isolate and not key.startswith("torch eager "):
            extra = f" {isolated(loaded, options)} |"
        elif isolate:
            extra = " - | - |"
        app = t["end_to_end"]
        split = " + ".join(f"{ms:.2f}" for ms in app["stages_ms"].values())
        print(f"| {key} | {size:.1f} MB | {t['latency_ms']['p50']:.2f} | {ratio.ratio:.2f}x "
              f"({ratio.low:.2f}-{ratio.high:.2f}) | {t['throughput'][str(BATCH)]:.0f} | {app['p50_ms']:.2f} "
              f"({app['p50_ms'] / t['latency_ms']['p50']:.2f}x: {split}) |{extra}", flush=True)
    print()


def _goals(name: str, timed: dict, torch_key: str, limit: float) -> str:
    b1 = {k: t["latency_ms"]["p50"] for k, t in timed.items()}
    b8 = {k: t["throughput"][str(BATCH)] for k, t in timed.items()}
    cells = []
    for engine in ENGINES:
        cells += [f"{b1[f'{engine} fp32'] / b1[f'{engine} int8']:.2f}x",
                  f"{b8[f'{engine} int8'] / b8[f'{engine} fp32']:.2f}x"]
    best = max(b8[f"{e} int8"] / b8[f"{e} fp32"] for e in ENGINES)
    int8 = max(v for k, v in b8.items() if "int8" in k)
    fp32 = max(v for k, v in b8.items() if k.endswith("fp32") or k.startswith("torch"))
    fastest = min(v for k, v in b1.items())
    return (f"| {name} | " + " | ".join(cells) + f" | {best / limit:.0%} | {int8 / fp32:.2f}x | "
            f"{b1[torch_key] / fastest:.2f}x | {timed['ORT fp32']['end_to_end']['p50_ms'] / b1['ORT fp32']:.2f}x |")


if __name__ == "__main__":
    main()
