"""Does a memory probe forked from the probe server measure what a probe in a new interpreter does, and what
does each cost? For every model file of a run directory: the model's memory (peak resident memory of loading it
and running batch 1, less the baseline), the largest batch's, the load and first-run times, and the wall time of
the whole probe, each the median of several probes of each kind, taken in alternation.

Usage: python benchmarks/memprobe_fork.py [RUN_DIR] [--repeats 5] (default RUN_DIR: runs/demo-study/cnn-bn,
which make demo writes)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from edgecv.core.cpu import host_cpu
from edgecv.measure.bench import variants_in
from edgecv.measure.memprobe import measure_isolated
from edgecv.runtimes import RuntimeOptions, load_model, runtime_for

MB = 2**20


def _probe(path: Path, shape: tuple[int, ...], fork: bool) -> tuple[float, ...]:
    start = time.perf_counter()
    p = measure_isolated(path, {"provider": "cpu"}, shape, "float32", 1, 64, fork=fork)
    return (p["model_bytes"] / MB, p["big_batch_bytes"] / MB, p["load_ms"], p["first_run_ms"],
            time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo-study/cnn-bn")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    run = Path(args.run_dir)
    if not (run / "model.onnx").is_file():
        print(f"{run} holds no model.onnx: run make demo first, or name a run directory", file=sys.stderr)
        return 2
    shape = tuple(load_model(run / "model.onnx", RuntimeOptions()).spec.input_shape)
    print(f"{host_cpu().describe()}; {args.repeats} probes of each kind per file, alternating; medians")
    print(f"{'file':24s} {'probe':11s} {'model MB':>9s} {'batch 64 MB':>12s} {'load ms':>8s} {'first ms':>9s} "
          f"{'wall s':>7s}")
    for path in variants_in(run):
        if runtime_for(path) == "executorch":
            continue
        _probe(path, shape, True)  # starts this runtime's server: not a probe to count
        found: dict[bool, list[tuple[float, ...]]] = {True: [], False: []}
        for _ in range(args.repeats):
            for fork in (False, True):
                found[fork].append(_probe(path, shape, fork))
        for fork in (False, True):
            m = np.median(np.array(found[fork]), axis=0)
            print(f"{path.name:24s} {'forked' if fork else 'interpreter':11s} {m[0]:9.2f} {m[1]:12.2f} {m[2]:8.1f} "
                  f"{m[3]:9.2f} {m[4]:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
