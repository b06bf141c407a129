"""Figures: drawn once and cropped as savefig's tight box would crop them, and drawn by forked workers to the same
bytes as in this process, with a figure function's error raised here."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgecv.report import figures
from edgecv.report.drawing import Pending, draw, drawing
from edgecv.report.page import drawn


def _saved(fig) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=figures.DPI, bbox_inches="tight")
    return Image.open(buf)


def _f1_change():
    labels = [str(i) for i in range(10)]
    names = ["onnx int8", "onnx fp16", "torchscript", "torch", "onnx int8-dynamic"]  # long labels: past the canvas
    return labels, names, np.linspace(-1, 1, 50).reshape(10, 5)


def test_a_figure_is_cropped_to_what_it_draws_as_savefig_tight_does():
    curves = [("onnx fp32", [{"count": 5, "confidence": 0.9, "accuracy": 0.8}], 0.1)]
    for make, args in ((figures.reliability, (curves,)), (figures.f1_change, _f1_change())):
        expected = _saved(make(*args))
        got = Image.open(io.BytesIO(figures.png(make(*args))))
        assert abs(got.width - expected.width) <= 2 and abs(got.height - expected.height) <= 2, (got.size,
                                                                                                 expected.size)
        pixels = np.asarray(got.convert("L"))
        assert pixels.min() < 100  # it drew
        assert min(pixels[0].min(), pixels[-1].min(), pixels[:, 0].min(), pixels[:, -1].min()) == 255  # margins


def test_figures_drawn_by_workers_are_the_bytes_drawn_here_and_their_errors_are_raised_here():
    args = _f1_change()
    here = draw(figures.f1_change, *args)
    with drawing():
        pending = draw(figures.f1_change, *args)
        assert isinstance(pending, Pending)
        assert drawn(pending) == here
        with pytest.raises(KeyError):
            drawn(draw(figures.reliability, [("onnx fp32", [{"count": 1}], 0.1)]))  # a bin without its figures
    assert isinstance(draw(figures.f1_change, *args), bytes)  # after the block, drawn here again
