"""The images quantisation needs: calibration from the training split, validation and test to measure.

The model file says which data it was trained on (its spec, or the run directory's config.json); ``--data``
overrides that, and is required for a model without a spec.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import DataError, EdgecvError, ModelError
from edgecv.preprocess import to_model_input
from edgecv.spec import COLORS, ModelSpec

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


def _run_config(model_path: Path) -> dict[str, Any]:
    """The training config of the run directory the model sits in, or {}."""
    path = model_path.parent / "config.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def data_source(model_path: Path, spec: ModelSpec | None, data: str | None,
                data_root: str | None) -> tuple[str, str | None]:
    """Which data set (and torchvision root) to draw images from: ``--data``, else the run directory's
    config, else the spec's data set."""
    config = _run_config(model_path)
    if data:
        return data, data_root or config.get("data_root")
    if spec is None:
        raise ModelError(f"{model_path} has no edgecv spec, so its data set is unknown: pass --data NAME "
                         "(digits, mnist, fashion-mnist, cifar10 or folder:PATH)")
    name = config.get("data") or spec.dataset
    if not name:
        raise ModelError(f"{model_path} does not say which data set it was trained on: pass --data NAME")
    return name, data_root or config.get("data_root")


def foreign_spec(input_shape: tuple[int, int, int], bundle: Any) -> ModelSpec:
    """A spec for a model without one: its input shape, the data set's labels and statistics."""
    return ModelSpec(labels=bundle.labels, input_shape=input_shape, mean=bundle.mean, std=bundle.std,
                     color=bundle.color, dataset=bundle.name)


def load_bundle(name: str, data_root: str | None, input_shape: tuple[int, int, int]) -> Any:
    """The data set at the model's input size and colour."""
    from edgecv.data import load_dataset

    c, h, w = input_shape
    if h != w:
        raise ModelError(f"the model takes {h}x{w} images; edgecv data sets are square")
    color = next((mode for mode, channels in COLORS.items() if channels == c), None)
    if color is None:
        raise ModelError(f"the model takes {c} channels; edgecv data sets have 1 (L) or 3 (RGB)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(name, h, color=color, data_root=data_root)


def _few(labels: list[str]) -> str:
    return ", ".join(labels[:5]) + (f", ... ({len(labels)})" if len(labels) > 5 else "")


def load_quant_data(spec: ModelSpec, bundle: Any, calib_size: int) -> QuantData:
    """Draw ``calib_size`` calibration images from the training split (always the same ones) and prepare
    every split as the model's input."""
    if calib_size < 1:
        raise EdgecvError(f"--calib-size must be at least 1, got {calib_size}")
    if len(bundle.train) == 0:
        raise DataError(f"data set {bundle.name!r} has no training images to calibrate with")
    if list(bundle.labels) != list(spec.labels):
        raise DataError(f"data set {bundle.name!r} has classes {_few(bundle.labels)} but the model predicts "
                        f"{_few(spec.labels)}")
    rng = np.random.default_rng(CALIB_SEED)
    n = min(calib_size, len(bundle.train))
    pick = np.sort(rng.choice(len(bundle.train), size=n, replace=False))
    return QuantData(
        name=bundle.name,
        calib=to_model_input(bundle.train.x[pick], spec),
        val_x=to_model_input(bundle.val.x, spec), val_y=bundle.val.y,
        test_x=to_model_input(bundle.test.x, spec), test_y=bundle.test.y,
    )
