"""`edgecv profile`: where each model file spends its time, layer by layer, from the engine's own per-layer
timing (ONNX Runtime's profiler, OpenVINO's performance counters), several files side by side (typically fp32
against int8), so "why is my int8 model slower?" has an answer.

Every kernel an engine ran is attributed to a layer of the file's own graph (see :mod:`edgecv.measure.layers`),
so ``/layer1/layer1.0/conv1/Conv`` of the fp32 file and its QLinearConv in the int8 file land in one row.
Quantise/dequantise steps and layout changes are lines of their own: they are the price of int8 and of the
fast kernels, not the work of any layer. Torch-free.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.facts import Stated
from edgecv.core.preprocess import to_model_input
from edgecv.measure.layers import LayerNamer
from edgecv.runtimes import RuntimeOptions, load_model

# what converts between precisions: ONNX's and ONNX Runtime's ops, OpenVINO's FakeQuantize and Convert
PRECISION_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast", "FakeQuantize",
                           "Convert"})
# what only moves data into another memory layout: ONNX Runtime's NCHWc reorders, OpenVINO's Reorder
LAYOUT_OPS = frozenset({"Transpose", "ReorderInput", "ReorderOutput", "Reorder"})
PRECISION, LAYOUT = "quantise / dequantise / cast", "layout changes"  # the overhead lines' names

Kernel = tuple[str, str, float]  # (the engine's node name, its op type, µs summed over the counted runs)


@dataclass
class FileProfile:
    """One file's kernel time per run (µs), by layer and by op type, and its total."""

    file: str
    runtime: str
    precision: str
    batch: int
    runs: int
    total_us: float
    layers: dict[str, float]  # layer (a node of the file's graph) -> µs per run
    layer_ops: dict[str, str]  # layer -> the op type that ran most of its time
    op_types: dict[str, float]  # op type -> µs per run
    overhead: dict[str, float]  # PRECISION / LAYOUT -> µs per run


@dataclass
class LayerRow:
    """One layer (or op type, or overhead line) across the files: µs per run in each, and each file against the
    first."""

    layer: str
    op: str
    us: list[float | None]
    ratio: list[float | None]  # time in file k / time in file 0 (above 1: slower than the first)
    excess_us: float  # the most time any later file spends beyond the first on this layer


