"""The images quantisation needs: calibration from the training split, validation and test to measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecv.core.errors import DataError, EdgecvError
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec
from edgecv.modeldata import check_labels

CALIB_SEED = 0
FEW_CALIB = 100  # below this many calibration images the activation ranges are a guess


@dataclass
class QuantData:
    """Model-ready inputs: calibration images and the labelled validation and test splits."""

    name: str
    calib: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def calibration_images(spec: ModelSpec, bundle: Any, calib_size: int) -> np.ndarray:
    """``calib_size`` training images (always the same ones), prepared as the model's input: what every int8
    format of edgecv (ONNX QDQ, ExecuTorch PT2E) calibrates on."""
    rng = np.random.default_rng(CALIB_SEED)
    n = min(calib_size, len(bundle.train))
    pick = np.sort(rng.choice(len(bundle.train), size=n, replace=False))
    return to_model_input(bundle.train.take(pick), spec)


def load_quant_data(spec: ModelSpec, bundle: Any, calib_size: int) -> QuantData:
    """Draw ``calib_size`` calibration images from the training split (always the same ones) and prepare
    every split as the model's input."""
    if calib_size < 1:
        raise EdgecvError(f"--calib-size must be at least 1, got {calib_size}")
    if len(bundle.train) == 0:
        raise DataError(f"data set {bundle.name!r} has no training images to calibrate with")
    check_labels(bundle, spec)
    return QuantData(
        name=bundle.name,
        calib=calibration_images(spec, bundle, calib_size),
        val_x=to_model_input(bundle.val.take(np.arange(len(bundle.val))), spec), val_y=bundle.val.y,
        test_x=to_model_input(bundle.test.take(np.arange(len(bundle.test))), spec), test_y=bundle.test.y,
    )
