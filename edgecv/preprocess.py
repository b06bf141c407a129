"""Turn prepared uint8 images into the array a model file takes, as its ModelSpec describes.

Torch-free: quantisation, evaluation and the predictor feed ONNX Runtime with numpy alone.
"""

from __future__ import annotations

import numpy as np

from edgecv.errors import DataError
from edgecv.spec import ModelSpec


def to_model_input(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 (N, C, H, W) images -> the model's input: raw uint8 NHWC for ``--uint8-input`` graphs, else
    float32 ``(p * scale - mean) / std`` in the spec's layout."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"expected uint8 (N, C, H, W) images, got {images.dtype} with shape {images.shape}")
    if tuple(images.shape[1:]) != tuple(spec.input_shape):
        raise DataError(f"images are {tuple(images.shape[1:])} (C, H, W) but the model takes "
                        f"{tuple(spec.input_shape)}")
    if spec.dtype == "uint8":
        x = images
    else:
        mean = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
        inv_std = (1.0 / np.asarray(spec.std, np.float32)).reshape(1, -1, 1, 1)
        x = (images.astype(np.float32) * np.float32(spec.scale) - mean) * inv_std
    if spec.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x)