@dataclass
class ProfileReport:
    """Files side by side: per-file totals, the layers ranked with those the later files lose most on first,
    op types, and the overhead lines."""

    files: list[FileProfile]
    layers: list[LayerRow] = field(default_factory=list)
    op_types: list[LayerRow] = field(default_factory=list)
    overhead: list[LayerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ort_kernels(trace: list[dict[str, Any]], runs: int) -> tuple[list[Kernel], int]:
    """Kernel µs per node over the last ``runs`` runs of an ONNX Runtime profile trace (what ran before them,
    warm-up and any probe, is left out), and the number of runs counted."""
    starts = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run")
    if not starts:
        raise EdgecvError("ONNX Runtime's profile holds no runs")
    runs = min(runs, len(starts))
    since = starts[-runs]
    summed: dict[tuple[str, str], float] = defaultdict(float)
    for e in trace:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time") and e.get("ts", 0) >= since:
            summed[name[: -len("_kernel_time")], e.get("args", {}).get("op_name", "?")] += float(e.get("dur", 0))
    return [(node, op, us) for (node, op), us in summed.items()], runs


class _Timed:
    """One file loaded with the engine's per-layer timing on, its input ready, and its kernels as they come."""

    def __init__(self, path: Path, options: RuntimeOptions, batch: int, facts: Stated | None, trace_prefix: str):
        self.path, self.runtime = path, options.runtime
        self.loaded = load_model(path, replace(options, profile_prefix=trace_prefix), facts)
        if self.loaded.format not in ("onnx", "openvino"):
            raise ModelError(f"edgecv profile times ONNX files' layers; {path.name} is a {self.loaded.format} file "
                             "(export it first: edgecv export RUN_DIR --format onnx)")
        c, h, w = self.loaded.spec.input_shape
        self.batch = self.loaded.fixed_batch or batch
        raw = np.random.default_rng(0).integers(0, 256, (self.batch, c, h, w), dtype=np.uint8)
        self.prepared = self.loaded.prepare(to_model_input(raw, self.loaded.spec))
        self.summed: dict[tuple[str, str], float] = defaultdict(float)  # OpenVINO's counters, over counted runs

    def run(self, counted: bool) -> None:
        request = self.loaded.run_prepared(self.prepared)
        if counted and self.runtime == "openvino":
            for info in request.profiling_info:  # the counters of this one inference
                if str(info.status).endswith("EXECUTED"):
                    self.summed[info.node_name, info.node_type] += info.real_time.total_seconds() * 1e6

    def kernels(self, runs: int) -> tuple[list[Kernel], int]:
        if self.runtime == "openvino":
            return [(node, op, us) for (node, op), us in self.summed.items()], runs
        trace = json.loads(Path(self.loaded.handle.end_profiling()).read_text())
        return ort_kernels(trace, runs)


def _tabulate(path: Path, runtime: str, precision: str, batch: int, kernels: list[Kernel],
              counted: int) -> FileProfile:
    """Kernel times summed per layer, per op type and per overhead line, per run."""
    namer = LayerNamer.of(path)
    layers: dict[str, float] = defaultdict(float)
    layer_op: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    op_types: dict[str, float] = defaultdict(float)
    overhead = {PRECISION: 0.0, LAYOUT: 0.0}
    for node, op, us in kernels:
        per_run = us / counted
        op_types[op] += per_run
        if op in PRECISION_OPS:
            overhead[PRECISION] += per_run
        elif op in LAYOUT_OPS:
            overhead[LAYOUT] += per_run
        else:
            layer = namer.layer(node)
            layers[layer] += per_run
            layer_op[layer][op] += per_run
    ops = {layer: max(by_op, key=by_op.__getitem__) for layer, by_op in layer_op.items()}
    return FileProfile(file=str(path), runtime=runtime, precision=precision, batch=batch, runs=counted,
                       total_us=float(sum(op_types.values())), layers=dict(layers), layer_ops=ops,
                       op_types=dict(op_types), overhead=overhead)


def profile(paths: list[Path], options: RuntimeOptions | None = None, *, batch: int = 1, runs: int = 50,
            warmup: int = 5, facts: Stated | None = None,
            progress: Callable[[str], None] | None = None) -> ProfileReport:
    """Profile each file and line them up against the first: layers ranked by the time later files lose on
    them (the layers where int8 loses first), op types, and the quantise/dequantise and layout overhead."""
    if not paths:
        raise EdgecvError("edgecv profile needs at least one ONNX file")
    if batch < 1 or runs < 1 or warmup < 0:
        raise EdgecvError("--batch and --runs must be at least 1, --warmup at least 0")
    options = options or RuntimeOptions()
    progress = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="edgecv-profile-") as folder:
        timed = [_Timed(Path(p), options, batch, facts, str(Path(folder) / str(i))) for i, p in enumerate(paths)]
        for i in range(warmup + runs):  # the files take turns, so drift on the host hits them alike
            progress(f"profiling {len(timed)} file(s) on {options.runtime} at batch {batch}: run {i + 1} of "
                     f"{warmup + runs}")
            for t in timed:
                t.run(counted=i >= warmup)
        files = [_tabulate(t.path, t.runtime, t.loaded.precision, t.batch, *t.kernels(runs)) for t in timed]
    report = ProfileReport(files=files)
    report.layers = _rows([f.layers for f in files], _op_names(files))
    report.layers.sort(key=lambda r: (-r.excess_us, -(r.us[0] or 0.0)))
    report.op_types = sorted(_rows([f.op_types for f in files], {}), key=lambda r: -max(u or 0.0 for u in r.us))
    report.overhead = _rows([f.overhead for f in files], {})
    unmatched = sum(1 for r in report.layers if any(u is None for u in r.us))
    if len(files) > 1 and unmatched:
        report.notes.append(f"{unmatched} layer(s) ran in only some of the files (fused into a neighbour, or "
                            "not in the other graph): their rows have a gap")
    return report


def _op_names(files: list[FileProfile]) -> dict[str, str]:
    """Each layer's op type, as the last file that ran it names it (the int8 file's QLinearConv, say)."""
    ops: dict[str, str] = {}
    for f in files:
        ops.update(f.layer_ops)
    return ops


def _rows(tables: list[dict[str, float]], ops: dict[str, str]) -> list[LayerRow]:
    keys = list(dict.fromkeys(k for table in tables for k in table))
    rows = []
    for key in keys:
        us = [table.get(key) for table in tables]
        base = us[0]
        ratio = [None if u is None or not base else u / base for u in us]
        excess = max([(u or 0.0) - (base or 0.0) for u in us[1:]], default=0.0)
        rows.append(LayerRow(layer=key, op=ops.get(key, key), us=us, ratio=ratio, excess_us=excess))
    return rows
