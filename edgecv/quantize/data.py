"""The images quantisation needs: calibration from the training split, validation and test to measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecv.core.errors import DataError, EdgecvError
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec
from edgecv.modeldata import class_positions

CALIB_SEED = 0
FEW_CALIB = 100  # below this many calibration images the activation ranges are a guess


@dataclass
class QuantData:
    """Model-ready inputs: calibration images and the labelled validation and test splits (labels as the
    model's output indices)."""

    name: str
    calib: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    calib_split: str = "train"  # where the calibration images come from


def calibration_images(spec: ModelSpec, bundle: Any, calib_size: int) -> np.ndarray:
    """``calib_size`` training images (always the same ones), prepared as the model's input: what every int8
    format of edgecv (ONNX QDQ, ExecuTorch PT2E) calibrates on."""
    return to_model_input(bundle.train.take(_draw(len(bundle.train), calib_size)), spec)


def _draw(n: int, size: int) -> np.ndarray:
    """A seeded draw of ``size`` of ``n`` positions (all of them when there are fewer), in order."""
    rng = np.random.default_rng(CALIB_SEED)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def load_quant_data(spec: ModelSpec, bundle: Any, calib_size: int,
                    label_map: dict[str, str] | None = None) -> QuantData:
    """Draw ``calib_size`` calibration images from the training split (always the same ones) and prepare
    every split as the model's input."""
    _check(calib_size, len(bundle.train), bundle.name)
    to_model = class_positions(bundle.name, bundle.labels, spec, label_map)
    return QuantData(
        name=bundle.name,
        calib=calibration_images(spec, bundle, calib_size),
        val_x=to_model_input(bundle.val.take(np.arange(len(bundle.val))), spec), val_y=to_model[bundle.val.y],
        test_x=to_model_input(bundle.test.take(np.arange(len(bundle.test))), spec), test_y=to_model[bundle.test.y],
    )


def whole_quant_data(spec: ModelSpec, name: str, labels: list[str], part: Any, calib_size: int,
                     label_map: dict[str, str] | None = None) -> QuantData:
    """A file from elsewhere on a whole data set: a seeded draw of ``calib_size`` images to calibrate on, and
    the rest (at least one image) to measure the accuracy before and after on."""
    _check(calib_size, len(part), name)
    to_model = class_positions(name, labels, spec, label_map)
    calib = _draw(len(part), min(calib_size, len(part) - 1))
    rest = np.setdiff1d(np.arange(len(part)), calib)
    x = to_model_input(part.take(rest), spec)
    return QuantData(name=name, calib=to_model_input(part.take(calib), spec), val_x=x, val_y=to_model[part.y[rest]],
                     test_x=x, test_y=to_model[part.y[rest]], calib_split="a seeded draw of every image")


def _check(calib_size: int, available: int, name: str) -> None:
    if calib_size < 1:
        raise EdgecvError(f"--calib-size must be at least 1, got {calib_size}")
    if available < 2:
        raise DataError(f"data set {name!r} has {available} image(s) to calibrate with; quantising needs more")
