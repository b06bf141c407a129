"""What the Predictor costs on top of ONNX Runtime, measured in one run for 28x28 and 32x32 models.

Batch 1: Predictor.predict p50 over a bare ``session.run`` p50 on the same image. The bare call gets the image
already normalised; "by hand" is the least an app does itself (normalise, run, argmax). The Predictor gets
the image as a uint8 array at the model's size (the goal: at most 1.2x), as PNG bytes, and as the 8x8 digit
it came from (resized by Pillow). All calls are interleaved round-robin, so drift on a shared machine hits
them alike. Batch 64: images/s of ``predict_batch`` over a bare run.

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
from edgecv.core.cpu import host_cpu
from edgecv.core.preprocess import to_model_input
from edgecv.data import load_dataset


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


def p50s_us(fns: dict, seconds: float) -> dict:
    """p50 of each call in microseconds, the calls run round-robin for ``seconds`` after a warm-up."""
    for fn in fns.values():
        for _ in range(50):
            fn()
    times: dict = {k: [] for k in fns}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for k, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn()
            times[k].append(time.perf_counter_ns() - t0)
    return {k: float(np.median(v)) / 1e3 for k, v in times.items()}


def row(name: str, tmp: Path, seconds: float) -> str:
    """One table row: bare session.run against Predictor on the same digits, batch 1 and 64."""
    path = export(name, tmp)
    predictor = Predictor(path)
    spec = predictor.spec
    session = predictor.session  # the same session and thread pool: only the Predictor's own work differs
    images = load_dataset("digits", spec.size[0]).test.x[:64, 0]  # uint8 digits at the model's size
    small = load_dataset("digits", 8).test.x[0, 0]  # the 8x8 image the first one was resized from
    png = io.BytesIO()
    Image.fromarray(images[0]).save(png, format="PNG")
    x1, x64 = to_model_input(images[:1, None], spec), to_model_input(images[:, None], spec)
    assert predictor.predict(images[0]).label == spec.labels[int(session.run(None, {"input": x1})[0].argmax())]
    mean, inv_std = np.float32(spec.mean[0]), np.float32(1 / spec.std[0])

    def by_hand() -> int:  # the least an app does itself: normalise the array, run, argmax
        x = ((images[0].astype(np.float32) * np.float32(spec.scale) - mean) * inv_std)[None, None]
        return int(session.run(None, {"input": x})[0].argmax())

    one = p50s_us({"bare": lambda: session.run(None, {"input": x1}), "by hand": by_hand,
                   "array": lambda: predictor.predict(images[0]),
                   "png": lambda: predictor.predict(png.getvalue()), "8x8": lambda: predictor.predict(small)},
                  seconds)
    batch = list(images)
    many = p50s_us({"bare": lambda: session.run(None, {"input": x64}),
                    "predict": lambda: predictor.predict_batch(batch)}, seconds)
    bare64, pred64 = 64e6 / many["bare"], 64e6 / many["predict"]
    c, (h, w) = spec.input_shape[0], spec.size
    cells = [name, f"{c}x{h}x{w}", f"{one['bare']:.1f} us"]
    for key in ("by hand", "array", "png", "8x8"):
        cells += [f"{one[key]:.1f} us", f"{one[key] / one['bare']:.2f}x"]
    cells += [f"{bare64:,.0f}", f"{pred64:,.0f}", f"{pred64 / bare64:.2f}x"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"{host_cpu().describe()}, onnxruntime {ort.__version__}")
    print("| model | input | bare run p50 | by hand p50 | vs bare | predict p50 (array) | vs bare | "
          "predict p50 (PNG bytes) | vs bare | predict p50 (8x8 array, resized) | vs bare | bare b64 img/s | "
          "predict_batch b64 img/s | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("cnn-tiny", "lenet5"):
            print(row(name, Path(tmp), args.seconds), flush=True)


if __name__ == "__main__":
    main()
