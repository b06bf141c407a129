"""Decoding and framing images: the pixels match torchvision's own evaluation transform."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms as T

from edgecv.core.imageio import ready_pixels, to_pixels
from edgecv.core.spec import Framing

SIZES = [(500, 375), (375, 500), (224, 224), (256, 256), (1000, 240), (240, 1000), (333, 257), (231, 300)]
MODES = {"nearest": T.InterpolationMode.NEAREST, "bilinear": T.InterpolationMode.BILINEAR,
         "bicubic": T.InterpolationMode.BICUBIC, "lanczos": T.InterpolationMode.LANCZOS}


@pytest.mark.parametrize("interpolation", list(MODES))
def test_resize_and_centre_crop_give_torchvisions_pixels_on_every_aspect_ratio(interpolation):
    rng = np.random.default_rng(0)
    reference = T.Compose([T.Resize(256, MODES[interpolation]), T.CenterCrop(224)])
    for w, h in SIZES:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        ours = to_pixels(img, "RGB", (224, 224), Framing(256, interpolation))
        theirs = np.asarray(reference(img)).transpose(2, 0, 1)
        assert ours.shape == (3, 224, 224)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{w}x{h} {interpolation}")


def test_a_non_square_crop_and_a_gray_image_are_framed_too():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400), dtype=np.uint8), "L")
    ours = to_pixels(img, "L", (160, 200), Framing(210, "bilinear"))
    theirs = np.asarray(T.Compose([T.Resize(210), T.CenterCrop((160, 200))])(img))
    np.testing.assert_array_equal(ours[0], theirs)


def test_an_array_skips_pillow_only_when_framing_would_leave_it_as_it_is():
    arr = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    assert ready_pixels(arr, "RGB", (224, 224)) is not None
    assert ready_pixels(arr, "RGB", (224, 224), Framing(224)) is not None
    assert ready_pixels(arr, "RGB", (224, 224), Framing(256)) is None  # upscaled to 256, then cropped
    framed = to_pixels(Image.fromarray(arr), "RGB", (224, 224), Framing(256))
    assert not np.array_equal(framed, arr.transpose(2, 0, 1))
