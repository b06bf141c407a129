"""Which data a model file is measured on: its run directory's config, its spec, or ``--data``.

The model file says which data it was trained on (its spec, or the run directory's config.json); ``--data``
overrides that, and is required for a model without a spec. Torch-free.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

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

    c, h, w = input_shape
    if h != w:
        raise ModelError(f"the model takes {h}x{w} images; edgecv data sets are square")
    color = next((mode for mode, channels in COLORS.items() if channels == c), None)
    if color is None:
        raise ModelError(f"the model takes {c} channels; edgecv data sets have 1 (L) or 3 (RGB)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(name, h, color=color, data_root=data_root, keep_going=keep_going, stream=stream,
                            check=keep_going, framing=framing)


def check_labels(bundle: Any, spec: ModelSpec) -> None:
    """The data set must name the same classes, in the same order, as the model predicts."""

    if list(bundle.labels) != list(spec.labels):
        raise DataError(f"data set {bundle.name!r} has classes {_few(bundle.labels)} but the model predicts "
                        f"{_few(spec.labels)}")


def _few(labels: list[str]) -> str:
    return ", ".join(labels[:5]) + (f", ... ({len(labels)})" if len(labels) > 5 else "")
