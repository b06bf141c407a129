"""`edgecv pipeline`, `edgecv report` and `edgecv explain`: every stage on one run directory, stages skipped
when current, a report whose every section holds this run's data and renders in headless Chromium without a
network request, and Grad-CAM that points where the evidence is."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error, run_cli
from PIL import Image

from edgecv.core.history import read_history
from edgecv.report.run import SECTIONS

STAGE_LINE = re.compile(r"^\[(\d)/5\] (\w+)\s+(.*)$", re.M)


def _stages(stdout: str) -> dict[str, str]:
    return {m.group(2): m.group(3) for m in STAGE_LINE.finditer(stdout)}


def test_pipeline_runs_every_stage_and_ends_with_the_bench_table_and_report(piped):
    run, stdout = piped
    stages = _stages(stdout)
    assert list(stages) == ["train", "export", "quantize", "bench", "report"]
    assert all("skipped" not in s for s in stages.values())
    for name in ("checkpoints/best.pt", "model.onnx", "model.pt", "model.int8.onnx", "model.int8-dynamic.onnx",
                 "model.fp16.onnx", "quantize.json", "bench.json", "report.html", "report.md"):
        assert (run / name).is_file(), name
    bench = json.loads((run / "bench.json").read_text())
    assert len(bench["variants"]) == 6
    tail = stdout[stdout.index("[5/5]"):]
    for v in bench["variants"]:
        assert v["name"] in tail  # the bench table comes after the last stage line
    assert stdout.strip().splitlines()[-1] == f"report: {run / 'report.html'}"
    history = read_history(run / "history.csv")
    assert len(history) == 2 and all(0 < r["train_precision"] <= 1 and 0 < r["train_recall"] <= 1 for r in history)


@pytest.mark.slow  # make test-all
def test_a_rerun_skips_current_stages_and_a_stale_input_redoes_only_what_follows(piped, tmp_path):
    run, _ = piped
    args = ("pipeline", "--model", "lenet5", "--epochs", "2", "--out", run, "--seconds", "0.05")
    before = (run / "report.html").stat().st_mtime_ns
    again = _stages(run_cli(*args, check=True).stdout)
    assert set(again.values()) == {"current, skipped"}
    assert (run / "report.html").stat().st_mtime_ns == before
    os.utime(run / "model.onnx")  # the fp32 ONNX file is newer than what was made from it
    partly = _stages(run_cli(*args, check=True).stdout)
    assert [k for k, v in partly.items() if v == "current, skipped"] == ["train", "export"]
    assert (run / "report.html").stat().st_mtime_ns > before
    # a bench.json from before intervals and isolated memory (schema 1) is stale: bench and report run again
    old = json.loads((run / "bench.json").read_text())
    old.pop("schema")
    (run / "bench.json").write_text(json.dumps(old))
    rebenched = _stages(run_cli(*args, check=True).stdout)
    assert [k for k, v in rebenched.items() if v != "current, skipped"] == ["bench", "report"]
    assert json.loads((run / "bench.json").read_text())["schema"] == 2


@pytest.mark.slow  # make test-all
def test_force_redoes_every_stage(tmp_path):
    run = tmp_path / "run"
    args = ("pipeline", "--model", "mlp", "--epochs", "1", "--out", run, "--seconds", "0.02")
    run_cli(*args, check=True)
    first = (run / "checkpoints" / "best.pt").stat().st_mtime_ns
    forced = _stages(run_cli(*args, "--force", check=True).stdout)
    assert all("skipped" not in s for s in forced.values())
    assert (run / "checkpoints" / "best.pt").stat().st_mtime_ns > first
    # an mlp has no convolution: the report says so instead of drawing Grad-CAM
    assert "no convolution layers" in (run / "report.html").read_text()


def test_pipeline_and_report_refuse_bad_input_in_one_line(piped, tmp_path):
    run, _ = piped
    assert_user_error(run_cli("pipeline", "--model", "cnn", "--out", run), "holds a different run", "--force")
    assert_user_error(run_cli("pipeline", "--model", "lenet5", "--epochs", "2", "--no-calibrate", "--out", run),
                      "calibrate", "--force")
    (tmp_path / "file").write_text("x")
    assert_user_error(run_cli("pipeline", "--out", tmp_path / "file"), "is a file")
    assert_user_error(run_cli("pipeline", "--epochs", "0", "--out", tmp_path / "r"), "--epochs")
    assert_user_error(run_cli("pipeline", "--seconds", "0", "--out", tmp_path / "r"), "--seconds")
    assert_user_error(run_cli("pipeline", "--model", "nope", "--out", tmp_path / "r"), "nope")
    half = tmp_path / "half"
    shutil.copytree(run, half)
    (half / "bench.json").unlink()
    assert_user_error(run_cli("report", half), "bench.json", "edgecv bench")
    assert_user_error(run_cli("report", tmp_path / "missing"), "no such run directory")


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
    variant_rows = s["variants"]["rows"][1:]
    assert sorted(r[0].rstrip(" *") for r in variant_rows) == sorted(v["name"] for v in bench["variants"])
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


def _chromium(page: Path, out: Path) -> list[str]:
    """Screenshot ``page`` in headless Chromium; the URLs the page itself asked the network for."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is needed to render the report (make test installs it: apt-get install chromium)"
    log = out.with_suffix(".netlog.json")
    subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    "--disable-background-networking", f"--user-data-dir={out.parent / 'profile'}",
                    "--window-size=1280,2000", f"--screenshot={out}", f"--log-net-log={log}",
                    "--net-log-capture-mode=Everything", page.resolve().as_uri()],
                   capture_output=True, timeout=600, check=True)
    net = json.loads(log.read_text())
    start_job = net["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # the page's own requests carry its origin as initiator; the browser's background ones "not an origin"
    starts = [e["params"] for e in net["events"] if e["type"] == start_job and "url" in e.get("params", {})]
    return [p["url"] for p in starts if p.get("initiator") != "not an origin"]


def test_the_report_renders_in_headless_chromium_without_a_network_request(piped, tmp_path):
    run, _ = piped
    shot = tmp_path / "report.png"
    assert _chromium(run / "report.html", shot) == []
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2000, 1280) and img.std() > 10  # a page was drawn, not a blank one
    leaky = tmp_path / "leaky.html"  # the same check catches a page that fetches something
    leaky.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    assert _chromium(leaky, tmp_path / "leaky.png") == ["http://example.invalid/x.png"]


