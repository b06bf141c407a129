"""int8 against fp32 on models that learnt something: torchvision classifiers at 224 trained from scratch on a
generated folder whose classes take learning (stripe orientation under random colours, periods, phases, noise
and an occluding patch), then quantised as edgecv writes the files, and each int8 file's top-1 agreement with
its engine's fp32 on the folder's test split, which no calibration ever saw (int8 calibrates on the train
split). Random weights would make this meaningless: an untrained net's top-1 is decided by noise-sized margins.

For each model: ``edgecv train --model torchvision:NAME --data folder:…``, ``edgecv export RUN`` (ONNX),
``edgecv quantize RUN --method int8-static`` (ONNX Runtime's file), ``edgecv quantize RUN --tune-for openvino``
and ``edgecv export RUN --format executorch`` (fp32 and int8 ``.pte``). Printed: fp32 test accuracy, then for
each engine the int8 file's agreement with fp32 and its accuracy, with the number of test images.

Usage: python benchmarks/int8_agreement.py [--models resnet18,mobilenet_v3_large,efficientnet_b0] [--epochs 10]
       [--per-class 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from edgecv.core.cpu import host_cpu
from edgecv.measure.evaluate import evaluate
from edgecv.runtimes import RuntimeOptions

MODELS = "resnet18,mobilenet_v3_large,efficientnet_b0"
ANGLES = (0, 45, 90, 135)  # one class per stripe orientation
SPLITS = {"train": 1.0, "val": 0.25, "test": 0.5}  # images per class, as a share of --per-class
FILES = (("ONNX Runtime", "model.onnx", "model.int8.onnx", "onnxruntime"),
         ("OpenVINO", "model.onnx", "model.int8-openvino.onnx", "openvino"),
         ("ExecuTorch", "model.pte", "model.int8.pte", "onnxruntime"))


def stripes(angle: int, rng: np.random.Generator, size: int = 256) -> Image.Image:
    """Stripes at ``angle`` degrees with a random period, phase and pair of colours, blurred, noised and
    partly covered by a patch of another colour."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = np.deg2rad(angle + rng.uniform(-8, 8))
    period = rng.uniform(10, 28)
    wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 2 * np.pi))
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = (wave[..., None] > 0) * a + (wave[..., None] <= 0) * b + rng.normal(0, 18, (size, size, 3))
    x0, y0 = rng.integers(0, size - 64, 2)
    w, h = rng.integers(24, 96, 2)
    img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return pil.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))


def folder(root: Path, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, share in SPLITS.items():
        for angle in ANGLES:
            (root / split / f"deg{angle}").mkdir(parents=True)
            for i in range(max(2, int(per_class * share))):
                stripes(angle, rng).save(root / split / f"deg{angle}" / f"{i}.jpg", quality=92)
    return root


def edgecv(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgecv", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"edgecv {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def files_for(name: str, data: Path, work: Path, epochs: int) -> Path:
    run = work / name
    # batches of 8: 30 steps an epoch on 240 images, enough to learn the stripes from random weights in 10
    edgecv("train", "--model", f"torchvision:{name}", "--data", f"folder:{data}", "--epochs", str(epochs),
           "--batch-size", "8", "--out", str(run), "--optimizer", "adamw", "--lr", "0.001",
           "--schedule", "one-cycle", "--overwrite")
    edgecv("export", str(run), "--format", "onnx")
    edgecv("quantize", str(run), "--method", "int8-static", "--speed-batch", "8")
    edgecv("quantize", str(run), "--tune-for", "openvino", "--speed-batch", "8")
    edgecv("export", str(run), "--format", "executorch")
    return run


def agreement_row(name: str, run: Path) -> str:
    cells, fp32_acc, n = [], None, 0
    for _, fp32, int8, runtime in FILES:
        options = RuntimeOptions(runtime=runtime)
        ref, low = evaluate(run / fp32, options), evaluate(run / int8, options)
        agree = float(np.mean(ref.probs.argmax(1) == low.probs.argmax(1)))
        fp32_acc = fp32_acc if fp32_acc is not None else ref.metrics["accuracy"]
        n = ref.metrics["num_samples"]
        cells.append(f"{agree:.1%} ({low.metrics['accuracy']:.1%})")
    chance = " (near chance: the agreement means nothing)" if fp32_acc < 1.5 / len(ANGLES) else ""
    return f"| {name} | {n} | {fp32_acc:.1%}{chance} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=60, help="training images per class")
    parser.add_argument("--keep", type=Path, default=None, help="keep the folder and run directories here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        data = work / "stripes"
        if not data.is_dir():
            folder(data, args.per_class)
        print(f"{host_cpu().describe()}; {len(ANGLES)} classes, {args.per_class} training images each, "
              f"{args.epochs} epochs from random weights\n")
        print("| model | test images | fp32 accuracy | " + " | ".join(
            f"{engine} int8 agreement (accuracy)" for engine, *_ in FILES) + " |")
        print("|---|---:|---:|" + "---:|" * len(FILES))
        for name in args.models.split(","):
            print(agreement_row(name, files_for(name, data, work, args.epochs)), flush=True)


if __name__ == "__main__":
    main()
