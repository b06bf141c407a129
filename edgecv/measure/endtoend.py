"""End-to-end latency: what an app waits for, from a photo's encoded bytes to the label, through
:class:`edgecv.Predictor` on the session bench timed the model on, and where that time goes (decode,
preprocess, inference, postprocess).

The photo is a 640x480 JPEG (quality 90) of smooth shapes with sensor-like noise, so it decodes like a
typical camera frame rather than a flat test card. Calls are timed in interleaved rounds across variants as
the model itself is, with the same 95% bootstrap interval over rounds; the split comes from
:meth:`Predictor.predict_timed`, the same steps with a clock between them, run in each round beside the
plain calls. Torch-free.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from edgecv.core import stats
from edgecv.measure.timing import warm_up
from edgecv.serve.predictor import STAGES, Predictor

PHOTO_SIZE = (640, 480)  # (width, height) of the photo the app is handed
PHOTO_QUALITY = 90


def sample_photo(size: tuple[int, int] = PHOTO_SIZE, seed: int = 0) -> bytes:
    """A JPEG of ``size`` (width, height) that compresses and decodes like a photo: smooth colour regions and
    a little per-pixel noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=PHOTO_QUALITY)
    return buf.getvalue()


def describe(photo: bytes) -> str:
    """``"a 640x480 JPEG of 90 kB"``: what the photo is, for the method notes."""
    with Image.open(io.BytesIO(photo)) as img:
        w, h, kind = img.width, img.height, img.format
    return f"a {w}x{h} {kind} of {len(photo) / 1e3:.0f} kB"


@dataclass
class _Path:
    """One variant's app path and what its rounds measured."""

    predictor: Predictor
    calls: list[np.ndarray] = field(default_factory=list)  # per round: ns of each plain predict(photo)
    stages: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in STAGES})


def time_end_to_end(predictors: list[Predictor], photo: bytes, rounds: int, seconds: float, warmup: int = 3,
                    min_calls: int = 3, iters: int | None = None,
                    progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Each predictor's end-to-end latency on ``photo``: ``rounds`` interleaved rounds (shuffled order) of
    ``seconds / rounds`` per predictor (or ``iters`` calls over all rounds), half of it plain ``predict`` calls,
    half ``predict_timed`` for the split. One dict per predictor: ``p50_ms``/``p99_ms`` with 95% intervals and
    ``stages_ms`` (each stage's median)."""
    progress = progress or (lambda _msg: None)
    paths = [_Path(p) for p in predictors]
    for p in paths:
        warm_up(partial(p.predictor.predict, photo), warmup, seconds / rounds)
    rng = np.random.default_rng(1)
    slice_ns = 0 if iters else int(seconds / rounds * 1e9 / 2)
    least = max(min_calls, -(-iters // rounds)) if iters else min_calls
    for r in range(rounds):
        progress(f"end to end: round {r + 1}/{rounds}")
        for k in rng.permutation(len(paths)):
            _one_round(paths[k], photo, slice_ns, least)
    return [_summary(p) for p in paths]


def _one_round(p: _Path, photo: bytes, slice_ns: int, min_calls: int) -> None:
    clock, predict, times = time.perf_counter_ns, p.predictor.predict, []
    deadline = clock() + slice_ns
    while clock() < deadline or len(times) < min_calls:
        t0 = clock()
        predict(photo)
        times.append(clock() - t0)
    p.calls.append(np.asarray(times, dtype=np.float64))
    deadline, n = clock() + slice_ns, 0
    while clock() < deadline or n < min_calls:
        _, split = p.predictor.predict_timed(photo)
        for stage, ns in split.items():
            p.stages[stage].append(ns)
        n += 1


def _summary(p: _Path) -> dict[str, Any]:
    ci = stats.percentile_intervals([c / 1e6 for c in p.calls], (50, 99))
    return {"p50_ms": ci["p50"][0], "p50_ci_ms": [ci["p50"][1], ci["p50"][2]], "p99_ms": ci["p99"][0],
            "stages_ms": {s: float(np.median(v)) / 1e6 for s, v in p.stages.items()},
            "calls": int(sum(len(c) for c in p.calls))}
