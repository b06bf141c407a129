"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own data set classes.

Each is decoded once into uint8 arrays; training never goes through per-sample transforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.core.errors import DataError
from edgecv.data.base import RawData

_EXPECTED = {
    "mnist": "MNIST/raw/train-images-idx3-ubyte (plus the t10k and labels files)",
    "fashion-mnist": "FashionMNIST/raw/train-images-idx3-ubyte (plus the t10k and labels files)",
    "cifar10": "cifar-10-batches-py/data_batch_1..5, test_batch and batches.meta",
}


def _open(name: str, factory, root: Path, download: bool):
    """Instantiate a torchvision data set for both splits, turning its failures into one clear line."""
    try:
        return factory(root, train=True, download=download), factory(root, train=False, download=False)
    except RuntimeError as exc:
        if download:
            raise DataError(f"could not download {name} into {root}: {exc}") from None
        raise DataError(
            f"{name} not found under {root}: pass --download to fetch it, or --data-root DIR "
            f"pointing at a folder that holds {_EXPECTED[name]}"
        ) from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{name} files under {root} are unreadable or corrupt: {exc}") from None


def _labels(dataset) -> list[str]:
    return [str(c).split(" - ")[0] for c in dataset.classes]


def _load_mnist_like(name: str, factory, data_root: Path, download: bool) -> RawData:
    train, test = _open(name, factory, data_root, download)
    if len(train.data) == 0 or train.data.ndim != 3:
        raise DataError(f"{name} files under {data_root} hold no 2-D images")
    return RawData(
        train=(train.data.numpy(), train.targets.numpy().astype(np.int64)),
        test=(test.data.numpy(), test.targets.numpy().astype(np.int64)),
        labels=_labels(train),
        color="L",
    )


def load_mnist_raw(data_root: Path, download: bool = False, **_: object) -> RawData:
    """MNIST handwritten digits (28×28 grayscale)."""
    from torchvision.datasets import MNIST

    return _load_mnist_like("mnist", MNIST, data_root, download)


def load_fashion_mnist_raw(data_root: Path, download: bool = False, **_: object) -> RawData:
    """Fashion-MNIST clothing images (28×28 grayscale)."""
    from torchvision.datasets import FashionMNIST

    return _load_mnist_like("fashion-mnist", FashionMNIST, data_root, download)


def _cifar10_class():
    from torchvision.datasets import CIFAR10

    class CIFAR10Files(CIFAR10):
        """torchvision's CIFAR-10 reader that checks the batch files exist rather than their release
        checksums, so re-packed copies load too. Downloads are still verified against the archive's
        checksum by torchvision."""

        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return CIFAR10Files


def load_cifar10_raw(data_root: Path, download: bool = False, **_: object) -> RawData:
    """CIFAR-10 (32×32 RGB, 10 classes) from torchvision's python-format batches."""
    train, test = _open("cifar10", _cifar10_class(), data_root, download)
    return RawData(
        train=(np.asarray(train.data, np.uint8), np.asarray(train.targets, np.int64)),
        test=(np.asarray(test.data, np.uint8), np.asarray(test.targets, np.int64)),
        labels=[str(c) for c in train.classes],
        color="RGB",
    )
