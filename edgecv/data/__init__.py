"""The DATASETS registry and :func:`load_dataset`, which returns prepared uint8 splits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecv.core.errors import DataError
from edgecv.core.registry import Registry
from edgecv.core.spec import COLORS, Framing
from edgecv.data.base import DataBundle, DatasetInfo, Split, prepare
from edgecv.data.digits import load_digits_raw
from edgecv.data.folder import Listing, list_folder, load_folder_raw, refuse_bad
from edgecv.data.stream import FolderSplit, prepare_stream, resident_limit
from edgecv.data.torchvision_sets import load_cifar10_raw, load_fashion_mnist_raw, load_mnist_raw

DATASETS: Registry[DatasetInfo] = Registry("data set", DataError)
DEFAULT_DATA_ROOT = Path("data")

for _info in (
    DatasetInfo("digits", "scikit-learn's 1,797 handwritten digits (the embedded default)",
                "embedded", 8, "L", 10, False, "constant", load_digits_raw),
    DatasetInfo("mnist", "MNIST handwritten digits, 70,000 images",
                "torchvision (--download)", 28, "L", 10, False, "constant", load_mnist_raw),
    DatasetInfo("fashion-mnist", "Fashion-MNIST clothing, 70,000 images",
                "torchvision (--download)", 28, "L", 10, True, "constant", load_fashion_mnist_raw),
    DatasetInfo("cifar10", "CIFAR-10 objects, 60,000 colour images",
                "torchvision (--download)", 32, "RGB", 10, True, "reflect", load_cifar10_raw),
    DatasetInfo("folder", "folder:PATH, one sub-folder per class (train/val/test optional)",
                "your files", None, "auto", None, False, "reflect", load_folder_raw),
):
    DATASETS.add(_info.name, _info)


def parse_data_name(name: str) -> tuple[DatasetInfo, Path | None]:
    """Split ``folder:PATH`` into its registry entry and path; other names carry no path."""
    base, sep, arg = name.partition(":")
    info = DATASETS.get(base)
    if base == "folder":
        if not sep or not arg:
            raise DataError("an image folder is given as folder:PATH, e.g. --data folder:./my_images")
        return info, Path(arg).expanduser()
    if sep:
        raise DataError(f"data set {base!r} takes no :PATH suffix (only folder:PATH does)")
    return info, None


def load_dataset(
    name: str,
    size: int,
    *,
    color: str | None = None,
    data_root: Path | str | None = None,
    download: bool = False,
    keep_going: bool = False,
    stream: bool | None = None,
    check: bool = True,
    progress: Callable[[int, int], None] | None = None,
    framing: Framing = Framing(),
) -> DataBundle:
    """Load data set ``name`` as train/val/test uint8 splits of size×size images in ``color``.

    ``name`` is a registered data set or ``folder:PATH``; ``data_root`` is where torchvision data sets
    live (default ``./data``). The split is fixed and stratified, independent of any training seed.
    ``keep_going`` leaves out a folder's unreadable images (listed in the bundle's ``skipped``) instead of
    refusing the folder.

    A folder streams (its splits are :class:`~edgecv.data.stream.FolderSplit`) when ``stream`` is True, or
    when it is None and the folder would decode to more than ``EDGECV_RESIDENT_MB``; ``check`` then decodes
    it once ahead (unreadable files, training statistics), reporting ``progress(done, total)``. The built-in
    data sets always stay in memory. ``framing`` says how each image is brought to size×size (straight, or
    the shorter side resized and the centre cropped), with which interpolation.
    """
    info, path = parse_data_name(name)
    root = path if path is not None else Path(data_root or DEFAULT_DATA_ROOT)
    canonical = f"folder:{path.resolve()}" if path is not None else info.name
    if path is not None:
        listing = list_folder(path, color)
        if streams(listing, size, stream):
            return prepare_stream(canonical, listing, size, info.allow_flip, info.pad_mode, keep_going=keep_going,
                                  check=check, progress=progress, framing=framing)
        raw = load_folder_raw(path, size, color, keep_going, listing=listing, framing=framing)
    else:
        raw = info.load(data_root=root, download=download, size=size, color=color, keep_going=keep_going)
    return prepare(canonical, raw, size, color, info.allow_flip, info.pad_mode, framing)


def load_whole(name: str, size: int, *, color: str | None = None, data_root: Path | str | None = None,
               keep_going: bool = False, stream: bool | None = None,
               framing: Framing = Framing()) -> tuple[str, list[str], Split | FolderSplit]:
    """Every image of data set ``name`` as one split, for scoring a model that was not trained on it: a folder
    whole (its train/val/test sub-folders together, nothing carved), a built-in set's three splits joined.
    Returns the canonical name, the class names and the split. A folder that streams finds unreadable files as
    it is scored; one held in memory refuses them here, or leaves them out with ``keep_going``."""
    info, path = parse_data_name(name)
    if path is None:
        bundle = load_dataset(name, size, color=color, data_root=data_root, keep_going=keep_going, framing=framing)
        parts = (bundle.train, bundle.val, bundle.test)
        return bundle.name, bundle.labels, Split(np.concatenate([p.x for p in parts]),
                                                 np.concatenate([p.y for p in parts]))
    listing = list_folder(path, color)
    every = FolderSplit(np.concatenate([p for p, _ in listing.splits.values()]),
                        np.concatenate([y for _, y in listing.splits.values()]), size, listing.color, framing)
    canonical = f"folder:{path.resolve()}"
    if streams(listing, size, stream):
        return canonical, listing.labels, every
    images, kept = [], []
    for x, where in every.chunks():
        images.append(x)
        kept.append(where)
    if every.bad and (not keep_going or len(every.bad) == len(every)):
        refuse_bad(f"in {listing.root}", every.bad, len(every))
    return canonical, listing.labels, Split(np.concatenate(images), every.y[np.concatenate(kept)])


def streams(listing: Listing, size: int, stream: bool | None) -> bool:
    """Whether a folder streams: as asked, or when it would not fit the resident budget."""
    if stream is not None:
        return stream
    return len(listing) * COLORS[listing.color] * size * size > resident_limit()


__all__ = ["DATASETS", "DataBundle", "DatasetInfo", "FolderSplit", "Split", "load_dataset", "load_whole",
           "parse_data_name"]
