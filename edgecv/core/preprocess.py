"""Turn prepared uint8 images into the array a model file takes, as its ModelSpec describes.

Torch-free: quantisation, evaluation and the predictor feed ONNX Runtime with numpy alone. A pixel only has
256 values, so for a single image normalisation is a table lookup: each entry is computed once with the spec's
formula, and a lookup gives exactly the float a direct computation would.
"""

from __future__ import annotations

import numpy as np

from edgecv.core.errors import DataError
from edgecv.core.spec import ModelSpec

_LOOKUP_UP_TO = 4096  # values: a table lookup beats arithmetic for one small image, not for a batch


def _mean_inv_std(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(spec.mean, np.float32).reshape(-1, 1),
            (1.0 / np.asarray(spec.std, np.float32)).reshape(-1, 1))


def input_table(spec: ModelSpec) -> np.ndarray | None:
    """float32 (C, 256): what pixel value ``p`` of channel ``c`` becomes, ``(p * scale - mean[c]) / std[c]``
    (computed as ``(p * scale - mean) * (1 / std)`` in float32); None for ``--uint8-input`` graphs."""
    if spec.dtype == "uint8":
        return None
    mean, inv_std = _mean_inv_std(spec)
    values = np.arange(256, dtype=np.float32)[None]
    return np.ascontiguousarray(np.broadcast_to((values * np.float32(spec.scale) - mean) * inv_std,
                                                (spec.input_shape[0], 256)))


def normalise(images: np.ndarray, spec: ModelSpec, table: np.ndarray | None) -> np.ndarray:
    """uint8 (N, C, H, W) RGB or L images already checked against the spec -> the model's input (no shape
    checks), channels reversed first for a BGR network. Small inputs go through ``table``; batches through the
    same float32 arithmetic, which gives the same bits faster."""
    if spec.channel_order == "bgr":
        images = images[:, ::-1]
    if table is None:
        x = images
    elif images.size > _LOOKUP_UP_TO:
        mean, inv_std = _mean_inv_std(spec)
        x = images.astype(np.float32)
        x *= np.float32(spec.scale)
        x -= mean[:, :, None]
        x *= inv_std[:, :, None]
    elif len(table) == 1:
        x = table[0].take(images)
    else:
        x = np.stack([table[c].take(images[:, c]) for c in range(len(table))], axis=1)
    if spec.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x)


def normalise_into(pixels: np.ndarray, spec: ModelSpec, table: np.ndarray | None, out: np.ndarray) -> None:
    """One uint8 (C, H, W) image already checked against the spec, written as the model's input into
    ``out`` (shape (1, ...) in the spec's layout and dtype): what :func:`normalise` gives, without allocating."""
    if table is not None and spec.layout == "NCHW":
        rows = pixels[::-1] if spec.channel_order == "bgr" else pixels
        for c in range(len(table)):
            table[c].take(rows[c], out=out[0, c])
    elif table is None:
        rows = pixels[::-1] if spec.channel_order == "bgr" else pixels
        out[0] = rows.transpose(1, 2, 0) if spec.layout == "NHWC" else rows
    else:
        out[0] = normalise(pixels[None], spec, table)[0]


def to_model_input(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 (N, C, H, W) images -> the model's input: raw uint8 NHWC for ``--uint8-input`` graphs, else
    float32 ``(p * scale - mean) / std`` in the spec's layout."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"expected uint8 (N, C, H, W) images, got {images.dtype} with shape {images.shape}")
    if tuple(images.shape[1:]) != tuple(spec.input_shape):
        raise DataError(f"images are {tuple(images.shape[1:])} (C, H, W) but the model takes "
                        f"{tuple(spec.input_shape)}")
    return normalise(images, spec, input_table(spec))
