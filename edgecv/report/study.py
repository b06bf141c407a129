"""The study report: every model of a study and every format of each, compared on one page.

It reads study.json and each model's run folder (config, history, metrics, bench.json) and writes
STUDY/report.html, report.md, plots/*.png and study-table.json. Nothing is re-measured: the numbers are the
ones each model's bench and training wrote, so the study page and each model's own report agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_json
from edgecv.core.history import read_history
from edgecv.measure.constraints import Constraints, row_label, study_front
from edgecv.measure.types import BenchReport
from edgecv.report import figures
from edgecv.report import study_figures as sf
from edgecv.report.cells import fmt_bytes, paired_text, with_interval
from edgecv.report.drawing import draw, drawing
from edgecv.report.page import Figure, Links, Section, Table, write_pages
from edgecv.rundir import STUDY_FILE, RunDir

STUDY_SECTIONS = ("summary", "table", "trade-off", "training", "per-class", "calibration", "confusion", "models",
                  "environment")


def _read(study_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    record_path = study_dir / STUDY_FILE
    if not record_path.is_file():
        raise EdgecvError(f"{study_dir} has no {STUDY_FILE}: run edgecv pipeline --model a,b,... --out {study_dir}")
    try:
        record = json.loads(record_path.read_text())
        runs = {}
        for o in record["outcomes"]:
            if not o["ok"]:
                continue
            run = RunDir(study_dir / o["run_dir"])
            runs[o["model"]] = {
                "folder": o["run_dir"],  # a plain folder name: net-build for net.py:build
                "config": json.loads(run.config.read_text()),
                "metrics": json.loads(run.metrics.read_text()),
                "history": read_history(run.history),
                "bench": BenchReport.from_dict(json.loads(run.bench.read_text())),
            }
    except (OSError, ValueError, KeyError) as exc:
        raise EdgecvError(f"{study_dir} holds an unreadable study file: {exc}") from None
    return record, runs


def _rows(record: dict[str, Any], runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per model x format, as bench.json has them, plus the model, the study-wide front and whether the
    row meets the constraints."""

    pairs = [(m, v) for m, run in runs.items() for v in run["bench"].variants]
    front = study_front(pairs)
    constraints = Constraints(**(record.get("constraints") or {}))
    rows = []
    for (model, v), on in zip(pairs, front, strict=True):
        row = asdict(v)
        row.update(model=model, front=on, name=f"{model} {v.name}", variant=v.name, label=row_label(model, v),
                   meets=(not constraints.shortfalls(v)) if constraints.any() else None)
        rows.append(row)
    return rows


def build_study_report(study_dir: Path | str):
    """Write the study's report.html, report.md, plots/*.png and study-table.json."""

    study_dir = Path(study_dir)
    record, runs = _read(study_dir)
    if not runs:
        raise EdgecvError(f"no model of the study in {study_dir} finished: nothing to compare")
    rows = _rows(record, runs)
    colors = sf.model_colors(list(runs))
    write_json(study_dir / "study-table.json", {"rows": rows, "front": record.get("front"),
                                                "answer": record.get("answer")})
    labels = next(iter(runs.values()))["metrics"]["per_class"]
    labels = [c["label"] for c in labels]
    with drawing():  # the figures are drawn by workers while the sections are made
        sections = [
            _summary(record, runs, rows),
            _table(rows, record),
            _tradeoff(rows, colors),
            _training(runs, colors),
            _per_class(runs, labels),
            _calibration(runs),
            _confusions(runs, labels),
            Section("models", "Each model's report", [
                Links([(f"{m}: {r['config']['epochs']} epochs, its variants, Grad-CAM and samples",
                        f"{r['folder']}/report.html")
                       for m, r in runs.items()])]),
            _environment(runs),
        ]
        names = ", ".join(record["models"])
        title = f"edgecv study: {record.get('name') or names} on {record['data']}"
        subtitle = (f"Study folder {study_dir}: {names}, one run folder each. Every number below was measured on those "
                    "runs' files.")
        return write_pages(study_dir, title, subtitle, sections)


