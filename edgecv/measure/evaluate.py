"""`edgecv eval`: the one metrics suite on any model file (checkpoint, TorchScript, ONNX), on a data split.

Torch-free for ONNX files: the runtime, the data (digits from scikit-learn, folders from Pillow) and the
metrics need only numpy, onnxruntime, Pillow and scikit-learn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import DataError, EdgecvError, ModelError
from edgecv.core.metrics import classification_metrics
from edgecv.core.outputs import softmax
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec
from edgecv.data.folder import refuse_bad
from edgecv.modeldata import check_labels, data_source, keeps_going, load_bundle
from edgecv.runtimes import Loaded, RuntimeOptions, load_model

SPLITS = ("train", "val", "test")


@dataclass
class SplitData:
    """A labelled split of a data set: held in memory, or a folder that streams (decoded as it is scored)."""

    name: str
    split: str
    part: Any  # edgecv.data.Split or edgecv.data.FolderSplit
    keep_going: bool = False
    used: np.ndarray | None = None  # positions scored; a streamed folder's unreadable files are left out

    @property
    def y(self) -> np.ndarray:
        return self.part.y if self.used is None else self.part.y[self.used]

    def images(self, pick) -> np.ndarray:
        """uint8 (n, C, H, W) images at positions ``pick`` of :attr:`y`."""
        pick = np.asarray(pick, dtype=np.int64)
        return self.part.take(pick if self.used is None else self.used[pick])

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` images, for timing."""
        return self.part.head(n)


def load_split(path: Path, spec: ModelSpec, has_spec: bool, data: str | None, data_root: str | None,
               split: str = "test", keep_going: bool = False, stream: bool | None = None) -> SplitData:
    """The model's data set (or ``--data``) at its input size, one split. A folder's unreadable images are
    left out with ``keep_going``, or when the model's run was trained so; a large folder (or any, with
    ``stream``) is not decoded here but as it is scored."""
    if split not in SPLITS:
        raise EdgecvError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    name, root = data_source(path, spec if has_spec else None, data, data_root)
    keep_going = keep_going or keeps_going(path)
    bundle = load_bundle(name, root, spec.input_shape, keep_going, stream, spec.framing)
    check_labels(bundle, spec)
    part = bundle.split(split)
    if len(part) == 0:
        raise DataError(f"the {split} split of {bundle.name} is empty")
    return SplitData(bundle.name, split, part, keep_going)


@dataclass
class EvalResult:
    """The metrics of one model file on one split, and what produced them."""

    model: str
    variant: str
    format: str
    precision: str
    provider: str
    data: str
    split: str
    metrics: dict[str, Any]
    seconds: float = 0.0
    probs: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("probs")
        return data


def score(loaded: Loaded, split: SplitData, progress: Callable[[int, int], None] | None = None,
          ) -> tuple[dict[str, Any], np.ndarray]:
    """The metrics suite for ``loaded`` on ``split``, and its class probabilities; a streamed folder is
    scored a chunk at a time, reporting ``progress(images done, total)``."""
    outputs, positions, done = [], [], 0
    for raw, where in split.part.chunks():
        x = to_model_input(raw, loaded.spec)
        try:
            logits = loaded.logits(x) if len(raw) else np.zeros((0, loaded.spec.num_classes), np.float32)
        except EdgecvError:
            raise
        except Exception as exc:  # a runtime refusing the input (shape, dtype)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{loaded.file} cannot run on {split.name} images "
                             f"{tuple(x.shape[1:])}: {first}") from None
        if logits.ndim != 2 or logits.shape[1] != loaded.spec.num_classes:
            raise ModelError(f"{loaded.file} gives outputs of shape {logits.shape}, not (N, "
                             f"{loaded.spec.num_classes}) as its spec says")
        outputs.append(logits)
        positions.append(where)
        done += len(where)
        if progress:
            progress(done + len(split.part.bad), len(split.part))
    _unreadable(split)
    split.used = np.concatenate(positions) if split.part.bad else None
    probs = softmax(np.concatenate(outputs))
    return classification_metrics(split.y, probs, loaded.spec.labels), probs


def _unreadable(split: SplitData) -> None:
    """A streamed folder's files that could not be read: an error, or left out with --keep-going."""
    if split.part.bad and not split.keep_going:
        refuse_bad(f"of the {split.name} {split.split} split", split.part.bad, len(split.part))


def evaluate(path: Path | str, options: RuntimeOptions | None = None, *, data: str | None = None,
             data_root: str | None = None, split: str = "test", spec: ModelSpec | None = None,
             keep_going: bool = False, stream: bool | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Evaluate one model file on a split of its data set with the full metrics suite; ``progress(done,
    total)`` follows the images scored."""
    path = Path(path)
    start = time.perf_counter()
    loaded = load_model(path, options, spec)
    split_data = load_split(path, loaded.spec, spec is None, data, data_root, split, keep_going, stream)
    metrics, probs = score(loaded, split_data, progress)
    return EvalResult(model=str(path), variant=loaded.name, format=loaded.format, precision=loaded.precision,
                      provider=loaded.provider, data=split_data.name, split=split, metrics=metrics,
                      seconds=time.perf_counter() - start, probs=probs)
