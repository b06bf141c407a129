"""How close edgecv's int8 gets to what this CPU's int8 kernels allow, as ratios measured in one run.

The host's limit is ONNX Runtime's own u8 x s8 GEMM against its fp32 GEMM: MatMulInteger against MatMul on
1024 x 1024 matrices, same session options and threads, interleaved. For each preset (random weights: speed
does not depend on them), the static int8 file (QDQ, the host's default flavour) against fp32 at batch 1 (p50
latency) and at batch 64 (images/s), each also as a fraction of that limit.

The last column is the ceiling ONNX Runtime's own convolution kernels set: from its profiler, at batch 64, the
time of the fp32 model's Conv kernels over that of the int8 model's QLinearConv kernels, as a fraction of the
limit. The other nodes (pooling, quantise, layout changes, residual adds) take about as long in int8 as in
fp32 together, so a model lands near its convolutions' figure whatever the graph around them.

Usage: python benchmarks/int8_limit.py [--models resnet,vgg,mobilenet-v2] [--seconds 1] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from inference import variants  # benchmarks/inference.py: fp32 and int8 files of a zoo model
from onnx import TensorProto, helper, numpy_helper
from ort_profile import kernel_times, op_total

from edgecv.core.cpu import host_cpu
from edgecv.measure.bench import BenchOptions
from edgecv.measure.timing import measure
from edgecv.runtimes import RuntimeOptions
from edgecv.runtimes.ort import session_options

N = 1024


def _gemm_model(path: Path, integer: bool) -> Path:
    """A one-node graph: A (input) times a constant B, fp32 MatMul or u8 x s8 MatMulInteger."""
    rng = np.random.default_rng(0)
    if integer:
        b = numpy_helper.from_array(rng.integers(-127, 128, (N, N), dtype=np.int8), "B")
        zp_a = numpy_helper.from_array(np.array(128, np.uint8), "za")
        zp_b = numpy_helper.from_array(np.array(0, np.int8), "zb")
        node = helper.make_node("MatMulInteger", ["A", "B", "za", "zb"], ["Y"])
        inits, a_type, y_type = [b, zp_a, zp_b], TensorProto.UINT8, TensorProto.INT32
    else:
        b = numpy_helper.from_array(rng.standard_normal((N, N)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        inits, a_type, y_type = [b], TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_type, [N, N])],
                              [helper.make_tensor_value_info("Y", y_type, [N, N])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def host_limit(tmp: Path, options: RuntimeOptions, seconds: float, rounds: int = 10) -> tuple[float, float, float]:
    """(limit, fp32 GFLOP/s, int8 GOP/s): the u8 x s8 GEMM's speed over the fp32 GEMM's, interleaved rounds."""
    rng = np.random.default_rng(1)
    feeds = {False: {"A": rng.standard_normal((N, N)).astype(np.float32)},
             True: {"A": rng.integers(0, 256, (N, N), dtype=np.uint8)}}
    sessions = {k: ort.InferenceSession(str(_gemm_model(tmp / f"gemm{int(k)}.onnx", k)), session_options(options),
                                        providers=["CPUExecutionProvider"]) for k in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    for s in sessions:
        for _ in range(3):
            sessions[s].run(None, feeds[s])
    for r in range(rounds):
        for k in ((False, True) if r % 2 == 0 else (True, False)):
            deadline = time.perf_counter() + seconds / rounds
            while True:
                t0 = time.perf_counter()
                sessions[k].run(None, feeds[k])
                times[k].append(time.perf_counter() - t0)
                if time.perf_counter() > deadline:
                    break
    fp32, int8 = (float(np.median(times[k])) for k in (False, True))
    ops = 2 * N**3
    return fp32 / int8, ops / fp32 / 1e9, ops / int8 / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,cnn-bn,vgg,resnet,mobilenet-v2")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per variant and batch size")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    options = RuntimeOptions(threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        limit, gflops, gops = host_limit(Path(tmp), options, max(args.seconds, 1.0))
        print(f"{host_cpu().describe()}, onnxruntime {ort.__version__}, threads: {args.threads or 'default'}")
        print(f"host limit: u8 x s8 MatMulInteger {gops:.1f} GOP/s vs fp32 MatMul {gflops:.1f} GFLOP/s "
              f"(n={N}) = {limit:.2f}x")
        print("| model | int8/fp32 b1 (p50) | of limit | int8/fp32 b64 (img/s) | of limit | "
              "conv kernels int8/fp32 b64 | of limit |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        opts = BenchOptions(batch_sizes=(1, 64), warmup=10, seconds=args.seconds)
        for name in args.models.split(","):
            _, fp32, int8 = variants(name, Path(tmp), options)
            raw = np.random.default_rng(2).integers(0, 256, (64, *fp32.spec.input_shape), dtype=np.uint8)
            f, i = measure([fp32, int8], raw, opts)  # interleaved rounds: drift hits both alike
            b1 = f["latency_ms"]["p50"] / i["latency_ms"]["p50"]
            b64 = i["throughput"]["64"] / f["throughput"]["64"]
            x = ((raw.astype(np.float32) - 128) / 64)  # the kernels' speed does not depend on the values
            conv = (op_total(kernel_times(fp32.file, x, 30, options), "Conv", "FusedConv")
                    / op_total(kernel_times(int8.file, x, 30, options), "QLinearConv"))
            print(f"| {name} | {b1:.2f}x | {b1 / limit:.0%} | {b64:.2f}x | {b64 / limit:.0%} | {conv:.2f}x | "
                  f"{conv / limit:.0%} |", flush=True)


if __name__ == "__main__":
    main()
