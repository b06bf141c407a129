"""Data sets as uint8 arrays: split, colour-converted and resized once, then kept in memory.

Torch-free: images are decoded and prepared with numpy, Pillow and scikit-learn, so the same code feeds
training (on the device) and, later, torch-free evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgecv.core.errors import DataError
from edgecv.core.imageio import frame
from edgecv.core.spec import Framing

SPLIT_SEED = 0  # the data split never depends on the training seed, so runs stay comparable
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # share of what remains after the test split


@dataclass
class Split:
    """Images ``x`` as uint8 (N, C, H, W) and integer labels ``y`` (N,), held in memory.

    :class:`edgecv.data.stream.FolderSplit` answers the same questions for images that stay on disk.
    """

    x: np.ndarray
    y: np.ndarray
    streamed = False
    bad: list[tuple[str, str]] = field(default_factory=list)  # never any: the images were decoded already

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def take(self, indices, workers: int | None = None) -> np.ndarray:
        return self.x[np.asarray(indices, dtype=np.int64)]

    def head(self, n: int) -> np.ndarray:
        return self.x[:n]

    def chunks(self, size: int | None = None, workers: int | None = None,
               indices: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The whole split as one chunk: (images, positions), like a streamed split's chunks."""
        order = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        yield (self.x if indices is None else self.x[order]), order


def few_names(paths: list[str], shown: int = 3) -> str:
    """``a.png, b.png, c.png and 4 more``: the first file names of a list, and a count of the rest."""
    names = ", ".join(Path(p).name for p in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


@dataclass
class RawData:
    """What a loader returns: uint8 images (N, H, W) or (N, H, W, C) at their own size, per split.

    ``val`` and ``test`` may be None; :func:`prepare` carves them from ``train`` with a fixed, stratified
    split.
    """

    train: tuple[np.ndarray, np.ndarray]
    labels: list[str]
    color: str
    val: tuple[np.ndarray, np.ndarray] | None = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (--keep-going)


@dataclass
class DataBundle:
    """Prepared train/val/test splits plus what the model spec needs to reproduce the preprocessing."""

    name: str
    labels: list[str]
    color: str
    train: Any  # Split, or a FolderSplit when the folder streams
    val: Any
    test: Any
    mean: list[float]
    std: list[float]
    allow_flip: bool
    pad_mode: str  # how random crops fill the border: "constant" (black) or "reflect"
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (--keep-going)
    framing: Framing = field(default_factory=Framing)  # how every image was brought to its size

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.train.input_shape

    @property
    def random_crops(self) -> bool:
        """Whether training crops each whole image at random (torchvision's way) rather than the framed one."""
        return bool(getattr(self.train, "random_crops", False))

    @property
    def streamed(self) -> bool:
        return bool(self.train.streamed)

    def skipped_note(self) -> str | None:
        """What --keep-going left out, for the run's log."""
        if not self.skipped:
            return None
        return f"left out {len(self.skipped)} unreadable images (--keep-going): {few_names(self.skipped)}"

    def split(self, name: str) -> Any:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)


@dataclass
class DatasetInfo:
    """A registry entry: how to load a data set and the facts shown by ``edgecv datasets``."""

    name: str
    description: str
    source: str
    native_size: int | None
    color: str
    num_classes: int | None
    allow_flip: bool
    pad_mode: str
    load: Callable[..., RawData]


def stratified_split(
    x: np.ndarray, y: np.ndarray, fraction: float, what: str
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split off ``fraction`` of the samples, stratified by label, always the same way."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    present = counts[counts > 0]
    if len(present) < 2:
        raise DataError(f"need at least 2 classes to make a {what} split, found {len(present)}")
    n_held = max(int(np.ceil(fraction * len(y))), len(present))  # at least one image per class
    if present.min() < 2 or len(y) - n_held < len(present):
        folder = "val" if what == "validation" else what
        raise DataError(
            f"too few images to carve a stratified {what} split ({len(y)} images, "
            f"smallest class has {present.min()}); add images or provide a {folder}/ folder"
        )
    idx = np.arange(len(y))
    keep, held = train_test_split(idx, test_size=n_held, stratify=y, random_state=SPLIT_SEED)
    keep.sort()
    held.sort()
    return (x[keep], y[keep]), (x[held], y[held])


def _to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img if img.ndim == 2 or img.shape[2] > 1 else img[:, :, 0])


