"""An image folder: one sub-folder per class, found by torchvision's ImageFolder, decoded with Pillow.

``PATH/train``, ``PATH/val`` and ``PATH/test`` are used when present; otherwise ``PATH`` itself holds the
class folders and a fixed, stratified split is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgecv.core.errors import DataError, InvalidImageError
from edgecv.core.imageio import MAX_PIXELS, decoded, open_image, to_pixels
from edgecv.core.spec import Framing
from edgecv.data.base import RawData, few_names

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


# torchvision's ImageFolder extensions, for the base install where torchvision is absent
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _find(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """ImageFolder's classes and samples without torch: sorted class folders, each walked in sorted order
    (links followed), keeping the files with an image extension."""
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    samples = []
    for index, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            samples.extend((os.path.join(folder, f), index) for f in sorted(files)
                           if f.lower().endswith(IMG_EXTENSIONS))
    if classes and not samples:
        raise FileNotFoundError(f"Found no valid file for the classes {', '.join(classes)}")
    return classes, samples


def _scan(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes and (path, class index) pairs under ``root`` via torchvision's ImageFolder (the same listing
    by hand in the torch-free install)."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        ImageFolder = None  # noqa: N806
    try:
        if ImageFolder is None:
            classes, samples = _find(root)
        else:
            found = ImageFolder(str(root), loader=str)
            classes, samples = found.classes, found.samples
    except FileNotFoundError as exc:
        raise DataError(f"image folder {root}: {exc}") from None
    if len(classes) < 2:
        raise DataError(
            f"image folder {root} has {len(classes)} class folder(s); "
            "a classifier needs at least 2 (one sub-folder per class)"
        )
    return classes, samples


def _open_checked(path: str) -> Image.Image:
    """Open an image lazily, refusing unreadable files and oversize images before decoding."""
    try:
        return open_image(path, f"image {path}", MAX_PIXELS)
    except InvalidImageError as exc:
        raise DataError(str(exc)) from None


def decode_chw(path: str, size: int, color: str, framing: Framing = Framing()) -> np.ndarray:
    """One image as uint8 (C, size, size), decoded as the Predictor decodes, so training and serving see the
    same pixels."""
    try:
        return to_pixels(_open_checked(path), color, (size, size), framing, f"image {path}")
    except InvalidImageError as exc:
        raise DataError(str(exc)) from None


def decode_whole(path: str, color: str) -> Image.Image:
    """One image decoded at its own size in ``color`` (oriented, converted), for a random crop of it."""
    try:
        return decoded(_open_checked(path), color, f"image {path}")
    except InvalidImageError as exc:
        raise DataError(str(exc)) from None


def _decode_all(samples: list[tuple[str, int]], size: int, color: str, framing: Framing,
                bad: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Every readable image of ``samples``, decoded into one preallocated array; (path, reason) of each that
    cannot be read goes to ``bad``."""
    x = np.empty((len(samples), size, size, 3 if color == "RGB" else 1), np.uint8)
    labels = []
    for path, label in samples:
        try:
            x[len(labels)] = decode_chw(path, size, color, framing).transpose(1, 2, 0)
        except DataError as exc:
            bad.append((path, str(exc)))
            continue
        labels.append(label)
    return x[:len(labels)], np.asarray(labels, dtype=np.int64)


def _auto_color(samples: list[tuple[str, int]]) -> str:
    for path, _ in samples:
        try:
            mode = _open_checked(path).mode
        except DataError:
            continue  # counted when the images are decoded
        if mode not in GRAY_MODES:
            return "RGB"
    return "L"


def refuse_bad(where: str, bad: list[tuple[str, str]], total: int) -> None:
    """One line counting and naming the unreadable files ``where`` (e.g. "in photos"), and the way out."""
    names = few_names([path for path, _ in bad])
    raise DataError(f"{len(bad)} of {total} images {where} cannot be read ({names}; the first: {bad[0][1]}); "
                    "fix or remove them, or pass --keep-going to leave them out")


@dataclass
class Listing:
    """A folder's images before decoding: (paths, labels) per split that has its own folder, the class names
    and the colour mode the images are decoded to."""

    root: Path
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    labels: list[str]
    color: str

    def __len__(self) -> int:
        return sum(len(y) for _, y in self.splits.values())


def list_folder(root: Path, color: str | None = None) -> Listing:
    """Find the classes and images of a folder (``train``/``val``/``test`` sub-folders when present) without
    decoding them; ``color`` None is L if every image is grayscale, else RGB (read from the headers)."""
    root = Path(root)
    split_dirs = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if "train" not in split_dirs:
        split_dirs = {"train": root}
    scanned = {name: _scan(path) for name, path in split_dirs.items()}
    classes = scanned["train"][0]
    for name, (split_classes, _) in scanned.items():
        if split_classes != classes:
            raise DataError(
                f"{split_dirs[name]} has classes {split_classes}, but {split_dirs['train']} has {classes}"
            )
    every = [s for _, samples in scanned.values() for s in samples]
    splits = {name: (np.array([p for p, _ in samples], dtype=str), np.array([c for _, c in samples], np.int64))
              for name, (_, samples) in scanned.items()}
    return Listing(root, splits, list(classes), color or _auto_color(every))


def load_folder_raw(data_root: Path, size: int, color: str | None = None, keep_going: bool = False,
                    listing: Listing | None = None, framing: Framing = Framing(), **_: object) -> RawData:
    """Decode every image once at ``size``×``size`` in ``color`` (auto: L if all images are grayscale), as
    ``framing`` says.
    Unreadable images are all found first: they stop the load with their count and first names, or with
    ``keep_going`` they are left out and listed in ``skipped``."""
    listing = listing or list_folder(Path(data_root), color)
    bad: list[tuple[str, str]] = []
    arrays = {name: _decode_all(list(zip(paths, labels, strict=True)), size, listing.color, framing, bad)
              for name, (paths, labels) in listing.splits.items()}
    if bad and not keep_going:
        refuse_bad(f"in {listing.root}", bad, len(listing))
    return RawData(
        train=arrays["train"],
        val=arrays.get("val"),
        test=arrays.get("test"),
        labels=listing.labels,
        color=listing.color,
        skipped=[path for path, _ in bad],
    )
