"""Which int8 flavour is fastest on this CPU, and which keeps accuracy: the measurement behind
``edgecv quantize``'s per-CPU default.

For ResNet-20 trained on digits (accuracy is real) and a ResNet-18 for 32x32 CIFAR-size inputs (random
weights, timing only), it writes QDQ int8 models with uint8 or int8 activations and weights, with and without
7-bit weights (reduce_range), and prints batch-1 p50 latency under ONNX Runtime's CPU provider as a ratio to
fp32 measured in the same run, plus test accuracy; ResNet-20's int8-dynamic and fp16 variants are timed
alongside. Variants are timed in interleaved rounds so drift hits
them all alike.

On a 2-core AMD EPYC without VNNI (AVX2), ONNX Runtime 1.32, batch 1:
ResNet-20: fp32 0.99 ms; U8S8 1.38x faster but 86.4% accuracy (16-bit saturation); U8S8 + reduce_range 1.39x
faster at full accuracy (99.72%); S8S8 0.55x; U8U8 0.92x; int8-dynamic 0.13x; fp16 0.97x (torch eager fp16:
23x slower than fp32). ResNet-18 (CIFAR stem): fp32 9.2 ms; U8S8 + reduce_range 1.55x faster; S8S8 0.77x.

Usage: python benchmarks/quantize_flavours.py [--run RUN_DIR] [--seconds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecv.core.cpu import host_cpu
from edgecv.quantize import QuantizeOptions, quantize
from edgecv.quantize import methods as m

FLAVOURS = [  # (label, activation, weight, reduce_range)
    ("U8S8", "uint8", "int8", False),
    ("U8S8 reduce_range", "uint8", "int8", True),
    ("S8S8", "int8", "int8", False),
    ("U8U8", "uint8", "uint8", False),
]


def resnet20_run(out: Path) -> Path:
    """Train edgecv's ResNet-20 on digits and export it: a real model with real accuracy."""
    from edgecv.exporters import export_onnx, load_source
    from edgecv.train import TrainConfig, train

    train(TrainConfig(model="resnet", out=str(out)))
    export_onnx(load_source(out), out / "model.onnx")
    return out / "model.onnx"


def resnet18_cifar(out: Path) -> Path:
    """torchvision's ResNet-18 with the usual CIFAR stem (3x3 stride-1 conv, no max-pool), 3x32x32 input."""
    import torch
    from torchvision.models import resnet18

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript-based exporter
    torch.manual_seed(0)
    net = resnet18(num_classes=10)
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = torch.nn.Identity()
    net.eval()
    torch.onnx.export(net, (torch.randn(2, 3, 32, 32),), str(out), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return out


def p50_ms(sessions: dict[str, ort.InferenceSession], x: np.ndarray, seconds: float) -> dict[str, float]:
    """Median batch-1 latency per session, timed in interleaved rounds after a warm-up."""
    times: dict[str, list[int]] = {k: [] for k in sessions}
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(30):
            s.run(None, feeds[k])
    end = time.perf_counter() + seconds * len(sessions)
    while time.perf_counter() < end:
        for k, s in sessions.items():
            for _ in range(20):
                t0 = time.perf_counter_ns()
                s.run(None, feeds[k])
                times[k].append(time.perf_counter_ns() - t0)
    return {k: float(np.median(v)) / 1e6 for k, v in times.items()}


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def bench_resnet20(tmp: Path, run: Path | None, seconds: float) -> None:
    run = run or resnet20_run(tmp / "resnet20").parent
    src = run / "model.onnx"
    paths, acc = {"fp32": src}, {}
    for label, act, weight, rr in FLAVOURS:
        out = tmp / label.replace(" ", "-")
        report = quantize(src, QuantizeOptions(methods=("int8-static",), activation_type=act, weight_type=weight,
                                               reduce_range=rr, out_dir=out))
        paths[label] = Path(report.results[0].file)
        acc[label] = report.results[0].test_accuracy
        acc["fp32"] = report.source["test_accuracy"]
    others = quantize(src, QuantizeOptions(methods=("int8-dynamic", "fp16"), out_dir=tmp / "others"))
    for result in others.results:
        paths[result.method] = Path(result.file)
        acc[result.method] = result.test_accuracy
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    lat = p50_ms({k: session(p) for k, p in paths.items()}, x, seconds)
    print_table("ResNet-20 on digits (trained), batch 1", lat, acc)
    print(f"torch eager, batch 8: float16 takes {torch_fp16_ratio(run):.1f}x as long as float32 on this CPU")


def print_table(title: str, lat: dict[str, float], acc: dict[str, float] | None = None) -> None:
    """A Markdown table of p50 latency and speed-up against fp32 per variant, with test accuracy if known."""
    print(f"\n{title}")
    print("| variant | p50 ms | speed-up vs fp32 |" + (" test accuracy |" if acc else ""))
    print("|---|---:|---:|" + ("---:|" if acc else ""))
    for k in lat:
        print(f"| {k} | {lat[k]:.3f} | {lat['fp32'] / lat[k]:.2f}x |" + (f" {acc[k]:.2%} |" if acc else ""))


def torch_fp16_ratio(run: Path, batch: int = 8, reps: int = 5) -> float:
    """How much slower torch eager runs the same ResNet-20 in float16 than in float32 on this CPU."""
    import torch

    from edgecv.exporters import load_source

    model = load_source(run).model.eval()
    x = torch.randn(batch, 1, 32, 32)

    def per_call(net: torch.nn.Module, inp: torch.Tensor) -> float:
        with torch.no_grad():
            net(inp)
            start = time.perf_counter()
            for _ in range(reps):
                net(inp)
        return (time.perf_counter() - start) / reps

    fp32 = per_call(model, x)
    return per_call(model.half(), x.half()) / fp32


def bench_resnet18(tmp: Path, seconds: float) -> None:
    src = resnet18_cifar(tmp / "resnet18.onnx")
    prepared = tmp / "resnet18.prepared.onnx"
    from onnxruntime.quantization import quant_pre_process

    quant_pre_process(str(src), str(prepared))
    calib = np.random.default_rng(1).standard_normal((64, 3, 32, 32)).astype(np.float32)
    paths = {"fp32": src}
    for label, act, weight, rr in FLAVOURS:
        out = tmp / f"resnet18-{label.replace(' ', '-')}.onnx"
        settings = m.Int8Settings(act, weight, rr, True, "minmax", len(calib))
        m.int8_static(prepared, out, settings, m.calibration_reader("input", calib, None), tmp / "r18-cache.json")
        paths[label] = out
    x = calib[:1]
    lat = p50_ms({k: session(p) for k, p in paths.items()}, x, seconds)
    print_table("ResNet-18 (CIFAR stem, 3x32x32, random weights), batch 1", lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing resnet run directory with model.onnx")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per variant")
    args = parser.parse_args()
    cpu = host_cpu()
    print(f"{cpu.describe()}, onnxruntime {ort.__version__}; edgecv's default here: {m.default_flavour(cpu)}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_resnet20(Path(tmp), args.run, args.seconds)
        bench_resnet18(Path(tmp), args.seconds)


if __name__ == "__main__":
    main()
