"""Small fp32 models at batch 1 against the least any ONNX Runtime call costs on this host, as ratios measured
in one run.

The floor is session.run on an empty graph (one Identity node on a 1x1x32x32 input). Each preset (random
weights: speed does not depend on them) runs its fp32 ONNX file with the default session options, with one
intra-op thread, and through IO binding; every p50 is printed as a multiple of the floor. All sessions are timed
in interleaved rounds. The last columns count the kernels ONNX Runtime runs per call (from its profiler) and
what each costs on average above the floor: on small models that per-kernel cost, not arithmetic, sets the
latency.

Usage: python benchmarks/fp32_floor.py [--models mlp,lenet5,cnn-tiny,cnn-bn] [--seconds 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from inference import variants  # benchmarks/inference.py: the fp32 file of a zoo model
from onnx import TensorProto, helper
from ort_profile import kernel_times

from edgecv.core.cpu import host_cpu
from edgecv.runtimes import RuntimeOptions


def _empty(path: Path) -> Path:
    shape = [1, 1, 32, 32]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "empty",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _calls(session: ort.InferenceSession, x: np.ndarray, bound: bool):
    """A zero-argument call: session.run, or run_with_iobinding on a preallocated binding."""
    name = session.get_inputs()[0].name
    if not bound:
        return lambda: session.run(None, {name: x})
    binding = session.io_binding()
    binding.bind_cpu_input(name, x)
    binding.bind_output(session.get_outputs()[0].name)
    return lambda: session.run_with_iobinding(binding)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet5,cnn-tiny,cnn-bn")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per call kind")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kernels: dict[str, int] = {}
        calls = {"floor": _calls(_session(_empty(Path(tmp) / "empty.onnx")),
                                 np.zeros((1, 1, 32, 32), np.float32), False)}
        for name in args.models.split(","):
            _, fp32, _ = variants(name, Path(tmp), RuntimeOptions())
            x = np.random.default_rng(0).standard_normal((1, *fp32.spec.input_shape)).astype(np.float32)
            kernels[name] = len(kernel_times(fp32.file, x, 5, RuntimeOptions()))
            calls[f"{name} default"] = _calls(_session(fp32.file), x, False)
            calls[f"{name} 1 thread"] = _calls(_session(fp32.file, 1), x, False)
            calls[f"{name} IO binding"] = _calls(_session(fp32.file), x, True)
        times: dict[str, list[int]] = {k: [] for k in calls}
        for call in calls.values():
            for _ in range(20):
                call()
        for _ in range(args.rounds):
            for key, call in calls.items():
                deadline = time.perf_counter() + args.seconds / args.rounds
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter_ns()
                    call()
                    times[key].append(time.perf_counter_ns() - t0)
    floor = float(np.median(times["floor"]))
    print(f"{host_cpu().describe()}, onnxruntime {ort.__version__}; floor (empty-graph session.run) "
          f"p50 {floor / 1e3:.1f} us")
    print("| model | default p50 | x floor | 1 thread | x floor | IO binding | x floor | kernels | us per kernel |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        cells = []
        for kind in ("default", "1 thread", "IO binding"):
            p50 = float(np.median(times[f"{name} {kind}"]))
            cells += [f"{p50 / 1e3:.1f} us", f"{p50 / floor:.2f}x"]
        above = (float(np.median(times[f"{name} default"])) - floor) / 1e3 / kernels[name]
        cells += [str(kernels[name]), f"{above:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
