"""Folder splits that stream: the images stay on disk and are decoded a chunk at a time.

A folder decoded whole holds N×C×H×W bytes in memory, so a large folder streams instead: memory then depends
on the chunk size and the number of decoding threads, never on the number of images. Torch-free (numpy,
Pillow and the standard library's thread pool), so ``edgecv eval``, ``bench`` and ``predict`` stream without
torch; training feeds the same decoding to torch's DataLoader workers (:mod:`edgecv.data.batches`).

Decoding happens in threads because Pillow releases the interpreter lock while it decodes and resizes.
A streamed folder is split (train/val/test) exactly as the same folder held in memory, and its training
statistics match, so ``--stream`` changes where pixels live, not what a model learns.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import Image

from edgecv.core.errors import DataError
from edgecv.core.spec import COLORS, Framing
from edgecv.data.base import TEST_FRACTION, VAL_FRACTION, DataBundle, pixel_sums, stats_from_sums, stratified_split
from edgecv.data.folder import Listing, decode_chw, decode_whole, refuse_bad

CHUNK = 256  # images decoded per chunk; two chunks are decoded ahead of the one in use
RESIDENT_MB = 1024  # folders that decode to more than this stream (EDGECV_RESIDENT_MB overrides)


def resident_limit() -> int:
    """Bytes a folder may decode to and still be held in memory whole."""
    text = os.environ.get("EDGECV_RESIDENT_MB", str(RESIDENT_MB))
    try:
        return int(float(text) * 2**20)
    except ValueError:
        raise DataError(f"EDGECV_RESIDENT_MB must be a number of MiB, got {text!r}") from None


def default_workers(workers: int | None = None) -> int:
    """Decoding threads (or DataLoader processes): ``workers`` when given, else one per core, at most 4
    (EDGECV_WORKERS overrides)."""
    if workers is not None:
        return workers
    text = os.environ.get("EDGECV_WORKERS")
    if text is None:
        return max(1, min(4, os.cpu_count() or 1))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise DataError(f"EDGECV_WORKERS must be a whole number of at least 0, got {text!r}")
    return value


class FolderSplit:
    """Labelled image files of one split, decoded on demand at ``size``×``size`` in ``color``.

    It answers what an in-memory :class:`~edgecv.data.base.Split` answers (``y``, ``len``, ``input_shape``,
    ``take``, ``head``, ``chunks``) without holding the pixels. Files that cannot be read while streaming are
    collected in ``bad`` as (path, reason) and left out of the chunks.
    """

    streamed = True

    def __init__(self, paths: np.ndarray, y: np.ndarray, size: int, color: str, framing: Framing = Framing(),
                 random_crops: bool = False) -> None:
        self.paths = np.asarray(paths, dtype=str)
        self.y = np.asarray(y, dtype=np.int64)
        self.size, self.color, self.framing = size, color, framing
        # training at a weights' framing: torchvision's random-resized crops of the whole image, drawn in
        # training (edgecv.data.batches), instead of the framed image's padded crop
        self.random_crops = random_crops
        self.bad: list[tuple[str, str]] = []

    def with_random_crops(self) -> FolderSplit:
        """The same images, trained on as random-resized crops of each whole image."""
        return FolderSplit(self.paths, self.y, self.size, self.color, self.framing, random_crops=True)

    def whole(self, i: int) -> Image.Image:
        """Image ``i`` decoded at its own size, in the split's colour; DataError if it cannot be read."""
        return decode_whole(str(self.paths[i]), self.color)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return COLORS[self.color], self.size, self.size

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 (C, H, W); DataError if it cannot be read."""
        return decode_chw(str(self.paths[i]), self.size, self.color, self.framing)

    def _try(self, i: int) -> np.ndarray | str:
        try:
            return self.decode(i)
        except DataError as exc:
            return str(exc)

    def chunks(self, size: int = CHUNK, workers: int | None = None,
               indices: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(uint8 images (n, C, H, W), their positions in the split) a chunk at a time, in order, decoded by
        ``workers`` threads; ``indices`` picks the images (default: all)."""
        order = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.bad = []
        threads = max(1, default_workers(workers))
        with ThreadPoolExecutor(threads, thread_name_prefix="edgecv-decode") as pool:
            pending: deque[tuple[np.ndarray, list[Future]]] = deque()
            starts = iter(range(0, len(order), size))

            def submit() -> None:
                start = next(starts, None)
                if start is not None:
                    part = order[start:start + size]
                    pending.append((part, [pool.submit(self._try, int(i)) for i in part]))

            submit()
            submit()
            while pending:
                part, futures = pending.popleft()
                submit()
                results = [f.result() for f in futures]
                good = [k for k, r in enumerate(results) if not isinstance(r, str)]
                self.bad.extend((str(self.paths[i]), r) for i, r in zip(part, results, strict=True)
                                if isinstance(r, str))
                x = np.stack([results[k] for k in good]) if good else np.zeros((0, *self.input_shape), np.uint8)
                yield x, part[good]

    def take(self, indices, workers: int | None = None) -> np.ndarray:
        """The images at ``indices`` as uint8 (n, C, H, W); DataError naming the first unreadable one."""
        parts = [x for x, _ in self.chunks(indices=np.asarray(indices), workers=workers)]
        if self.bad:
            raise DataError(self.bad[0][1])
        return np.concatenate(parts) if parts else np.zeros((0, *self.input_shape), np.uint8)

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` images (fewer if the split is smaller)."""
        return self.take(np.arange(min(n, len(self))))


def _sums(split: FolderSplit, progress: Callable[[int], None], workers: int | None) -> np.ndarray:
    """Per image and channel, the sum and the sum of squares of its pixels (0..1), as (N, 2, C) float64;
    NaN for the images that cannot be read (listed in ``split.bad``)."""
    sums = np.full((len(split), 2, split.input_shape[0]), np.nan)
    for x, idx in split.chunks(workers=workers):
        sums[idx] = pixel_sums(x)
        progress(len(x))
    progress(len(split.bad))
    return sums


def prepare_stream(name: str, listing: Listing, size: int, allow_flip: bool, pad_mode: str, *,
                   keep_going: bool = False, check: bool = True, progress: Callable[[int, int], None] | None = None,
                   workers: int | None = None, framing: Framing = Framing()) -> DataBundle:
    """A folder as streamed splits, carved like a folder held in memory (:func:`edgecv.data.base.prepare`).

    ``check`` decodes every image once first, as training needs: unreadable files stop the load (or are left
    out with ``keep_going``) before any training, and the training split's mean and std come from this pass.
    Without it (evaluation, which reads the statistics from the model) nothing is decoded ahead and the
    bundle's mean and std are empty.
    """
    total, done = len(listing), 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    labeled: dict[str, tuple[np.ndarray, np.ndarray] | None] = {"train": None, "val": None, "test": None}
    sums: dict[str, np.ndarray] = {}
    bad: list[tuple[str, str]] = []
    for split_name, (paths, y) in listing.splits.items():
        split = FolderSplit(paths, y, size, listing.color, framing)
        if check:
            part_sums = _sums(split, advance, workers)
            bad.extend(split.bad)
            ok = ~np.isnan(part_sums[:, 0, 0])
            paths, y, sums[split_name] = paths[ok], y[ok], part_sums[ok]
        labeled[split_name] = (paths, y)
    if bad and not keep_going:
        refuse_bad(f"in {listing.root}", bad, total)
    x, y = labeled["train"]  # type: ignore[misc]
    idx = np.arange(len(y))
    carved = {"train": (idx, y)}
    if labeled["test"] is None:
        carved["train"], carved["test"] = stratified_split(idx, y, TEST_FRACTION, "test")
    if labeled["val"] is None:
        carved["train"], carved["val"] = stratified_split(*carved["train"], VAL_FRACTION, "validation")
    splits = {}
    for split_name in ("train", "val", "test"):
        if split_name in carved:
            pick, sy = carved[split_name]
            paths = x[pick]
        else:
            paths, sy = labeled[split_name]  # type: ignore[misc]
        if len(sy) == 0:
            raise DataError(f"data set {name!r} has an empty {split_name} split")
        splits[split_name] = FolderSplit(paths, sy, size, listing.color, framing)
    mean: list[float] = []
    std: list[float] = []
    if check:
        mean, std = stats_from_sums(sums["train"][carved["train"][0]], size * size)
    return DataBundle(name=name, labels=listing.labels, color=listing.color, mean=mean, std=std,
                      allow_flip=allow_flip, pad_mode=pad_mode, skipped=[path for path, _ in bad], framing=framing,
                      **splits)
