"""A run's report: every section holds the run's data, its scores match an independent evaluation, and it
renders in headless Chromium without a network request."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
from conftest import chromium_render
from PIL import Image

from edgecv.report.run import SECTIONS


class _Page(HTMLParser):
    """Sections, their images and tables, and every URL the page refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current: str | None = None
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.current = a["id"]
            self.sections[self.current] = {"images": [], "rows": [], "text": ""}
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if tag == "img" and self.current:
            self.sections[self.current]["images"].append(a["src"])
        if tag == "tr" and self.current:
            self.sections[self.current]["rows"].append([])
        if tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.current:
            self.sections[self.current]["rows"][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        if self.current:
            self.sections[self.current]["text"] += data


def test_every_report_section_holds_this_runs_data(piped):
    run, _ = piped
    page = _Page()
    page.feed((run / "report.html").read_text())
    assert list(page.sections) == list(SECTIONS)
    assert "script" not in page.tags and "link" not in page.tags
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in page.urls)
    for name, section in page.sections.items():
        for src in section["images"]:
            img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            assert img.format == "PNG" and min(img.size) > 150, name
            assert len(set(np.asarray(img.convert("L")).ravel().tolist())) > 10  # not a blank figure
    bench = json.loads((run / "bench.json").read_text())
    evals = {p.name: json.loads(p.read_text()) for p in (run / "eval").glob("*.json")}
    fp32 = evals["model.onnx.json"]["metrics"]
    int8 = evals["model.int8.onnx.json"]["metrics"]
    s = page.sections
    summary = dict((r[0], r[1]) for r in s["summary"]["rows"] if len(r) == 2)
    assert summary["recommended variant"] == bench["recommended"] and "lenet5" in summary["model"]
    params = json.loads((run / "export.json").read_text())["exports"]["model.onnx"]["params"]
    assert summary["parameters"] == f"{params:,}"
    assert bench["recommendation"] in s["summary"]["text"]
    assert len(s["training"]["images"]) == 1
    n = len(bench["variants"])
    variant_rows, end_to_end = s["variants"]["rows"][1:n + 1], s["variants"]["rows"][n + 1:]
    assert sorted(r[0].rstrip(" *") for r in variant_rows) == sorted(v["name"] for v in bench["variants"])
    # beside the model's own p50, the app's path from JPEG bytes to the label, stage by stage
    assert end_to_end[0][:4] == ["variant", "model p50 ms", "end to end p50 ms (95% CI)", "x model"]
    fastest = bench["variants"][0]
    assert end_to_end[1][:2] == [fastest["name"], f"{fastest['latency_ms']['p50']:.3f}"]
    assert end_to_end[1][5] == f"{fastest['end_to_end']['stages_ms']['preprocess']:.3f}"
    assert "a 640x480 JPEG" in s["variants"]["text"] and len(end_to_end) == n + 1
    assert len(s["variants"]["images"]) == 2
    labels = [str(d) for d in range(10)]
    per_class = s["per-class"]["rows"]
    assert [r[0] for r in per_class[1:]] == labels
    first = fp32["per_class"][0]
    assert per_class[1][1] == f"{first['precision']:.3f} / {first['recall']:.3f} / {first['f1']:.3f}"
    assert len(s["confusion"]["images"]) == 1
    a, b = np.array(fp32["confusion_matrix"]), np.array(int8["confusion_matrix"])
    pairs = s["confusion"]["rows"][1:]
    assert pairs, "a 2-epoch lenet5 confuses some digits"
    t, p = labels.index(pairs[0][0]), labels.index(pairs[0][1])
    assert (int(pairs[0][2]), int(pairs[0][3])) == (a[t, p], b[t, p])
    off = (a + b) - np.diag(np.diag(a + b))
    assert a[t, p] + b[t, p] == off.max()
    ece = {r[0]: r[1] for r in s["calibration"]["rows"][1:]}
    assert ece["onnx fp32"] == f"{fp32['ece']:.4f}" and len(s["calibration"]["images"]) == 3
    temperature = json.loads((run / "metrics.json").read_text())["calibration"]["temperature"]
    assert f"T = {temperature:.3f}" in s["calibration"]["text"] and "validation split" in s["calibration"]["text"]
    assert "interleaved rounds" in s["variants"]["text"] and "Wilson" in s["variants"]["text"]
    assert "calibration: 512 images of the digits train split" in s["variants"]["text"]
    assert bench["profile_command"] and bench["profile_command"] in s["variants"]["text"]  # layer by layer, fp32/int8
    assert len(s["samples"]["images"]) == 2 and "wrong answers" in s["samples"]["text"]
    assert "features" in s["explanations"]["text"] or "conv" in s["explanations"]["text"]
    assert len(s["explanations"]["images"]) >= 2
    env = dict((r[0], r[1]) for r in s["environment"]["rows"] if len(r) == 2)
    assert env["onnxruntime"] == bench["env"]["onnxruntime"]
    md = (run / "report.md").read_text()
    for section in SECTIONS:
        assert f"## {section.replace('-', ' ').capitalize()}" in md or section in md.lower()
    for link in re.findall(r"\]\((plots/[^)]+)\)", md):
        assert (run / link).is_file()


def test_the_report_scores_match_an_independent_evaluation(piped):
    from edgecv.measure.evaluate import evaluate

    run, _ = piped
    for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx"):
        recorded = json.loads((run / "eval" / f"{name}.json").read_text())
        fresh = evaluate(run / name)
        assert recorded["metrics"]["accuracy"] == fresh.metrics["accuracy"]
        assert recorded["predicted"] == fresh.probs.argmax(1).tolist()


def test_the_report_renders_in_headless_chromium_without_a_network_request(piped, tmp_path):
    run, _ = piped
    shot = tmp_path / "report.png"
    assert chromium_render(run / "report.html", shot) == []
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2000, 1280) and img.std() > 10  # a page was drawn, not a blank one
    leaky = tmp_path / "leaky.html"  # the same check catches a page that fetches something
    leaky.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    assert chromium_render(leaky, tmp_path / "leaky.png") == ["http://example.invalid/x.png"]
