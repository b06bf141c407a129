"""Per-kernel times from ONNX Runtime's own profiler, for the benchmarks that explain where a model's time goes.

The profiler adds a few microseconds to every kernel, so its times serve for ratios between kernels of
comparable count (int8 convolutions against fp32 ones) and for counting kernels, not as latencies.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecv.runtimes import RuntimeOptions
from edgecv.runtimes.ort import session_options


def kernel_times(path: Path, x: np.ndarray, runs: int, options: RuntimeOptions) -> dict[tuple[str, str], float]:
    """(op type, node name) -> median microseconds per run of that kernel, over ``runs`` profiled runs (the
    median keeps the first, cold runs out)."""
    so = session_options(options)
    with tempfile.TemporaryDirectory() as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            durations[(event["args"].get("op_name", "?"), event["name"][: -len("_kernel_time")])].append(event["dur"])
    return {key: float(np.median(d)) for key, d in durations.items()}


def op_total(times: dict[tuple[str, str], float], *ops: str) -> float:
    """Microseconds per run spent in kernels of the given op types."""
    return sum(us for (op, _), us in times.items() if op in ops)
