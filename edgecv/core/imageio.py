"""Decoding images the one way edgecv does everywhere: training data from folders and the Predictor share it,
so an app sees exactly the pixels the model was trained on.

Open lazily, refuse oversize or empty images before decoding pixels, apply the EXIF orientation, bring any
Pillow mode to L or RGB, then resize (straight to the model's size, or the shorter side and a centre crop, as
torchvision's evaluation transform does on a Pillow image) with the model's interpolation. Torch-free.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgecv.core.errors import InvalidImageError
from edgecv.core.spec import COLORS, Framing

MAX_PIXELS = 50_000_000
RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I", "F"}  # scaled to 8 bits, not clipped


def open_image(source: Any, name: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A lazily opened Pillow image from a path, bytes, a PIL image or a uint8 array (H×W or H×W×C);
    oversize, empty and unreadable images raise :class:`InvalidImageError` before their pixels are decoded."""
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        img = from_array(source, name)
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            handle: Any = io.BytesIO(bytes(source))
        elif isinstance(source, (str, Path)):
            handle = str(source)
        else:
            raise InvalidImageError(f"{name}: expected a path, bytes, a PIL image or a numpy array, "
                                    f"got {type(source).__name__}")
        try:
            with warnings.catch_warnings():  # Pillow's warnings on damaged files never reach the app
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(handle)
        except FileNotFoundError:
            raise InvalidImageError(f"{name} does not exist") from None
        except UnidentifiedImageError:
            raise InvalidImageError(f"{name} is not an image (Pillow cannot identify it)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImageError(f"{name} is over the {min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels):,} "
                                    "pixel cap (a decompression bomb, by Pillow's own check)") from None
        except (OSError, ValueError) as exc:
            raise InvalidImageError(f"{name} is not an image Pillow can read: {exc}") from None
    w, h = img.size
    if w == 0 or h == 0:
        raise InvalidImageError(f"{name} is empty ({w}x{h} pixels)")
    if w * h > max_pixels:
        raise InvalidImageError(f"{name} has {w}x{h} pixels, over the {max_pixels:,} pixel cap")
    return img


def from_array(arr: np.ndarray, name: str = "image") -> Image.Image:
    """A uint8 H×W (gray) or H×W×C (C = 1, 3 RGB or 4 RGBA) array as a Pillow image."""
    if arr.dtype != np.uint8:
        raise InvalidImageError(f"{name}: arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr), "L")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(arr), "RGB" if arr.shape[2] == 3 else "RGBA")
    raise InvalidImageError(f"{name}: arrays must be H×W or H×W×C with C in 1, 3, 4; got shape {arr.shape}")


def ready_pixels(source: Any, color: str, size: tuple[int, int], framing: Framing = Framing()) -> np.ndarray | None:
    """uint8 (C, H, W) pixels without Pillow for an array that is already at ``size`` (H, W) in ``color``
    (H×W or H×W×1 for L, H×W×3 for RGB) and that ``framing`` leaves as it is: exactly what :func:`to_pixels`
    would give. None for anything else."""
    if not isinstance(source, np.ndarray) or source.dtype != np.uint8 or source.shape[:2] != size:
        return None
    if framing.resize and framing.resize != min(size):
        return None
    if source.ndim == 2:
        return source[None] if color == "L" else None
    if source.ndim == 3 and source.shape[2] == COLORS.get(color):
        return source.transpose(2, 0, 1)
    return None


def to_pixels(img: Image.Image, color: str, size: tuple[int, int], framing: Framing = Framing(),
              name: str = "image") -> np.ndarray:
    """Decode, orient, convert to ``color`` (L or RGB) and bring to ``size`` (H, W) as ``framing`` says:
    uint8 (C, H, W)."""
    return chw(decoded(img, color, name, lambda im: frame(im, size, framing)))


def chw(img: Image.Image) -> np.ndarray:
    """A decoded L or RGB Pillow image as uint8 (C, H, W)."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decoded(img: Image.Image, color: str, name: str = "image",
            then: Callable[[Image.Image], Image.Image] | None = None) -> Image.Image:
    """``img`` decoded, oriented and converted to ``color`` (L or RGB) at its own size, then passed through
    ``then`` (a resize or crop), with any damage raised as :class:`InvalidImageError`."""
    try:
        with warnings.catch_warnings():  # damage shows as an error below or as odd pixels, never a warning
            warnings.simplefilter("ignore")
            img = _convert(img, color, name)
            img = then(img) if then else img
            img.load()
            return img
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"{name} cannot be decoded (truncated or corrupt?): {exc}") from None


def _convert(img: Image.Image, color: str, name: str) -> Image.Image:
    """Orient and bring to ``color``; Pillow decodes lazily, so damage surfaces here or in the caller's resize."""
    if img.format and img.getexif().get(0x0112, 1) != 1:  # decoded files only; arrays have no EXIF
        img = ImageOps.exif_transpose(img)
    if img.mode in SIXTEEN_BIT:  # 16-bit and 32-bit gray: scale to 0..255 rather than clip at 255
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "La":  # premultiplied alpha: Pillow converts it only by way of LA
        img = img.convert("LA")
    if img.mode != color:
        try:
            img = img.convert(color)
        except ValueError:
            raise InvalidImageError(f"{name} is in Pillow mode {img.mode}, which Pillow cannot convert to "
                                    f"{color}") from None
    return img


def frame(img: Image.Image, size: tuple[int, int], framing: Framing) -> Image.Image:
    """``img`` at ``size`` (H, W): resized straight to it, or (``framing.resize`` > 0) its shorter side resized
    to ``resize``, the longer in proportion (rounded down), and the centre cropped, as torchvision's ``Resize``
    and ``CenterCrop`` do to a Pillow image."""
    h, w = size
    resample = RESAMPLE[framing.interpolation]
    if not framing.resize:
        return img if img.size == (w, h) else img.resize((w, h), resample)
    width, height = img.size
    short, long = min(width, height), max(width, height)
    new_short, new_long = framing.resize, int(framing.resize * long / short)
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_size != img.size:
        img = img.resize(new_size, resample)
    top, left = int(round((new_size[1] - h) / 2.0)), int(round((new_size[0] - w) / 2.0))
    return img.crop((left, top, left + w, top + h))