def to_nchw(images: np.ndarray, size: int, color: str, source_color: str,
            indices: np.ndarray | None = None, framing: Framing = Framing()) -> np.ndarray:
    """Convert (N, H, W[, C]) uint8 images (those at ``indices``, default all) to ``color`` at size×size with
    Pillow, as ``framing`` says, as (n, C, size, size), filling the result directly: no whole-split temporary
    copies.

    Pillow does both steps so that apps that decode with Pillow see exactly the training pixels.
    """
    if images.ndim == 3:
        images = images[..., None]
    _, h, w, _ = images.shape
    pick = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    channels = 3 if color == "RGB" else 1
    out = np.empty((len(pick), channels, size, size), dtype=np.uint8)
    if (h, w) == (size, size) and color == source_color and framing.resize in (0, size):
        for start in range(0, len(pick), 1024):
            out[start:start + 1024] = images[pick[start:start + 1024]].transpose(0, 3, 1, 2)
        return out
    for k, i in enumerate(pick):
        pil = _to_pil(images[i])
        if pil.mode != color:
            pil = pil.convert(color)
        arr = np.asarray(frame(pil, (size, size), framing))
        out[k] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return out


def pixel_sums(x: np.ndarray) -> np.ndarray:
    """Per image and channel, the sum and the sum of squares of uint8 (N, C, H, W) pixels scaled to 0..1, as
    (N, 2, C) float64."""
    xs = x.astype(np.float64) / 255.0
    return np.stack([xs.sum(axis=(2, 3)), (xs * xs).sum(axis=(2, 3))], axis=1)


def stats_from_sums(sums: np.ndarray, pixels_per_image: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (rounded to 4 places) from :func:`pixel_sums` of every image of a split."""
    total = sums.sum(axis=0) / (len(sums) * pixels_per_image)
    mean = total[0]
    std = np.maximum(np.sqrt(np.maximum(total[1] - mean * mean, 0.0)), 1e-3)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def channel_stats(x: np.ndarray, chunk: int = 1024) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to 0..1, a chunk of images at a time (a
    float64 copy of a whole split would take 8 times its size), exactly as a streamed folder computes them."""
    sums = np.concatenate([pixel_sums(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    return stats_from_sums(sums, x.shape[2] * x.shape[3])


def prepare(
    name: str, raw: RawData, size: int, color: str | None, allow_flip: bool, pad_mode: str,
    framing: Framing = Framing(),
) -> DataBundle:
    """Carve missing splits, convert colour, resize and compute the training mean/std."""
    if color not in (None, "L", "RGB"):
        raise DataError(f"colour mode must be L or RGB, got {color!r}")
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    target = color or raw.color
    x, y = raw.train
    # each split as (its source images, positions in them, labels): carving picks positions, not copies
    labeled = {"train": (x, np.arange(len(y)), y)}
    for split_name in ("val", "test"):
        given = getattr(raw, split_name)
        labeled[split_name] = None if given is None else (given[0], np.arange(len(given[1])), given[1])
    if labeled["test"] is None:
        (keep, ky), (held, hy) = stratified_split(labeled["train"][1], y, TEST_FRACTION, "test")
        labeled["train"], labeled["test"] = (x, keep, ky), (x, held, hy)
    if labeled["val"] is None:
        (keep, ky), (held, hy) = stratified_split(labeled["train"][1], labeled["train"][2], VAL_FRACTION,
                                                  "validation")
        labeled["train"], labeled["val"] = (x, keep, ky), (x, held, hy)
    splits = {}
    for split_name, (sx, pick, sy) in labeled.items():  # type: ignore[misc]
        if len(sy) == 0:
            raise DataError(f"data set {name!r} has an empty {split_name} split")
        splits[split_name] = Split(to_nchw(sx, size, target, raw.color, pick, framing), np.asarray(sy, np.int64))
    mean, std = channel_stats(splits["train"].x)
    return DataBundle(
        name=name,
        labels=list(raw.labels),
        color=target,
        mean=mean,
        std=std,
        allow_flip=allow_flip,
        pad_mode=pad_mode,
        skipped=list(raw.skipped),
        framing=framing,
        **splits,
    )