def _summary(record: dict[str, Any], runs: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> Section:
    status = []
    for o in record["outcomes"]:
        if o["ok"]:
            m = runs[o["model"]]["metrics"]
            status.append([o["model"], f"test accuracy {100 * m['accuracy']:.2f}% (torch), "
                                       f"{len(runs[o['model']]['bench'].variants)} variants benchmarked"])
        else:
            status.append([o["model"], f"failed: {o['error']}"])
    front = [r["name"] for r in sorted((r for r in rows if r["front"]), key=lambda r: r["latency_ms"]["p50"])]
    blocks: list[Any] = [
        f"{len(record['models'])} models on {record['data']}, every format of each: "
        f"{len(rows)} rows in all.",
        Table(["model", "outcome"], status),
        f"Pareto front across all models and formats (fastest first): {', '.join(front) or 'none'}. A row leaves "
        "the front only when another is as accurate and faster beyond noise (the whole 95% interval of the speed "
        "ratio at or above 1.05x), or more accurate and not slower beyond noise.",
    ]
    answer = record.get("answer")
    if answer:
        blocks.append(("Answer: " if answer["met"] else "No answer: ") + answer["text"] + ".")
    return Section("summary", "Summary", blocks)


def _table(rows: list[dict[str, Any]], record: dict[str, Any]) -> Section:
    sizes = sorted({int(b) for r in rows for b in r["throughput"]})
    constrained = any(r["meets"] is not None for r in rows)
    answer = (record.get("answer") or {}).get("row")
    out, classes = [], []
    for r in sorted(rows, key=lambda r: r["latency_ms"].get("p50", float("inf"))):
        m, lat = r["metrics"], r["latency_ms"]
        acc_ci = [100 * c for c in m["accuracy_ci"]] if m.get("accuracy_ci") else None
        cells = [r["model"], r["variant"] + (" *" if r["front"] else ""),
                 fmt_bytes(r["size_bytes"]),
                 with_interval(lat["p50"], r.get("latency_ci_ms", {}).get("p50")) if "p50" in lat else "-",
                 *(f"{r['throughput'][str(b)]:,.0f}" if str(b) in r["throughput"] else "-" for b in sizes),
                 fmt_bytes(r["memory"]["model_bytes"]) if (r.get("memory") or {}).get("model_bytes") else "-",
                 with_interval(100 * m["accuracy"], acc_ci, "{:.2f}") + " %",
                 "reference" if r["variant"] == "onnx fp32" else paired_text(m),
                 f"{m['macro_f1']:.4f}", f"{m['ece']:.4f}"]
        if constrained:
            cells.append("yes" if r["meets"] else "no")
        out.append(cells)
        classes.append(["best" if r["label"] == answer else ""] * len(cells))
    for o in record["outcomes"]:
        if not o["ok"]:
            out.append([o["model"], f"failed: {o['error']}", *[""] * (len(out[0]) - 2 if out else 0)])
            classes.append([""] * len(out[-1]))
    headers = ["model", "variant (* front)", "size", "p50 ms (95% CI)", *(f"img/s b{b}" for b in sizes), "memory",
               "accuracy (95% CI)", "vs its fp32", "macro F1", "ECE", *(["meets"] if constrained else [])]
    return Section("table", "Every model and format", [
        "Sorted by batch-1 p50. Accuracy is on each model's test split with a 95% Wilson interval; \"vs its fp32\" "
        "is McNemar's exact test against the same model's ONNX fp32 file. The row that best meets the constraints "
        "is in bold.",
        Table(headers, out, classes)])


def _tradeoff(rows: list[dict[str, Any]], colors: dict[str, str]) -> Section:
    batches = sorted({b for r in rows for b in r["throughput"]}, key=int)
    blocks: list[Any] = [
        Figure("study_accuracy_latency", draw(sf.accuracy_latency, rows, colors),
               "Test accuracy against batch-1 p50 latency for every model and format, with 95% intervals; the line "
               "is the Pareto front across all of them, and only its rows are named (the table names every row)."),
        Figure("study_size_latency", draw(sf.size_latency, rows, colors),
               "File size against p50 latency; the rows of the Pareto front are named."),
    ]
    if batches:
        blocks.append(Figure("study_throughput", draw(sf.throughput_accuracy, rows, colors, batches[-1]),
                             f"Test accuracy against images/s at batch {batches[-1]}."))
    return Section("trade-off", "Accuracy, latency, size and throughput", blocks)


def _training(runs: dict[str, dict[str, Any]], colors: dict[str, str]) -> Section:
    return Section("training", "Training", [
        "Every model's curves on the same axes; each model's own report has its per-epoch details.",
        Figure("training_overlay", draw(sf.training_overlay, {m: r["history"] for m, r in runs.items()}, colors),
               "Loss (log scale), accuracy, macro precision and macro recall per epoch.")])


def _confusions(runs: dict[str, dict[str, Any]], labels: list[str]) -> Section:
    matrices = [(m, np.array(r["metrics"]["confusion_matrix"])) for m, r in runs.items()]
    return Section("confusion", "Confusion matrices", [
        Figure("confusion_models", draw(sf.confusion_grid, labels, matrices),
               "Each model's confusion matrix on the test split (the trained torch model, rows: true class).")])


def _per_class(runs: dict[str, dict[str, Any]], labels: list[str]) -> Section:
    f1 = np.array([[c["f1"] for c in r["metrics"]["per_class"]] for r in runs.values()])
    worst = [(labels[j], m) for m, j in zip(runs, f1.argmin(axis=1), strict=True)]
    return Section("per-class", "Per class", [
        "F1 per class of each trained model on the test split. The weakest class of each: "
        + ", ".join(f"{m}: {label}" for label, m in worst) + ".",
        Figure("f1_models", draw(sf.f1_grid, list(runs), labels, f1), "F1 per class (rows: models).")])


def _calibration(runs: dict[str, dict[str, Any]]) -> Section:
    rows, curves = [], []
    for model, run in runs.items():
        calib = run["metrics"].get("calibration") or {}
        test = calib.get("test")
        t = calib.get("temperature", 1.0)
        rows.append([model, f"{t:.3f}" if calib.get("fitted_on") else "none",
                     f"{test['before']['ece']:.4f} -> {test['after']['ece']:.4f}" if test else
                     f"{run['metrics']['ece']:.4f}",
                     f"{test['before']['nll']:.4f} -> {test['after']['nll']:.4f}" if test else
                     f"{run['metrics']['loss']:.4f}"])
        curves.append((model, run["metrics"]["reliability"], run["metrics"]["ece"]))
    return Section("calibration", "Calibration", [
        "Each model's temperature was fitted on its validation split; test-split ECE and NLL before and after it "
        "(the exported files apply it).",
        Table(["model", "temperature", "test ECE before -> after", "test NLL before -> after"], rows),
        Figure("reliability_models", draw(figures.reliability, curves),
               "Reliability of each model's calibrated scores on the test split.")])


def _environment(runs: dict[str, dict[str, Any]]) -> Section:
    env = next(iter(runs.values()))["bench"].env
    rows = [[k, ", ".join(map(str, v)) if isinstance(v, list) else str(v)] for k, v in env.items()]
    return Section("environment", "Environment", [
        "Each model was benchmarked in its own session; speed ratios between models are unpaired (wider "
        "intervals), within a model paired by round. Where the first benchmark ran:", Table(["", ""], rows)])
