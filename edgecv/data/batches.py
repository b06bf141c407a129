"""Training batches straight from a uint8 tensor resident on the training device (airbench style), or
streamed from a folder by torch's DataLoader workers.

Resident: the whole split is copied to the device once; every batch is an index slice of a seeded
permutation, augmented as a batch (random crop with padding, optional horizontal flip) and normalised on the
device. There are no DataLoader workers and no per-sample PIL transforms.

Streamed (:class:`StreamBatches`, for a :class:`~edgecv.data.stream.FolderSplit`): the same permutation and
the same batch augmentation on the device, but each batch's images are decoded from disk by DataLoader
worker processes a few batches ahead, so memory does not grow with the number of images. Given the same
pixels, both draw exactly the same batches. A split marked for random-resized crops (a torchvision or timm
model fine-tuned on a folder) is cropped from each whole image in the worker, torchvision's way, instead of
the padded crop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as TF  # noqa: N812

from edgecv.core.errors import DataError
from edgecv.core.imageio import chw
from edgecv.data.base import Split
from edgecv.data.stream import FolderSplit, default_workers

CROP_AREA = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults, as its reference training recipes use
CROP_RATIO = (3 / 4, 4 / 3)


def random_crop(x: torch.Tensor, pad: int, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Crop each image of float batch ``x`` at a random offset inside a ``pad``-pixel border."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode if mode == "reflect" and pad < min(h, w) else "constant")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    # two gathers over broadcast (never materialised) index views: no (b, c, h, w) index tensors to allocate
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * pad)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left to right."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


class DeviceBatches:
    """Iterate (images, labels) batches of a :class:`Split` kept on ``device`` as uint8.

    ``gen`` (a CPU generator) drives shuffling and augmentation, so a checkpoint that saves its state
    makes a resumed epoch draw exactly the same batches. ``shard=(rank, world)`` keeps every world-th image of
    each epoch's permutation, starting at ``rank``: ranks that share the seed take disjoint, equal shares, and
    their batches ``i`` together are the single-process batch ``i`` of ``batch_size * world`` images.
    """

    def __init__(
        self,
        split: Split,
        mean: list[float],
        std: list[float],
        batch_size: int,
        device: torch.device,
        *,
        shuffle: bool = False,
        crop_pad: int = 0,
        pad_mode: str = "constant",
        flip: bool = False,
        gen: torch.Generator | None = None,
        channels_last: bool = False,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.device = device
        self.y = torch.from_numpy(split.y).to(device)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self.batch_size = batch_size
        self.rank, self.world = shard
        self.shuffle = shuffle
        self.crop_pad = crop_pad
        self.pad_mode = pad_mode
        self.flip = flip
        self.gen = gen if gen is not None else torch.Generator().manual_seed(0)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Dropping the ragged last batch keeps BatchNorm away from 1-image batches; a split smaller than
        # one batch is still used whole.
        self.drop_last = drop_last and self._share() >= batch_size
        self._keep(split)

    def _keep(self, split) -> None:
        self.x = torch.from_numpy(split.x).to(self.device)

    def _images(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The uint8 images of each batch of indices, on the device."""
        for idx in batches:
            yield self.x[idx]

    def _share(self) -> int:
        """Images per rank and epoch: an equal share, so every rank runs the same number of batches."""
        return len(self.y) // self.world

    def __len__(self) -> int:
        if self.drop_last:
            return self._share() // self.batch_size
        return (self._share() + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def normalize(self, x_uint8_or_float: torch.Tensor) -> torch.Tensor:
        """uint8-valued pixels to the network's normalised float input."""
        x = x_uint8_or_float.float() * self._scale + self._shift
        return x.contiguous(memory_format=self.memory_format)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        if self.shuffle:
            order = torch.randperm(n, generator=self.gen)
        else:
            order = torch.arange(n)
        if self.world > 1:
            order = order[: self._share() * self.world][self.rank :: self.world]
        order = order.to(self.y.device)
        batches = [order[start : start + self.batch_size]
                   for start in range(0, len(self) * self.batch_size, self.batch_size)]
        for idx, images in zip(batches, self._images(batches), strict=True):
            x = images.float()
            if self.crop_pad:
                x = random_crop(x, self.crop_pad, self.pad_mode, self.gen)
            if self.flip:
                x = random_flip(x, self.gen)
            yield self.normalize(x), self.y[idx]


def random_resized_crop(split: FolderSplit, i: int, seed: int) -> np.ndarray:
    """Image ``i`` of ``split`` as torchvision's ``RandomResizedCrop`` trains a torchvision or timm model: a
    crop of 8-100% of the whole image's area at an aspect ratio of 3/4 to 4/3, resized to the split's size with
    its framing's interpolation; ``seed`` fixes the crop, so a resumed epoch draws the same one."""
    img = split.whole(i)
    with torch.random.fork_rng(devices=[]):  # torchvision draws from torch's global generator
        torch.manual_seed(seed)
        top, left, h, w = RandomResizedCrop.get_params(img, list(CROP_AREA), list(CROP_RATIO))
    crop = TF.resized_crop(img, top, left, h, w, [split.size, split.size],
                           interpolation=InterpolationMode(split.framing.interpolation))
    return chw(crop)


class _Decoded(Dataset):
    """A folder split's images by position (or (position, crop seed) for random-resized crops), decoded in a
    DataLoader worker."""

    def __init__(self, split: FolderSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        if isinstance(key, tuple):
            pixels = random_resized_crop(self.split, *key)
        else:
            pixels = self.split.decode(key)
        return torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())


class _EpochOrder:
    """The batch sampler: this epoch's batches of indices, set by :class:`StreamBatches` before each pass."""

    def __init__(self) -> None:
        self.batches: list[list[int] | list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[int] | list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamBatches(DeviceBatches):
    """:class:`DeviceBatches` for a folder that streams: ``workers`` DataLoader processes decode each epoch's
    batches (in the seeded order) ahead of the training step; labels alone are kept on the device.

    Memory holds about ``2 × workers`` batches of pixels, whatever the number of images. ``workers=0`` decodes
    in the training process itself.
    """

    def __init__(self, split: FolderSplit, *args, workers: int | None = None, **kwargs) -> None:
        self.workers = default_workers(workers)
        super().__init__(split, *args, **kwargs)

    def _keep(self, split) -> None:
        self.random_crops = split.random_crops and self.shuffle
        self.order = _EpochOrder()
        persistent = self.workers > 0 and self.shuffle  # training reuses its workers every epoch
        self.loader = DataLoader(_Decoded(split), batch_sampler=self.order, num_workers=self.workers,
                                 persistent_workers=persistent, pin_memory=self.device.type == "cuda",
                                 prefetch_factor=2 if self.workers else None)

    def _images(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        self.order.batches = [idx.tolist() for idx in batches]
        if self.random_crops:  # one seed per epoch from the run's generator, one crop per image from it
            base = int(torch.randint(0, 2**62, (1,), generator=self.gen))
            self.order.batches = [[(i, base + i) for i in idx] for idx in self.order.batches]
        loaded = iter(self.loader)
        while True:
            try:
                images = next(loaded)
            except StopIteration:
                return
            except DataError as exc:  # a worker's error arrives with its traceback in the message
                last = str(exc).strip().splitlines()[-1]
                raise DataError(last.split("DataError: ", 1)[-1]) from None
            yield images.to(self.device, non_blocking=True)


def batches_for(split, *args, workers: int | None = None, **kwargs) -> DeviceBatches:
    """Batches of ``split``: streamed by DataLoader workers for a folder that streams, else resident."""
    if getattr(split, "streamed", False):
        return StreamBatches(split, *args, workers=workers, **kwargs)
    return DeviceBatches(split, *args, **kwargs)
