"""Predictor: classify images in your own app with an edgecv ONNX file. numpy, onnxruntime and Pillow only.

Everything it needs comes from the model file's ModelSpec: labels, input size, colour mode, interpolation,
normalisation and layout. One ONNX Runtime session is shared by every call, and calls are thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import ModelError
from edgecv.imageio import MAX_PIXELS, open_image, to_pixels
from edgecv.metrics import softmax
from edgecv.preprocess import to_model_input
from edgecv.runtimes import RuntimeOptions, load_model, runtime_for
from edgecv.spec import COLORS, ModelSpec

# an ONNX StringStringEntryProto with key "location": the path of a tensor's external data
_LOCATION = re.compile(rb"\x0a\x08location\x12")


@dataclass(frozen=True)
class Prediction:
    """The top class and its probability, and the ``top_k`` most likely classes."""

    label: str
    index: int
    score: float
    topk: list[tuple[str, float]]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    return value, pos


def check_external_data(path: Path) -> None:
    """Refuse an ONNX file whose external-data paths leave its own folder, before ONNX Runtime opens it
    (read from the raw protobuf, so it needs no onnx package)."""
    data = path.read_bytes()
    folder = path.parent.resolve()
    for match in _LOCATION.finditer(data):
        length, start = _varint(data, match.end())
        location = data[start:start + length].decode("utf-8", "replace")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ModelError(f"{path} refers to external data {location!r} outside its own folder; refusing to "
                             "open it")


class Predictor:
    """Classify images with an edgecv ONNX model.

    ``Predictor("model.onnx").predict("cat.jpg")`` -> ``Prediction(label, index, score, topk)``. An image is a
    path, bytes, a PIL image or a uint8 array (H×W or H×W×C). A model without a spec needs ``labels``,
    ``mean``, ``std`` and ``input_shape`` (C, H, W).
    """

    def __init__(self, model_path: str | Path, provider: str = "cpu", threads: int | None = None, top_k: int = 5,
                 *, max_pixels: int = MAX_PIXELS, labels: Sequence[str] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 input_shape: Sequence[int] | None = None) -> None:
        path = Path(model_path)
        if runtime_for(path) != "onnxruntime":
            raise ModelError(f"{path} is a torch file; the Predictor runs ONNX files (edgecv export --format onnx)")
        check_external_data(path)
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        spec = _spec_from_kwargs(labels, mean, std, input_shape)
        try:
            self._model = load_model(path, RuntimeOptions(provider=provider, threads=threads), spec)
        except ModelError as exc:
            if "no edgecv spec" in str(exc):
                raise ModelError(f"{path} has no edgecv spec: pass labels=, mean=, std= and input_shape= "
                                 "to Predictor") from None
            raise
        self.spec: ModelSpec = self._model.spec
        self.top_k = min(top_k, self.spec.num_classes)
        self.max_pixels = max_pixels
        self.provider = self._model.provider

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    def preprocess(self, image: Any, name: str = "image") -> np.ndarray:
        """One image as uint8 (C, H, W) pixels at the model's size and colour, exactly as in training."""
        img = open_image(image, name, self.max_pixels)
        return to_pixels(img, self.spec.color, self.spec.size, self.spec.interpolation, name)

    def predict(self, image: Any) -> Prediction:
        """Classify one image."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[Any]) -> list[Prediction]:
        """Classify several images with one ``session.run``."""
        if len(images) == 0:
            return []
        pixels = np.stack([self.preprocess(img, _name(img, i)) for i, img in enumerate(images)])
        probs = softmax(self._model.logits(to_model_input(pixels, self.spec)))
        return [self._prediction(row) for row in probs]

    def _prediction(self, probs: np.ndarray) -> Prediction:
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        labels = self.spec.labels
        top = [(labels[i], float(probs[i])) for i in order]
        return Prediction(label=top[0][0], index=int(order[0]), score=top[0][1], topk=top)


def _name(image: Any, i: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {i}"


def _spec_from_kwargs(labels, mean, std, input_shape) -> ModelSpec | None:
    given = {"labels": labels, "mean": mean, "std": std, "input_shape": input_shape}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ModelError(f"a model without an edgecv spec also needs {', '.join(f'{k}=' for k in missing)}")
    shape = tuple(int(v) for v in input_shape)
    color = next((m for m, c in COLORS.items() if len(shape) == 3 and c == shape[0]), None)
    if color is None:
        raise ModelError(f"input_shape must be (C, H, W) with C = 1 or 3, got {shape}")
    return ModelSpec(labels=list(labels), input_shape=shape, mean=list(mean), std=list(std), color=color)