def test_explain_writes_gradcam_overlays_and_activation_grids(piped, tmp_path):
    run, _ = piped
    out = tmp_path / "explain"
    proc = run_cli("explain", run, "--samples", "3", "--out", out, check=True)
    grads = sorted(out.glob("gradcam_*.png"))
    acts = sorted(out.glob("activations_*.png"))
    assert len(grads) == 3 and len(acts) == 2  # lenet5 has two convolutions
    assert "Grad-CAM at conv" in proc.stdout or "Grad-CAM at features" in proc.stdout
    img_path = tmp_path / "seven.png"
    from edgecv.data import load_dataset

    Image.fromarray(load_dataset("digits", 8).test.x[0, 0]).save(img_path)
    one = tmp_path / "one"
    run_cli("explain", run / "checkpoints" / "best.pt", "--image", img_path, "--out", one, check=True)
    assert len(list(one.glob("gradcam_*.png"))) == 1
    assert_user_error(run_cli("explain", run, "--layer", "nope", "--out", one), "--layer", "nope")
    assert_user_error(run_cli("explain", tmp_path / "missing"), "no such checkpoint")
    assert_user_error(run_cli("explain", run, "--image", tmp_path / "missing.png", "--out", one), "does not exist")


def test_grad_cam_points_at_the_evidence():
    """A network whose class-0 score is the mean brightness: Grad-CAM for class 0 must peak on the bright
    patch and be zero where the image is black."""
    import torch
    from torch import nn

    from edgecv.core.spec import ModelSpec
    from edgecv.explain import grad_cam

    conv = nn.Conv2d(1, 1, 1, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    spec = ModelSpec(labels=["bright", "dark"], input_shape=(1, 16, 16), mean=[0.0], std=[1.0], color="L")
    pixels = np.zeros((1, 1, 16, 16), np.uint8)
    pixels[0, 0, 2:6, 9:13] = 255
    cam = grad_cam(model, spec, pixels, layer="0")
    assert cam.predicted.tolist() == [0] and cam.layer == "0"
    assert cam.cams[0, 2:6, 9:13].min() > 0.5 and cam.cams[0, 10:, :6].max() == 0
    assert np.unravel_index(cam.cams[0].argmax(), (16, 16))[0] in range(1, 7)
