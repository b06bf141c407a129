"""Does a quantised file pay on this host? Each file timed against its fp32 source in interleaved rounds at one
batch size (64 unless asked otherwise); one slower beyond noise gets a note saying the method does not pay for
this model on this CPU, and one no faster beyond noise a note saying it saves size, not time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core import stats
from edgecv.measure.timing import measure
from edgecv.measure.types import BenchOptions
from edgecv.measure.verdicts import profile_command


def check_speed(load: Callable[[Path], Any], input_shape: Sequence[int], batch: int, source: Path,
                results: list[Any], seconds: float = 0.3) -> None:
    """Fill each result's ``speed`` (images/s against fp32 at ``batch``) and add the note when the file is slower
    than fp32 beyond noise. ``load`` opens a model file with the job's spec."""

    loaded = [load(source)] + [load(Path(r.file)) for r in results]
    raw = np.random.default_rng(0).integers(0, 256, (batch, *input_shape), dtype=np.uint8)  # speed only
    # three warm-up and three timed calls a round at least: a 224 model at batch 8 takes tens of ms a call, and
    # with one of each its first, slower calls decided the ratio (mobilenet_v3_large int8: 1.10x as fast as
    # fp32 measured so, 0.89x in benchmarks/real_size.py's rounds)
    timed = measure(loaded, raw, BenchOptions(batch_sizes=(batch,), warmup=3, seconds=seconds, rounds=5,
                                              latency=False, min_calls=3))
    key = str(batch)
    fp32 = timed[0]
    for r, t in zip(results, timed[1:], strict=True):
        ratio = t["throughput"][key] / fp32["throughput"][key]
        slower = stats.below(t["throughput_ci"][key], fp32["throughput_ci"][key])
        r.speed = {"batch": batch, "vs_fp32": ratio, "images_per_s": t["throughput"][key],
                   "fp32_images_per_s": fp32["throughput"][key], "slower_beyond_noise": slower,
                   "faster_beyond_noise": stats.below(fp32["throughput_ci"][key], t["throughput_ci"][key])}
        layers = profile_command(source.name, Path(r.file).name, batch)
        if slower:
            r.notes.append(f"runs {ratio:.2f}x as fast as fp32 at batch {batch} on this CPU, slower beyond noise: "
                           f"{r.method} does not pay for this model here; keep fp32 for speed "
                           f"({layers} shows the layers it loses on)")
        elif not r.speed["faster_beyond_noise"]:
            r.notes.append(f"runs {ratio:.2f}x as fast as fp32 at batch {batch} on this CPU, not faster beyond noise: "
                           f"{r.method} saves size ({source.stat().st_size / 1e6:.1f} MB -> "
                           f"{r.size_bytes / 1e6:.1f} MB), not time, for this model here ({layers} shows why)")
