"""What the Predictor costs on top of ONNX Runtime: Predictor.predict p50 over a bare ``session.run`` p50 on
the same image at batch 1 (the bare call gets an input already decoded, resized and normalised), over the
least an app could write by hand (Pillow resize, numpy normalisation, run, argmax), and batch-64 images/s,
measured in one run for 28x28 and 32x32 models.

Usage: python benchmarks/predictor_overhead.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from edgecv import Predictor
from edgecv.cpu import host_cpu
from edgecv.data import load_dataset
from edgecv.preprocess import to_model_input


def export(name: str, tmp: Path) -> Path:
    """A zoo model trained one epoch on digits, as an edgecv ONNX file with its spec."""
    from edgecv.exporters import export_onnx, load_source
    from edgecv.train import TrainConfig, train

    run = tmp / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(TrainConfig(model=name, epochs=1, out=str(run)))
        export_onnx(load_source(run), run / "model.onnx")
    return run / "model.onnx"


def p50_ns(fn, seconds: float) -> float:
    for _ in range(20):
        fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times))


def row(name: str, tmp: Path, seconds: float) -> str:
    """One table row: bare session.run against Predictor on the same digits, batch 1 and 64."""
    path = export(name, tmp)
    predictor = Predictor(path)
    spec = predictor.spec
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    digits = load_dataset("digits", spec.size[0]).test.x  # already at the model's size
    native = load_dataset("digits", 8).test.x[:, 0]  # what an app hands over: 8x8 digit images
    png = io.BytesIO()
    Image.fromarray(native[0]).save(png, format="PNG")
    png_bytes, x1, x64, batch = png.getvalue(), to_model_input(digits[:1], spec), to_model_input(digits[:64], spec), \
        list(native[:64])
    bare1 = p50_ns(lambda: session.run(None, {"input": x1}), seconds)
    mean, std, (h, w) = np.float32(spec.mean[0]), np.float32(spec.std[0]), spec.size

    def minimal() -> int:  # the least an app can do by hand: Pillow resize, numpy normalise, run, argmax
        small = Image.fromarray(native[0], "L").resize((w, h), Image.Resampling.BILINEAR)
        x = ((np.asarray(small, np.float32) * np.float32(1 / 255) - mean) / std)[None, None]
        return int(session.run(None, {"input": x})[0].argmax())

    hand = p50_ns(minimal, seconds)
    pred_png = p50_ns(lambda: predictor.predict(png_bytes), seconds)
    pred_arr = p50_ns(lambda: predictor.predict(native[0]), seconds)
    bare64 = 64 / (p50_ns(lambda: session.run(None, {"input": x64}), seconds) / 1e9)
    pred64 = 64 / (p50_ns(lambda: predictor.predict_batch(batch), seconds) / 1e9)
    c = spec.input_shape[0]
    return (f"| {name} | {c}x{h}x{w} | {bare1 / 1e3:.1f} us | {hand / 1e3:.1f} us | {pred_png / 1e3:.1f} us | "
            f"{pred_png / bare1:.2f}x | {pred_arr / 1e3:.1f} us | {pred_arr / bare1:.2f}x | {pred_arr / hand:.2f}x | "
            f"{bare64:,.0f} | {pred64:,.0f} | {pred64 / bare64:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"{host_cpu().describe()}, onnxruntime {ort.__version__}")
    print("| model | input | bare run p50 | by hand p50 | predict p50 (PNG bytes) | vs bare | "
          "predict p50 (uint8 array) | vs bare | vs by hand | bare b64 img/s | predict_batch b64 img/s | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("cnn-tiny", "lenet5"):
            print(row(name, Path(tmp), args.seconds), flush=True)


if __name__ == "__main__":
    main()
