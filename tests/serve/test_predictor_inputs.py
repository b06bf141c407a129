"""Hostile inputs to the Predictor: random bytes, damaged files, arrays of every dtype and shape, every Pillow
mode, decompression bombs: a prediction or a typed error, nothing else."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from conftest import FUZZ, png_header_only
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from edgecv import Predictor
from edgecv.core.errors import EdgecvError, InvalidImageError

DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.float16, np.float32, np.float64, np.complex64, np.object_]


MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "PA", "RGBX", "RGBa", "La",
         "I;16", "I;16B", "I;16L"]


@pytest.fixture(scope="module")
def predictor(lenet_onnx) -> Predictor:
    return Predictor(lenet_onnx)


def _outcome(predictor: Predictor, image) -> str:
    """'ok' for a prediction, 'refused' for an edgecv error; anything else fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning escaping to the app is a defect too
            result = predictor.predict(image)
    except EdgecvError as exc:
        assert str(exc) and "\n" not in str(exc)
        return "refused"
    assert result.label in predictor.labels and 0.0 <= result.score <= 1.0
    return "ok"


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused_with_a_typed_error(predictor, data):
    assert _outcome(predictor, data) == "refused" or data[:8] == b"\x89PNG\r\n\x1a\n"


@FUZZ
@given(prefix=st.sampled_from(["png", "jpeg", "gif", "bmp", "tiff", "webp"]), cut=st.floats(0.0, 1.0),
       flips=st.lists(st.integers(0, 10_000), max_size=8))
def test_truncated_and_corrupted_image_files_give_typed_errors(predictor, prefix, cut, flips):
    buf = io.BytesIO()
    rgb = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, format=prefix)
    data = bytearray(buf.getvalue())
    for f in flips:
        data[f % len(data)] ^= 0xFF
    data = bytes(data[: max(1, int(len(data) * cut))])
    _outcome(predictor, data)


@FUZZ
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 40), min_size=0, max_size=5))
def test_arrays_of_every_dtype_rank_and_shape_give_a_prediction_or_a_typed_error(predictor, dtype, shape):
    arr = np.zeros(shape, dtype=dtype)
    outcome = _outcome(predictor, arr)
    valid = dtype is np.uint8 and (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))) \
        and 0 not in shape
    assert outcome == ("ok" if valid else "refused"), (dtype, shape, outcome)


@pytest.mark.parametrize("mode", MODES)
def test_every_pillow_mode_as_an_image_and_as_a_file_gives_a_prediction(predictor, mode):
    img = Image.new(mode, (13, 9))
    if mode == "LAB":  # Pillow itself converts LAB to nothing without a colour profile
        with pytest.raises(InvalidImageError, match="mode LAB, which Pillow cannot convert to L"):
            predictor.predict(img)
        return
    assert _outcome(predictor, img) == "ok"
    for fmt in ("PNG", "TIFF"):
        buf = io.BytesIO()
        try:
            img.save(buf, format=fmt)
        except (OSError, ValueError, KeyError):
            continue  # Pillow cannot write this mode in this format
        assert _outcome(predictor, buf.getvalue()) == "ok", (mode, fmt)


@FUZZ
@given(items=st.lists(st.one_of(st.binary(max_size=64), st.integers(), st.none(), st.text(max_size=8),
                                st.just(np.zeros((8, 8), np.uint8))), min_size=1, max_size=6))
def test_predict_batch_with_mixed_garbage_names_the_bad_item(predictor, items, tmp_path):
    try:
        results = predictor.predict_batch(items)
    except InvalidImageError as exc:
        assert "image" in str(exc) or str(tmp_path) in str(exc) or "does not exist" in str(exc)
        return
    assert len(results) == len(items)


def test_an_image_declaring_huge_dimensions_is_refused_before_decoding(predictor):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidImageError, match="pixel cap"):
        predictor.predict(png_header_only(60_000, 60_000))  # 3.6 gigapixels declared in 100 bytes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing was decoded


def test_a_decompression_bomb_is_refused_by_the_pixel_cap(predictor, tmp_path):
    buf = io.BytesIO()
    Image.new("L", (4000, 3000)).save(buf, format="PNG", optimize=True)  # 12 megapixels in a few KB
    assert len(buf.getvalue()) < 50_000
    small = Predictor(predictor.session._model_path, max_pixels=1_000_000)
    with pytest.raises(InvalidImageError, match="4000x3000 pixels, over the 1,000,000 pixel cap"):
        small.predict(buf.getvalue())
    assert predictor.predict(buf.getvalue()).label in predictor.labels  # under the default cap it runs
