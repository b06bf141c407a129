"""Which data a model file is measured on: its run directory's config, its spec, or ``--data``.

The model file says which data it was trained on (its spec, or the run directory's config.json); ``--data``
overrides that, and is required for a model without a spec. Torch-free.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import DataError, MissingSpecError, ModelError
from edgecv.core.spec import COLORS, Framing, ModelSpec
from edgecv.data import load_dataset
from edgecv.rundir import RunDir


def _run_config(model_path: Path) -> dict[str, Any]:
    """The training config of the run directory the model sits in, or {}."""
    path = RunDir.of(model_path).config
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
        raise MissingSpecError(f"{model_path} has no edgecv spec, so its data set is unknown: pass --data NAME "
                               "(digits, mnist, fashion-mnist, cifar10 or folder:PATH)", ("dataset",), model_path)
    name = config.get("data") or spec.dataset
    if not name:
        raise ModelError(f"{model_path} does not say which data set it was trained on: pass --data NAME")
    return name, data_root or config.get("data_root")


def foreign_spec(input_shape: tuple[int, int, int], bundle: Any) -> ModelSpec:
    """A spec for a model without one: its input shape, the data set's labels and statistics."""
    return ModelSpec(labels=bundle.labels, input_shape=input_shape, mean=bundle.mean, std=bundle.std,
                     color=bundle.color, dataset=bundle.name)


def keeps_going(model_path: Path) -> bool:
    """Whether the model's run was trained with --keep-going: its evaluation leaves out the same files."""
    return bool(_run_config(model_path).get("keep_going"))


def load_bundle(name: str, data_root: str | None, input_shape: tuple[int, int, int],
                keep_going: bool = False, stream: bool | None = None, framing: Framing = Framing()) -> Any:
    """The data set at the model's input size and colour, framed as the model's spec says. A folder that streams
    is decoded ahead only with ``keep_going``: its unreadable files must be left out before the split is carved,
    as in training, or the test split would differ from the one the model was trained beside; otherwise they
    show (and stop the work) as the folder is read."""

    color = check_square(input_shape)
    h = input_shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(name, h, color=color, data_root=data_root, keep_going=keep_going, stream=stream,
                            check=keep_going, framing=framing)


def check_square(input_shape: tuple[int, int, int]) -> str:
    """The colour mode of a model's input, which must be square (edgecv's data sets are) in 1 or 3 channels."""
    c, h, w = input_shape
    if h != w:
        raise ModelError(f"the model takes {h}x{w} images; edgecv data sets are square")
    color = next((mode for mode, channels in COLORS.items() if channels == c), None)
    if color is None:
        raise ModelError(f"the model takes {c} channels; edgecv data sets have 1 (L) or 3 (RGB)")
    return color


def class_positions(data_name: str, data_labels: list[str], spec: ModelSpec,
                    label_map: dict[str, str] | None = None) -> np.ndarray:
    """For each class of the data set, in its own order, the model's output index for it, matched by name
    (after ``label_map``: folder name -> model label), never by position. The data set may hold only some of
    the model's classes; one the model does not have is an error listing them."""
    names = [label_map.get(n, n) for n in data_labels] if label_map else list(data_labels)
    index = {label: i for i, label in enumerate(spec.labels)}
    unknown = [d if d == n else f"{d} ({n})" for d, n in zip(data_labels, names, strict=True) if n not in index]
    if unknown:
        raise DataError(f"the model has no class {_few(unknown)} of {data_name} ({len(unknown)} of "
                        f"{len(names)}); it predicts {_few(spec.labels)}: pass --label-map FILE to map folder names "
                        "to its labels, or --labels in its output order")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"several classes of {data_name} map to the same label: {_few(twice)}")
    return np.array([index[n] for n in names], dtype=np.int64)


def _few(labels: list[str]) -> str:
    return ", ".join(labels[:5]) + (f", ... ({len(labels)})" if len(labels) > 5 else "")
