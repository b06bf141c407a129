"""A study's report: every figure, a link to each model's report, rendered offline."""

from __future__ import annotations

import io

import numpy as np
from conftest import chromium_render
from PIL import Image


def test_the_study_report_has_every_figure_links_each_model_and_renders_offline(study, tmp_path):
    folder, _ = study
    for name in ("study_accuracy_latency", "study_size_latency", "study_throughput", "training_overlay",
                 "f1_models", "reliability_models", "confusion_models"):
        img = Image.open(io.BytesIO((folder / "plots" / f"{name}.png").read_bytes()))
        assert img.format == "PNG" and len(set(np.asarray(img.convert("L")).ravel().tolist())) > 10, name
    html = (folder / "report.html").read_text()
    for model in ("mlp", "cnn-tiny"):
        assert f'href="{model}/report.html"' in html
    assert (folder / "report.md").read_text().count("](plots/") == 7
    shot = tmp_path / "study.png"
    assert chromium_render(folder / "report.html", shot) == []
    assert np.asarray(Image.open(shot).convert("L")).std() > 10
