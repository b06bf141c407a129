"""Predictor: classify images in your own app with an edgecv ONNX file. numpy, onnxruntime and Pillow only.

Everything it needs comes from the model file's ModelSpec: labels, input size, colour mode, resizing (straight
or shorter side and centre crop) and interpolation, channel order, normalisation and layout. One ONNX Runtime
session is shared by every call, and calls are thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import MissingSpecError, ModelError
from edgecv.core.facts import Stated
from edgecv.core.imageio import MAX_PIXELS, chw, decoded, frame, open_image, ready_pixels, to_pixels
from edgecv.core.outputs import softmax
from edgecv.core.preprocess import input_table, normalise, normalise_into
from edgecv.core.spec import ModelSpec
from edgecv.runtimes import Loaded, RuntimeOptions, load_model, runtime_for

_ORT_TYPES = {"float32": "float", "uint8": "uint8"}
_NUMPY_FROM = 64  # classes from which softmax and top-k run in numpy rather than plain Python
STAGES = ("decode", "preprocess", "inference", "postprocess")  # what predict_timed times


@dataclass(frozen=True, slots=True)
class Prediction:
    """The top class and its probability, and the ``top_k`` most likely classes."""

    label: str
    index: int
    score: float
    topk: list[tuple[str, float]]


class Predictor:
    """Classify images with an edgecv ONNX model.

    ``Predictor("model.onnx").predict("cat.jpg")`` -> ``Prediction(label, index, score, topk)``. An image is a
    path, bytes, a PIL image or a uint8 array (H×W or H×W×C). A model without a spec needs ``labels``,
    ``mean``, ``std`` and ``input_shape`` (C, H, W) unless its metadata or graph say them; ``facts``
    (:class:`edgecv.core.facts.Stated`) states any other fact (resize, channel order, …) over the file's.
    """

    def __init__(self, model_path: str | Path, provider: str = "cpu", threads: int | None = None, top_k: int = 5,
                 *, max_pixels: int = MAX_PIXELS, labels: Sequence[str] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 input_shape: Sequence[int] | None = None, facts: Stated | None = None) -> None:
        path = Path(model_path)
        if runtime_for(path) not in ("onnxruntime", "executorch"):
            raise ModelError(f"{path} is a torch file; the Predictor runs ONNX files (edgecv export --format onnx) "
                             "and ExecuTorch .pte files")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        named = {k: v for k, v in (("labels", labels), ("mean", mean), ("std", std), ("input_shape", input_shape))
                 if v is not None}
        stated = replace(facts or Stated(), **named)
        try:
            model = load_model(path, RuntimeOptions(provider=provider, threads=threads), stated)
        except MissingSpecError as exc:
            raise MissingSpecError(f"{path} has no edgecv spec: pass {', '.join(f'{k}=' for k in exc.missing)} to "
                                   "Predictor", exc.missing, path) from None
        self._attach(model, top_k, max_pixels)

    @classmethod
    def from_loaded(cls, model: Loaded, top_k: int = 5, *, max_pixels: int = MAX_PIXELS) -> Predictor:
        """A Predictor over a model some runtime already loaded (ONNX Runtime, OpenVINO, ExecuTorch, torch), so
        that bench times the app's path on the very session it timed the model on."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        predictor = cls.__new__(cls)
        predictor._attach(model, top_k, max_pixels)
        return predictor

    def _attach(self, model: Loaded, top_k: int, max_pixels: int) -> None:
        self._model = model
        self.spec: ModelSpec = self._model.spec
        self.notes: list[str] = list(self._model.details.get("spec_notes", []))  # where its facts came from
        self.top_k = min(top_k, self.spec.num_classes)
        self.max_pixels = max_pixels
        self.provider = self._model.provider
        self._table = input_table(self.spec)
        self._local = threading.local()  # each thread's _Bound or _Input
        self._bindable = _bindable(self._model)
        self._run_bound = self._model.handle.run_with_iobinding if self._bindable else None
        self._color, self._size, self._framing = self.spec.color, self.spec.size, self.spec.framing

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` underneath, shared by every call."""
        return self._model.handle

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    def preprocess(self, image: Any, name: str = "image") -> np.ndarray:
        """One image as uint8 (C, H, W) pixels at the model's size and colour, exactly as in training."""
        ready = ready_pixels(image, self._color, self._size, self._framing)  # already the model's size: no Pillow
        if ready is not None:
            return ready
        img = open_image(image, name, self.max_pixels)
        return to_pixels(img, self._color, self._size, self._framing, name)

    def predict(self, image: Any) -> Prediction:
        """Classify one image."""
        # the common case first, with the fewest steps
        pixels = ready_pixels(image, self._color, self._size, self._framing)
        if pixels is None:
            pixels = self.preprocess(image, _name(image, 0))
        if not self._bindable:
            return self._prediction(self._row(self._single(pixels)))
        bound = getattr(self._local, "bound", None) or self._bind()
        bound.fill(pixels)
        self._run_bound(bound.binding)
        return self._prediction(self._row(bound.y[0]))

    def predict_timed(self, image: Any) -> tuple[Prediction, dict[str, int]]:
        """:meth:`predict`, with the nanoseconds each of its :data:`STAGES` took: decode (open, orient and convert
        at the image's own size), preprocess (resize, crop and normalise into the model's input), inference (the
        runtime's call) and postprocess (softmax and top-k). The same steps and the same pixels as ``predict``."""
        clock, name = time.perf_counter_ns, _name(image, 0)
        t0 = clock()
        pixels = ready_pixels(image, self._color, self._size, self._framing)
        img = None if pixels is not None else decoded(open_image(image, name, self.max_pixels), self._color, name)
        t1 = clock()
        if img is not None:
            pixels = chw(frame(img, self._size, self._framing))
        if self._bindable:
            bound = getattr(self._local, "bound", None) or self._bind()
            bound.fill(pixels)
            t2 = clock()
            self._run_bound(bound.binding)
            logits = bound.y[0]
        elif self._model.fixed_batch not in (None, 1):
            x = normalise(pixels[None], self.spec, self._table)
            t2 = clock()
            logits = self._model.logits(x)[0]
        else:
            x = self._filled(pixels)
            t2 = clock()
            logits = self._model.run(x)[0]
        t3 = clock()
        prediction = self._prediction(self._row(logits))
        return prediction, dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, clock() - t3), strict=True))

    def _single(self, pixels: np.ndarray) -> np.ndarray:
        """One image's logits off the bound path: through this thread's input buffer where the model takes a
        batch of one."""
        if self._model.fixed_batch not in (None, 1):
            return self._logits(pixels[None])[0]
        return self._model.run(self._filled(pixels))[0]

    def _filled(self, pixels: np.ndarray) -> np.ndarray:
        """This thread's input buffer, holding ``pixels`` as the model's input."""
        held = getattr(self._local, "input", None)
        if held is None:
            held = self._local.input = _Input(self.spec, self._table)
        held.fill(pixels)
        return held.x

    def _bind(self) -> _Bound:
        self._local.bound = _Bound(self._model, self._table)
        return self._local.bound

    def predict_batch(self, images: Sequence[Any]) -> list[Prediction]:
        """Classify several images with one ``session.run``."""
        if len(images) == 0:
            return []
        ready = [ready_pixels(img, self._color, self._size, self._framing) for img in images]
        pixels = np.stack([self.preprocess(img, _name(img, i)) if px is None else px
                           for i, (img, px) in enumerate(zip(images, ready, strict=True))])
        logits = self._logits(pixels)
        if len(logits) == 1:  # the same arithmetic as predict
            return [self._prediction(self._row(logits[0]))]
        probs = softmax(logits)
        order = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]
        labels, scores = self.spec.labels, np.take_along_axis(probs, order, axis=1).tolist()
        return [Prediction(labels[o[0]], o[0], s[0], [(labels[i], p) for i, p in zip(o, s, strict=True)])
                for o, s in zip(order.tolist(), scores, strict=True)]

    def _logits(self, pixels: np.ndarray) -> np.ndarray:
        x = normalise(pixels, self.spec, self._table)
        return self._model.logits(x) if self._model.fixed_batch or self._model.max_batch else self._model.run(x)

    def _row(self, logits: np.ndarray) -> list[float] | np.ndarray:
        """One row of logits as :meth:`_prediction` takes it fastest: a list for a handful of classes."""
        return logits.tolist() if len(logits) <= _NUMPY_FROM else logits

    def _prediction(self, logits: list[float] | np.ndarray) -> Prediction:
        """Softmax and top-k of one row of logits in float64; for a handful of classes plain Python costs less
        than numpy's per-call overhead, and for many a partition finds the top k without sorting them all."""
        labels, k = self.spec.labels, self.top_k
        if len(logits) > _NUMPY_FROM:
            row = np.asarray(logits, np.float64)
            # the k largest, ties to the lower index as a stable sort gives them, without sorting every class
            kth = np.partition(row, len(row) - k)[len(row) - k]
            candidates = np.flatnonzero(row >= kth)
            order = candidates[np.lexsort((candidates, -row[candidates]))][:k].tolist()
            e = np.exp(row - row[order[0]])
            total = float(e.sum())
            topk = [(labels[i], float(e[i]) / total) for i in order]
        else:
            order = sorted(range(len(logits)), key=logits.__getitem__, reverse=True)[:k]
            top, exp, total = logits[order[0]], math.exp, 0.0
            for v in logits:
                total += exp(v - top)
            topk = [(labels[i], exp(logits[i] - top) / total) for i in order]
        return Prediction(topk[0][0], order[0], topk[0][1], topk)


class _Input:
    """One thread's model input for single images, allocated once and filled in place: the pixels go through
    a lookup per channel straight into it, where :func:`normalise` would allocate and compute a new array."""

    def __init__(self, spec: ModelSpec, table: np.ndarray | None) -> None:
        self.spec, self.table = spec, table
        c, h, w = spec.input_shape
        self.x = np.empty((1, h, w, c) if spec.layout == "NHWC" else (1, c, h, w), spec.dtype)
        self.bgr = spec.channel_order == "bgr"
        # NCHW float inputs: a lookup per channel, straight into the input. mode="wrap" spares numpy the
        # buffered copy that mode="raise" makes of ``out``; a uint8 index never leaves a 256-entry table.
        self.lookups = None
        if table is not None and spec.layout == "NCHW":
            self.lookups = [(row.take, plane) for row, plane in zip(table, self.x[0], strict=True)]
        self.fill = self._fill_gray if self.lookups is not None and len(self.lookups) == 1 else self._fill

    def _fill_gray(self, pixels: np.ndarray) -> None:
        take, plane = self.lookups[0]
        take(pixels[0], out=plane, mode="wrap")

    def _fill(self, pixels: np.ndarray) -> None:
        """Write uint8 (C, H, W) RGB or L pixels into the input, normalised as the spec says (the network's
        channel c is the pixels' channel C-1-c for a BGR network)."""
        if self.lookups is not None:
            for (take, plane), channel in zip(self.lookups, pixels[::-1] if self.bgr else pixels, strict=True):
                take(channel, out=plane, mode="wrap")
        else:
            normalise_into(pixels, self.spec, self.table, self.x)


class _Bound(_Input):
    """One thread's IO binding for single images: ONNX Runtime reads the input from and writes the logits to
    arrays allocated once, which saves converting them on every call (about a quarter of a small model's
    ``session.run`` on a CPU)."""

    def __init__(self, model: Any, table: np.ndarray | None) -> None:
        import onnxruntime as ort

        super().__init__(model.spec, table)
        session = model.handle
        self.y = np.empty((1, self.spec.num_classes), np.float32)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(session.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(self.x))
        self.binding.bind_ortvalue_output(session.get_outputs()[0].name, ort.OrtValue.ortvalue_from_numpy(self.y))


def _bindable(model: Any) -> bool:
    """Whether single images can run through a :class:`_Bound`: on the CPU, one float32 (1 or N, classes)
    output, a batch of 1 allowed, and the input type the spec says."""
    session = model.handle
    if model.format != "onnx" or model.provider != "cpu" or model.fixed_batch not in (None, 1) or \
            len(session.get_outputs()) != 1 or model.spec.outputs != "logits":
        return False
    out, inp = session.get_outputs()[0], session.get_inputs()[0]
    dims = out.shape
    classes_fit = len(dims) == 2 and (dims[1] == model.spec.num_classes or not isinstance(dims[1], int))
    return classes_fit and out.type == "tensor(float)" and inp.type == f"tensor({_ORT_TYPES[model.spec.dtype]})"


def _name(image: Any, i: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {i}"
