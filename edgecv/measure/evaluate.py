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
from edgecv.core.facts import Stated
from edgecv.core.metrics import classification_metrics
from edgecv.core.outputs import softmax
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec
from edgecv.data import load_whole
from edgecv.data.folder import refuse_bad
from edgecv.modeldata import check_square, class_positions, data_source, keeps_going, load_bundle
from edgecv.runtimes import Loaded, RuntimeOptions, load_model

SPLITS = ("train", "val", "test", "all")


@dataclass
class SplitData:
    """A labelled split of a data set: held in memory, or a folder that streams (decoded as it is scored).
    ``to_model`` gives each of the data set's classes its index among the model's outputs (matched by name)."""

    name: str
    split: str
    part: Any  # edgecv.data.Split or edgecv.data.FolderSplit
    keep_going: bool = False
    used: np.ndarray | None = None  # positions scored; a streamed folder's unreadable files are left out
    to_model: np.ndarray | None = None  # data-set class -> model class; None: the same

    @property
    def y(self) -> np.ndarray:
        """Each scored image's class, as the model's output index."""
        y = self.part.y if self.used is None else self.part.y[self.used]
        return y if self.to_model is None else self.to_model[y]

    @property
    def scored(self) -> list[int] | None:
        """The model classes the data set holds, in its order (None: all of them, in the model's)."""
        return None if self.to_model is None else self.to_model.tolist()

    def images(self, pick) -> np.ndarray:
        """uint8 (n, C, H, W) images at positions ``pick`` of :attr:`y`."""
        pick = np.asarray(pick, dtype=np.int64)
        return self.part.take(pick if self.used is None else self.used[pick])

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` images, for timing."""
        return self.part.head(n)


def default_split(spec: ModelSpec) -> str:
    """``test`` for a model edgecv trained or adopted (its data set's held-out split), ``all`` for a file from
    elsewhere: a data set handed in to score it is an evaluation set, not one to carve."""
    return "test" if spec.dataset else "all"


def load_split(path: Path, spec: ModelSpec, data: str | None, data_root: str | None,
               split: str | None = None, keep_going: bool = False, stream: bool | None = None,
               label_map: dict[str, str] | None = None) -> SplitData:
    """The model's data set (or ``--data``) at its input size, one split (``all``: every image; None: the
    default for the model, :func:`default_split`). A folder's unreadable images are left out with
    ``keep_going``, or when the model's run was trained so; a large folder (or any, with ``stream``) is not
    decoded here but as it is scored. Classes are matched to the model's by name (``label_map`` renames
    folders first)."""
    split = split or default_split(spec)
    if split not in SPLITS:
        raise EdgecvError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    name, root = data_source(path, spec, data, data_root)
    keep_going = keep_going or keeps_going(path)
    if split == "all":
        canonical, labels, part = load_whole(name, spec.size[0], color=spec.color, data_root=root,
                                             keep_going=keep_going, stream=stream, framing=spec.framing)
        check_square(spec.input_shape)
    else:
        bundle = load_bundle(name, root, spec.input_shape, keep_going, stream, spec.framing)
        canonical, labels, part = bundle.name, bundle.labels, bundle.split(split)
    if len(part) == 0:
        raise DataError(f"the {split} split of {canonical} is empty")
    positions = class_positions(canonical, labels, spec, label_map)
    same = len(positions) == spec.num_classes and (positions == np.arange(spec.num_classes)).all()
    return SplitData(canonical, split, part, keep_going, to_model=None if same else positions)


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
    notes: list[str] = field(default_factory=list)

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
    return classification_metrics(split.y, probs, loaded.spec.labels, split.scored), probs


def _unreadable(split: SplitData) -> None:
    """A streamed folder's files that could not be read: an error, or left out with --keep-going."""
    if split.part.bad and not split.keep_going:
        refuse_bad(f"of the {split.name} {split.split} split", split.part.bad, len(split.part))


def evaluate(path: Path | str, options: RuntimeOptions | None = None, *, data: str | None = None,
             data_root: str | None = None, split: str | None = None, spec: ModelSpec | Stated | None = None,
             keep_going: bool = False, stream: bool | None = None, label_map: dict[str, str] | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Evaluate one model file on a split of its data set with the full metrics suite (``split`` None: the
    model's default, :func:`default_split`); ``spec`` replaces the file's spec, or states facts over it;
    ``progress(done, total)`` follows the images scored."""
    path = Path(path)
    start = time.perf_counter()
    loaded = load_model(path, options, spec)
    split_data = load_split(path, loaded.spec, data, data_root, split, keep_going, stream, label_map)
    metrics, probs = score(loaded, split_data, progress)
    return EvalResult(model=str(path), variant=loaded.name, format=loaded.format, precision=loaded.precision,
                      provider=loaded.provider, data=split_data.name, split=split_data.split, metrics=metrics,
                      seconds=time.perf_counter() - start, probs=probs, notes=spec_notes(loaded, split_data))


def spec_notes(loaded: Loaded, split: SplitData) -> list[str]:
    """What the output should say about where the model's facts came from and what was scored."""
    notes = list(loaded.details.get("spec_notes", []))
    quant = loaded.details.get("calibrated_on")
    if split.split == "all" and quant and quant.get("data") == split.name:
        notes.append(f"the {quant.get('images', 'calibration')} images this file was calibrated on are among "
                     "the images scored")
    if split.to_model is not None and len(split.to_model) < loaded.spec.num_classes:
        notes.append(f"{len(split.to_model)} of the model's {loaded.spec.num_classes} classes scored (those "
                     f"{split.name} holds); a prediction outside them counts as a mistake ('other')")
    return notes
