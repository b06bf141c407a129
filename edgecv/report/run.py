"""`edgecv report RUN_DIR`: one self-contained page with everything a run measured.

It reads the run's files (config, history, metrics, export.json, bench.json), scores every benchmarked
variant on the test split once more to get its predictions (kept as eval/<file>.json), and draws the
figures: training curves, accuracy against latency, per-class changes, confusion matrices, calibration,
sample predictions, Grad-CAM and feature maps. Writes report.html, report.md and plots/*.png.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.fsutil import write_json
from edgecv.core.history import read_history
from edgecv.core.spec import ModelSpec
from edgecv.explain import activation_figure, activations, grad_cam, load_explainable, overlay_figure
from edgecv.measure.evaluate import load_split, score
from edgecv.report import figures
from edgecv.report.cells import end_to_end_table, fmt_bytes, paired_text, with_interval
from edgecv.report.drawing import draw, drawing
from edgecv.report.page import BuiltReport, Figure, Section, Table, write_pages
from edgecv.rundir import ONNX_FP32, RunDir
from edgecv.runtimes import RuntimeOptions, load_model

REQUIRED = {"config": "edgecv train", "history": "edgecv train", "metrics": "edgecv train",
            "bench": "edgecv bench RUN_DIR"}  # RunDir's files the page needs, and which command makes each
SECTIONS = ("summary", "training", "variants", "per-class", "confusion", "calibration", "samples",
            "explanations", "environment")


@dataclass
class Scored:
    """One benchmarked variant scored on the test split."""

    name: str
    file: Path
    bench: dict[str, Any]
    metrics: dict[str, Any]
    probs: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)


def build_report(run_dir: Path | str, data_root: str | None = None, samples: int = 24, explain: int = 6,
                 progress: Callable[[str], None] | None = None, trust_code: bool = False,
                 scores: dict[str, tuple[dict[str, Any], np.ndarray]] | None = None) -> BuiltReport:
    """Write RUN_DIR/report.html, report.md and plots/*.png (``trust_code``: rebuild a user's module that
    changed since the run began). ``scores``: what bench scored each variant on the test split in this
    process (:attr:`BenchReport.scores`), used instead of scoring those files again."""
    run_dir = Path(run_dir)
    progress = progress or (lambda _m: None)
    files = RunDir(run_dir)
    missing = [f"{getattr(files, name).name} (made by {cmd})" for name, cmd in REQUIRED.items()
               if not getattr(files, name).is_file()]
    if not run_dir.is_dir():
        raise EdgecvError(f"{run_dir}: no such run directory")
    if missing:
        raise EdgecvError(f"{run_dir} has no {', '.join(missing)}; run edgecv pipeline to make them all")
    run = _read_run(run_dir)
    progress("scoring every variant on the test split")
    scored, split = _score_variants(run_dir, run, data_root, trust_code, scores or {})
    labels = list(run["spec"].labels)
    progress("drawing figures")
    reference = run["bench"]["reference"]
    with drawing():  # the figures are drawn by workers while the sections (and Grad-CAM) are made
        sections = [
            _summary(run, scored), _training(run), _variants(run, scored),
            _per_class(labels, scored, reference), _confusion(labels, scored, reference),
            _calibration(scored, reference, split.y, run["metrics"].get("calibration")),
            _samples(labels, scored, split, reference, samples),
            _explanations(run_dir, labels, split, explain, trust_code), _environment(run["bench"]),
        ]
        return _write(run_dir, run, sections)


def _read_run(run_dir: Path) -> dict[str, Any]:
    files = RunDir(run_dir)
    try:
        run = {name: json.loads(getattr(files, name).read_text()) for name in ("config", "metrics", "bench")}
        run["history"] = read_history(files.history)
        run["spec"] = ModelSpec.from_dict(json.loads(files.spec.read_text()))
        export = files.export_record
        run["export"] = json.loads(export.read_text()).get("exports", {}) if export.is_file() else {}
    except (OSError, ValueError, KeyError) as exc:
        raise EdgecvError(f"{run_dir} holds an unreadable run file: {exc}") from None
    if not run["bench"].get("variants"):
        raise EdgecvError(f"{run_dir}/bench.json lists no variants; run edgecv bench {run_dir}")
    return run


def _variant_file(run_dir: Path, recorded: str) -> Path:
    found = RunDir(run_dir).variant_named(Path(recorded).name)
    if found is not None:
        return found
    if Path(recorded).is_file():
        return Path(recorded)
    raise EdgecvError(f"bench.json lists {recorded}, which is no longer in {run_dir}; run edgecv bench again")


def _score_variants(run_dir: Path, run: dict[str, Any], data_root: str | None, trust_code: bool,
                    known: dict[str, tuple[dict[str, Any], np.ndarray]]):
    """Every variant's metrics and probabilities on the test split: ``known`` ones as given, the rest scored
    here; each is written to the run's eval records."""
    scored, split = [], None
    for v in run["bench"]["variants"]:
        path = _variant_file(run_dir, v["file"])
        openvino = v.get("format") == "openvino"  # the same ONNX file on OpenVINO's runtime: its own row
        if split is None:
            split = load_split(path, run["spec"], None, data_root)
        if v["name"] in known and len(known[v["name"]][1]) == len(split.y):
            metrics, probs = known[v["name"]]
        else:
            loaded = load_model(path, RuntimeOptions(runtime="openvino" if openvino else "onnxruntime",
                                                     trust_code=trust_code))
            metrics, probs = score(loaded, split)
        scored.append(Scored(v["name"], path, v, metrics, probs))
        write_json(RunDir(run_dir).eval_record(path, "openvino" if openvino else "onnxruntime"),
                   {"model": str(path), "variant": v["name"], "data": split.name, "split": "test",
                    "metrics": metrics, "predicted": probs.argmax(1).tolist(),
                    "confidence": probs.max(1).round(6).tolist()})
    return scored, split


def _pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.2f}%"


def _by_name(scored: list[Scored], name: str) -> Scored:
    return next((s for s in scored if s.name == name), scored[0])


def _int8(scored: list[Scored], reference: str) -> Scored:
    """The static int8 variant, or failing that any other than the reference."""
    return next((s for s in scored if s.name.endswith("int8")), next((s for s in scored if s.name != reference),
                                                                     scored[0]))


def _summary(run: dict[str, Any], scored: list[Scored]) -> Section:
    cfg, spec, bench, metrics = run["config"], run["spec"], run["bench"], run["metrics"]
    onnx = run["export"].get(ONNX_FP32, {})
    c, h, w = spec.input_shape
    rows = [
        ["data set", f"{cfg['data']}: {c}x{h}x{w} images, {spec.num_classes} classes ({', '.join(spec.labels[:12])}"
                     f"{', ...' if spec.num_classes > 12 else ''}), {scored[0].metrics['num_samples']} test images"],
        ["model", f"{cfg['model']}, {cfg['epochs']} epochs, {cfg['optimizer']} lr {cfg['lr']:g} {cfg['schedule']}"],
        ["parameters", f"{onnx['params']:,}" if "params" in onnx else "n/a (not exported)"],
        ["MACs per image", f"{onnx['macs']:,}" if "macs" in onnx else "n/a (not exported)"],
        ["best epoch", f"{metrics.get('epoch', 'n/a')} (lowest validation loss)"],
        ["test accuracy (torch)", _pct(metrics["accuracy"])],
        ["recommended variant", bench.get("recommended") or "none"],
        ["temperature", f"{spec.temperature:.3f}, fitted on the validation split; applied inside every exported "
                        "file" if spec.temperature != 1.0 else "none (raw scores)"],
    ]
    return Section("summary", "Summary", [Table(["", ""], rows), f"Why: {bench.get('recommendation', '')}"])


def _training(run: dict[str, Any]) -> Section:
    history = run["history"]
    best = min(history, key=lambda r: r["val_loss"])
    fig = draw(figures.training_curves, history, f"{run['config']['model']} on {run['config']['data']}: train "
               "against validation per epoch")
    text = (f"{len(history)} epochs; the lowest validation loss ({best['val_loss']:.4f}) came at epoch "
            f"{int(best['epoch'])}, with validation accuracy {_pct(best['val_acc'])}. Training metrics are taken "
            "on the augmented training batches as they were trained.")
    return Section("training", "Training", [text, Figure("training", fig, "Loss, accuracy, macro "
                                                         "precision and macro recall per epoch.")])


def _variants(run: dict[str, Any], scored: list[Scored]) -> Section:
    bench = run["bench"]
    variants = sorted(bench["variants"], key=lambda v: v["latency_ms"].get("p50", float("inf")))
    sizes = sorted({int(b) for v in variants for b in v["throughput"]})
    rows, classes = [], []
    for v in variants:
        m, lat, mem, cold = v["metrics"], v["latency_ms"], v.get("memory") or {}, v.get("cold_start_ms")
        acc_ci = [100 * c for c in m["accuracy_ci"]] if m.get("accuracy_ci") else None
        rows.append([v["name"] + (" *" if v["pareto"] else ""), fmt_bytes(v["size_bytes"]),
                     with_interval(lat["p50"], v.get("latency_ci_ms", {}).get("p50")) if "p50" in lat else "-",
                     f"{lat['p99']:.3f}" if "p99" in lat else "-",
                     *(f"{v['throughput'].get(str(b), float('nan')):,.0f}" for b in sizes),
                     fmt_bytes(mem["model_bytes"]) if mem.get("model_bytes") else "-",
                     f"{cold['load']:.1f} + {cold['first_run']:.1f}" if cold else "-",
                     with_interval(100 * m["accuracy"], acc_ci, "{:.2f}") + " %",
                     "reference" if v["name"] == bench.get("reference") else paired_text(m),
                     f"{m['macro_f1']:.4f}", f"{m['ece']:.4f}", _pct(m.get("agreement"))])
        classes.append(["best" if v["name"] == bench.get("recommended") else ""] * len(rows[-1]))
    headers = ["variant (* Pareto)", "size", "p50 ms (95% CI)", "p99 ms", *(f"img/s b{b}" for b in sizes),
               "memory", "cold start ms (load + first run)", "accuracy (95% CI)", f"vs {bench['reference']}",
               "macro F1", "ECE", f"agrees with {bench['reference']}"]
    blocks: list[Any] = [
        f"Batch-1 latency and throughput on {bench['env'].get('provider_requested', 'cpu')} "
        f"({bench['env'].get('cpu_features', '')}); metrics on the same test images. The recommended variant is "
        "in bold. A variant counts as faster only when the 95% interval of its speed-up is at or above "
        f"{bench.get('method', {}).get('min_speedup', 1.05):g}x; the Pareto front (*) uses that rule.",
        Table(headers, rows, classes),
        *_end_to_end_blocks(bench, variants),
        *_method_lines(bench),
        Figure("accuracy_latency", draw(figures.accuracy_latency, variants),
               "Test accuracy against p50 latency; blue points are on the Pareto front."),
        Figure("size_latency", draw(figures.size_latency, variants), "File size against p50 latency."),
    ]
    if bench.get("sweep"):
        blocks.append(Figure("sweep", draw(figures.sweep, bench["sweep"]),
                             "Images/s against the p99 latency of one call, per variant and setting (threads, "
                             "OpenVINO's THROUGHPUT hint) across the batch sizes (edgecv bench --threads 1,2)."))
    if bench.get("within_budget"):
        blocks.append(f"Latency budget: {bench['within_budget']}.")
    blocks += [f"Note: {n}" for n in bench.get("notes", [])]
    if bench.get("profile_command"):
        blocks.append(f"Where int8 gains or loses against fp32, layer by layer: {bench['profile_command']} "
                      "(docs/measure.md).")
    return Section("variants", "Variants", blocks)


def _end_to_end_blocks(bench: dict[str, Any], variants: list[dict[str, Any]]) -> list[Any]:
    """What an app waits for per variant, from a photo's JPEG bytes to the label, beside the model's own p50."""
    headers, rows = end_to_end_table(variants)
    if not rows:
        return []
    how = (bench.get("method") or {}).get("end_to_end") or "edgecv.Predictor from a photo's bytes to the label"
    return [f"End to end, as an app runs each variant: {how}.", Table(headers, rows)]


def _method_lines(bench: dict[str, Any]) -> list[str]:
    """Where each number of the table comes from: split, images, rounds, threads, int8 calibration data."""
    method = bench.get("method") or {}
    if not method:
        return ["This bench.json predates measurement notes; run edgecv bench again for intervals and memory."]
    lines = [f"Latency: {method['latency']}.", f"Accuracy: {method['accuracy']}.",
             f"Memory: {method['memory']}; cold start is session creation plus the first batch-1 inference, "
             "timed in that process."]
    if method.get("int8_calibration"):
        lines.append(f"int8 calibration: {method['int8_calibration']}; the test split never calibrates.")
    return lines


def _per_class(labels: list[str], scored: list[Scored], reference: str) -> Section:
    ref = _by_name(scored, reference)
    others = [s for s in scored if s is not ref]
    ref_f1 = [c["f1"] for c in ref.metrics["per_class"]]
    rows, classes = [], []
    for i, label in enumerate(labels):
        row, css = [label], [""]
        for s in [ref, *others]:
            c = s.metrics["per_class"][i]
            row.append(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}")
            delta = c["f1"] - ref_f1[i]
            css.append("" if s is ref or abs(delta) < 1e-9 else ("up" if delta > 0 else "down"))
        rows.append(row)
        classes.append(css)
    change = np.array([[100 * (s.metrics["per_class"][i]["f1"] - ref_f1[i]) for s in others]
                       for i in range(len(labels))]) if others else np.zeros((len(labels), 1))
    fig = draw(figures.f1_change, labels, [s.name for s in others] or [ref.name], change)
    changed = int((np.abs(change) > 1e-9).sum())
    return Section("per-class", "Per class", [
        f"Precision / recall / F1 per class on the test split. Cells are green where a variant's F1 is above "
        f"{ref.name}'s and red where it is below; {changed} class-variant pairs differ.",
        Table(["class", *(s.name for s in [ref, *others])], rows, classes),
        Figure("f1_change", fig, f"F1 change against {ref.name} per class, in percentage points."),
    ])


def _confusion(labels: list[str], scored: list[Scored], reference: str) -> Section:
    ref, int8 = _by_name(scored, reference), _int8(scored, reference)
    a, b = np.array(ref.metrics["confusion_matrix"]), np.array(int8.metrics["confusion_matrix"])
    fig = draw(figures.confusions, labels, [(ref.name, a), (int8.name, b)], f"{int8.name} minus {ref.name}")
    pairs = []
    for (i, j), _ in np.ndenumerate(a):
        if i != j and (a[i, j] or b[i, j]):
            pairs.append((int(a[i, j] + b[i, j]), labels[i], labels[j], int(a[i, j]), int(b[i, j])))
    pairs.sort(key=lambda p: -p[0])
    blocks: list[Any] = [Figure("confusion", fig, f"Confusion matrices of {ref.name} and "
                                f"{int8.name} on the test split, and their difference (rows: true class).")]
    if pairs:
        blocks += ["The most-confused pairs:",
                   Table(["true class", "predicted as", ref.name, int8.name],
                         [[t, p, str(x), str(y)] for _, t, p, x, y in pairs[:8]])]
    else:
        blocks.append(f"Neither {ref.name} nor {int8.name} confuses any pair of classes on the "
                      f"{int(a.sum())} test images.")
    return Section("confusion", "Confusion matrices", blocks)


def _temperature_blocks(calib: dict[str, Any] | None) -> list[Any]:
    """The temperature, where it was fitted, and NLL / ECE / reliability before and after it."""

    if not calib or not calib.get("fitted_on"):
        return ["No temperature was fitted (trained with --no-calibrate, or by an edgecv without calibration): the "
                "scores are the network's raw softmax."]
    t = calib["temperature"]
    rows = [[split, str(n), f"{calib[key]['before']['nll']:.4f} -> {calib[key]['after']['nll']:.4f}",
             f"{calib[key]['before']['ece']:.4f} -> {calib[key]['after']['ece']:.4f}"]
            for split, key, n in (("validation (fitted here)", "val", calib.get("val_images", "")),
                                  ("test", "test", "")) if key in calib]
    test = calib.get("test", calib["val"])
    curves = [("raw scores", test["before"]["reliability"], test["before"]["ece"]),
              (f"divided by T = {t:.3f}", test["after"]["reliability"], test["after"]["ece"])]
    return [
        f"After training, one temperature T = {t:.3f} was fitted on the {calib.get('val_images', '?')} images of the "
        "validation split (never the test split) to minimise the validation NLL. Every exported file divides its "
        "logits by T itself, so ONNX Runtime, TorchScript, the Predictor and every variant below return calibrated "
        "scores; predictions do not change. NLL and ECE of the trained torch model before and after:",
        Table(["split", "images", "NLL before -> after", "ECE before -> after"], rows),
        *(["T stopped at its bound (1/4 or 4): the validation split has too few mistakes to place it, so the "
           "scores may still be over- or under-confident."] if calib.get("at_bound") else []),
        Figure("reliability_temperature", draw(figures.reliability, curves),
               "Test-split reliability of the raw scores and of the calibrated ones."),
    ]


def _calibration(scored: list[Scored], reference: str, y: np.ndarray, calib: dict[str, Any] | None = None) -> Section:
    ref = _by_name(scored, reference)
    curves = [(s.name, s.metrics["reliability"], s.metrics["ece"]) for s in scored]
    rows = [[s.name, f"{s.metrics['ece']:.4f}", _pct(s.metrics["accuracy"]), _pct(s.metrics["confidence_right"]),
             _pct(s.metrics["confidence_wrong"])] for s in scored]
    right = ref.predicted == y
    return Section("calibration", "Calibration", [
        *_temperature_blocks(calib),
        "Expected calibration error (15 bins) and mean top-1 probability on right and on wrong answers.",
        Table(["variant", "ECE", "accuracy", "confidence when right", "confidence when wrong"], rows),
        Figure("reliability", draw(figures.reliability, curves),
               "Reliability diagram: accuracy against confidence per bin; the dashed line is perfect calibration."),
        Figure("confidence", draw(figures.confidence_histogram, ref.name, ref.probs.max(1), right),
               f"{ref.name}: how confident it is on right and wrong answers."),
    ])


def _samples(labels: list[str], scored: list[Scored], split: Any, reference: str, count: int) -> Section:
    ref = _by_name(scored, reference)
    y = split.y
    pick = np.sort(np.random.default_rng(0).choice(len(y), size=min(count, len(y)), replace=False))
    pred = ref.predicted
    caps = [f"true {labels[y[i]]}\npred {labels[pred[i]]} {ref.probs[i].max():.0%}" for i in pick]
    grid = draw(figures.image_grid, split.images(pick), caps, [bool(pred[i] == y[i]) for i in pick],
                f"{len(pick)} random test images, predicted by {ref.name} (green right, red wrong)")
    mistakes = [(float(s.probs[i].max()), s.name, i) for s in scored for i in np.flatnonzero(s.predicted != y)]
    mistakes.sort(key=lambda m: -m[0])
    blocks: list[Any] = [Figure("samples", grid, "Random test images with true and predicted labels.")]
    if mistakes:
        top = mistakes[:16]
        owner = {s.name: s for s in scored}
        caps = [f"{name}\ntrue {labels[y[i]]}\npred {labels[owner[name].predicted[i]]} {conf:.0%}"
                for conf, name, i in top]
        gallery = draw(figures.image_grid, split.images([i for _, _, i in top]), caps, [False] * len(top),
                       "The most confident mistakes, over every variant")
        blocks += [f"{len(mistakes)} wrong answers over {len(scored)} variants; the most confident ones:",
                   Figure("mistakes", gallery, "The most confident mistakes and the variant that made "
                                                            "each.")]
    else:
        order = np.argsort(ref.probs.max(1))[:16]
        caps = [f"true {labels[y[i]]}\npred {labels[pred[i]]} {ref.probs[i].max():.0%}" for i in order]
        gallery = draw(figures.image_grid, split.images(order), caps, [True] * len(order),
                       f"No variant makes a mistake: {ref.name}'s least confident answers instead")
        blocks += [f"No variant gets any of the {len(y)} test images wrong, so there are no mistakes to show; "
                   f"these are {ref.name}'s least confident answers.",
                   Figure("mistakes", gallery, "The least confident (right) answers.")]
    return Section("samples", "Samples", blocks)


def _explanations(run_dir: Path, labels: list[str], split: Any, count: int, trust_code: bool) -> Section:
    model, spec, _ = load_explainable(run_dir, trust_code)
    pick = np.sort(np.random.default_rng(1).choice(len(split.y), size=min(count, len(split.y)), replace=False))
    try:
        cams = grad_cam(model, spec, split.images(pick))
    except ModelError as exc:
        return Section("explanations", "Explanations", [f"No Grad-CAM or feature maps: {exc}."])
    blocks: list[Any] = [
        f"Grad-CAM at {cams.layer} (the last convolution) for the predicted class, from the trained torch model.",
        Figure("gradcam", draw(overlay_figure, cams, labels, split.y[pick]),
               "Test images (top) and their Grad-CAM overlays (bottom)."),
    ]
    maps = activations(model, spec, split.images(pick[:1]))
    names = list(maps)
    for name in dict.fromkeys([names[0], names[len(names) // 2], names[-1]]):
        blocks.append(Figure(f"maps_{name.replace('.', '_')}",
                             draw(activation_figure, name, maps[name], split.images(pick[:1])[0]),
                             f"Feature maps of {name} for the first image above."))
    return Section("explanations", "Explanations", blocks)


def _environment(bench: dict[str, Any]) -> Section:
    rows = [[k, ", ".join(map(str, v)) if isinstance(v, list) else str(v)] for k, v in bench["env"].items()]
    return Section("environment", "Environment", ["Where the benchmark ran:", Table(["", ""], rows)])


def _write(run_dir: Path, run: dict[str, Any], sections: list[Section]) -> BuiltReport:
    cfg = run["config"]
    return write_pages(run_dir, f"edgecv report: {cfg['model']} on {cfg['data']}",
                       f"Run directory {run_dir}. Every number below was measured on this run's files.", sections)
