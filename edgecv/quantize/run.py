"""`quantize()`: one ONNX file in, its int8 and fp16 variants out, each measured and recorded in quantize.json."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.cpu import host_cpu
from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.fsutil import atomic_path, check_writable_folder, sha256, write_json
from edgecv.core.onnxfile import load_onnx, metadata, quantization_of
from edgecv.core.spec import ModelSpec
from edgecv.data import load_whole
from edgecv.modeldata import check_square, data_source, keeps_going, load_bundle
from edgecv.quantize import methods as m
from edgecv.quantize.aware import AwareResult, fit_budget
from edgecv.quantize.data import FEW_CALIB, QuantData, load_quant_data, whole_quant_data
from edgecv.quantize.graph import model_io, prepared_graph, squeeze_excite_nodes, stamp, swish_nodes
from edgecv.quantize.speed import check_speed
from edgecv.quantize.types import (
    DYNAMIC_NOTE,
    LARGE_DROP_PP,
    MethodResult,
    QuantizeError,
    QuantizeOptions,
    QuantizeReport,
)
from edgecv.rundir import RunDir
from edgecv.runtimes import RuntimeOptions, load_model

MIN_QUANT_OPSET = 13
FP16_NOTE = ("this CPU has no native fp16 arithmetic: ONNX Runtime's CPU provider computes the fp16 file in "
             "float32 between casts, so it runs no faster than fp32 here; the file is meant for GPUs (CUDA, TensorRT)")


def output_path(model_path: Path, method: str, out_dir: Path | None = None, tuned_for: str = "onnxruntime") -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` / ``model.int8-dynamic.onnx`` / ``model.fp16.onnx``; an int8-static
    file tuned for OpenVINO is ``model.int8-openvino.onnx``."""
    name = model_path.name
    stem = name[:-len(".onnx")] if name.endswith(".onnx") else model_path.stem
    suffix = m.SUFFIX[method]
    if tuned_for != "onnxruntime":
        suffix = suffix.replace(".onnx", f"-{tuned_for}.onnx")
    return (out_dir or model_path.parent) / f"{stem}{suffix}"


def _quant_data(path: Path, spec: ModelSpec, options: QuantizeOptions) -> QuantData:
    """The images to calibrate and measure on: an edgecv run's own splits (calibration from training), or,
    for a file from elsewhere, a seeded draw of every image of ``--data`` to calibrate on and the rest to
    measure on."""
    name, root = data_source(path, spec, options.data, options.data_root)
    if spec.dataset:
        bundle = load_bundle(name, root, spec.input_shape, keeps_going(path), framing=spec.framing)
        return load_quant_data(spec, bundle, options.calib_size, options.label_map)
    check_square(spec.input_shape)
    canonical, labels, part = load_whole(name, spec.size[0], color=spec.color, data_root=root,
                                         keep_going=keeps_going(path), stream=False, framing=spec.framing)
    return whole_quant_data(spec, canonical, labels, part, options.calib_size, options.label_map)


class _Job:
    """One quantisation run over one source model: shared data, fp32 reference and scratch folder."""

    def __init__(self, path: Path, options: QuantizeOptions, progress: Callable[[str], None]) -> None:
        self.path, self.options, self.progress = path, options, progress
        progress(f"checking {path.name}")
        self.model = load_onnx(path)
        if quantization_of(self.model) is not None or any(
                n.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
                for n in self.model.graph.node):
            raise ModelError(f"{path} is already quantised; quantise the fp32 model instead")
        outputs = len(self.model.graph.output)
        self.input_name, dims, _ = model_io(self.model, options.facts.output if options.facts else None)
        self.pruned = len(self.model.graph.output) != outputs  # the class scores kept as the only output
        fp32 = load_model(path, spec=options.facts)  # the spec: the file's own, the facts stated over it
        self.spec: ModelSpec = fp32.spec
        self.spec_notes: list[str] = fp32.details.get("spec_notes", [])
        progress("loading data")
        self.data: QuantData = _quant_data(path, self.spec, options)
        self.sha256 = sha256(path)
        self.fixed_batch = dims[0] if dims and dims[0] else None
        progress("measuring the fp32 model")
        self.ref_val, self.ref_test = fp32.logits(self.data.val_x), fp32.logits(self.data.test_x)
        self.val_acc = accuracy(self.ref_val, self.data.val_y)
        self.test_acc = accuracy(self.ref_test, self.data.test_y)

    def load(self, path: Path):
        """A model file on the engine the int8 files are tuned for (CPU), with this job's spec."""
        return load_model(path, RuntimeOptions(runtime=self.options.tune_for), spec=self.spec)

    def measure(self, path: Path) -> np.ndarray:
        return self.load(path).logits(self.data.val_x)

    def drop_of(self, path: Path) -> float:
        return 100.0 * (self.val_acc - accuracy(self.measure(path), self.data.val_y))


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of (N, classes) logits against labels ``y``."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, logits.argmax(axis=1)))


def _guarded(what: str, fn: Callable[[], None]) -> None:
    """Run an onnxruntime.quantization step; its failures become one-line errors."""
    try:
        fn()
    except EdgecvError:
        raise
    except Exception as exc:  # the quantiser raises bare Exception, AssertionError, ValueError, ...
        text = str(exc).strip().splitlines()
        raise EdgecvError(f"{what} failed: {text[0] if text else type(exc).__name__}") from None


def quantize(model_path: Path | str, options: QuantizeOptions | None = None,
             progress: Callable[[str], None] | None = None) -> QuantizeReport:
    """Quantise ``model_path`` with each of ``options.methods``, measure every result, and record them in
    ``quantize.json`` next to the outputs. Raises :class:`QuantizeError` (with the report) if a method
    fails; the other methods' files are still written."""
    options = options or QuantizeOptions()
    options.validate()
    progress = progress or (lambda _msg: None)
    path = Path(model_path)
    out_dir = options.out_dir or path.parent
    check_writable_folder(out_dir, EdgecvError)
    job = _Job(path, options, progress)
    cpu = host_cpu()
    flavour = m.default_flavour(cpu)
    notes = []
    calib_n = len(job.data.calib)
    if "int8-static" in options.methods:
        if calib_n < options.calib_size:
            notes.append(f"the training split has only {calib_n} images; calibrating with all of them")
        if calib_n < FEW_CALIB:
            notes.append(f"only {calib_n} calibration images: ranges from fewer than {FEW_CALIB} are unreliable")
    report = QuantizeReport(
        source={"file": path.name, "size_bytes": path.stat().st_size, "sha256": job.sha256,
                "val_accuracy": job.val_acc, "test_accuracy": job.test_acc},
        data={"name": job.data.name, "calib_images": calib_n, "calib_split": job.data.calib_split,
              "val_images": len(job.data.val_y), "test_images": len(job.data.test_y)},
        host={"cpu": cpu.describe(), "vnni": cpu.vnni, "native_fp16": cpu.native_fp16,
              "int8_default": asdict(flavour), "onnxruntime": _ort_version()},
        notes=notes,
    )
    report.data["spec_notes"] = job.spec_notes
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecvError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="edgecv-quantize-") as scratch:
        work = Path(scratch)
        prepared, prepared_model = work / "prepared.onnx", None
        source = _quantisable(job, work, report.notes)
        if any(x.startswith("int8") for x in options.methods):
            progress("preparing the graph (quant_pre_process)")
            _guarded("onnxruntime's quant_pre_process", lambda: _prepare(source, prepared))
            prepared_model = prepared_graph(prepared, options.tune_for)
        for method in options.methods:
            target = output_path(path, method, out_dir, options.tune_for)
            try:
                result = _run_method(job, method, target, source if method == "fp16" else prepared,
                                     prepared_model, flavour, work)
            except EdgecvError as exc:
                report.failures[method] = str(exc)
                continue
            report.results.append(result)
    if report.results and options.speed_check:
        batch = job.fixed_batch or options.speed_batch
        progress(f"timing every file against fp32 at batch {batch}")
        check_speed(job.load, job.spec.input_shape, batch, path, report.results)
    if report.results:
        _record(out_dir, report)
    if report.failures:
        raise QuantizeError("; ".join(f"{k}: {v}" for k, v in report.failures.items()), report)
    return report


def _quantisable(job: _Job, work: Path, notes: list[str]) -> Path:
    """The source file as the quantiser takes it: converted first to opset 13 (onnx's version converter) when
    it is older, as onnxruntime.quantization needs, and with the class scores as its only output."""
    import onnx

    opset = next((o.version for o in job.model.opset_import if o.domain in ("", "ai.onnx")), MIN_QUANT_OPSET)
    if opset >= MIN_QUANT_OPSET and not job.pruned:
        return job.path
    model = job.model
    if opset < MIN_QUANT_OPSET:
        model = _converted(model, opset)
        notes.append(f"{job.path.name} is at opset {opset}; converted to opset {MIN_QUANT_OPSET} first, as "
                     "onnxruntime.quantization requires")
    source = work / "source.onnx"
    onnx.save(model, str(source))
    return source


def _converted(model: Any, opset: int) -> Any:
    import onnx

    try:
        return onnx.version_converter.convert_version(model, MIN_QUANT_OPSET)
    except Exception as exc:  # the converter raises RuntimeError/ValueError/its own types per op
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgecvError(f"cannot convert opset {opset} to {MIN_QUANT_OPSET} for quantisation: {first}") from None


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _prepare(source: Path, prepared: Path) -> None:
    from onnxruntime.quantization import quant_pre_process

    with m.quiet_quantizer():
        quant_pre_process(str(source), str(prepared))


def _settings(job: _Job, method: str, flavour: m.Int8Flavour) -> m.Int8Settings:
    o = job.options
    return m.Int8Settings(
        activation_type=(o.activation_type or flavour.activation_type) if method == "int8-static" else "uint8",
        weight_type=o.weight_type or flavour.weight_type,
        reduce_range=flavour.reduce_range if o.reduce_range is None else o.reduce_range,
        per_channel=o.per_channel, calib_method=o.calib_method, calib_size=len(job.data.calib),
        format="QDQ" if method == "int8-static" else "dynamic (ConvInteger/MatMulInteger)",
        tuned_for=o.tune_for if method == "int8-static" else "onnxruntime",
    )


def _quantizer(job: _Job, method: str, source: Path, flavour: m.Int8Flavour, work: Path,
               notes: list[str]) -> tuple[Callable[[Path, Any, Any], None], dict[str, Any]]:
    """The method as a function (out, nodes to keep in float, nodes to quantise alone) and its settings."""
    options = job.options
    if method == "fp16":
        settings: dict[str, Any] = {"keep_io_types": True, "float32_ops": "the converter's default block list"}
        if not host_cpu().native_fp16:
            notes.append(FP16_NOTE)

        def quantize_to(out: Path, exclude, only) -> None:
            _guarded("fp16 conversion", lambda: m.fp16(source, out, exclude))
        return quantize_to, settings
    s = _settings(job, method, flavour)
    settings = s.to_dict()
    if method == "int8-static":
        reader = m.calibration_reader(job.input_name, job.data.calib, job.fixed_batch)
        cache = work / f"calibration-{options.calib_method}.json"

        def quantize_to(out: Path, exclude, only) -> None:
            _guarded("onnxruntime's quantize_static",
                     lambda: m.int8_static(source, out, s, reader, cache, exclude, only))
    else:
        settings = {k: v for k, v in settings.items() if k not in ("calib_method", "calib_size")}
        if options.activation_type == "int8":
            notes.append("ONNX Runtime's dynamic kernels take uint8 activations; --activation-type int8 "
                         "applies to int8-static only")

        def quantize_to(out: Path, exclude, only) -> None:
            _guarded("onnxruntime's quantize_dynamic", lambda: m.int8_dynamic(source, out, s, exclude, only))
    if options.activation_type is None and options.weight_type is None and options.reduce_range is None:
        settings["chosen_for"] = flavour.reason
    return quantize_to, settings


def _run_method(job: _Job, method: str, target: Path, source: Path, prepared_model: Any,
                flavour: m.Int8Flavour, work: Path) -> MethodResult:
    """Quantise with one method (within the budget, if one is set) and write ``target`` atomically."""
    start = time.perf_counter()
    options, progress = job.options, job.progress
    notes: list[str] = []
    quantize_to, settings = _quantizer(job, method, source, flavour, work, notes)
    kept = [*_float_softmax(job, method, prepared_model, notes), *_float_gates(job, method, prepared_model)]
    if kept:
        whole = quantize_to

        def quantize_to(out: Path, exclude, only) -> None:
            whole(out, (*kept, *exclude), only)
    progress(f"{method}: quantising")
    scratch = work / f"{method}.onnx"
    quantize_to(scratch, (), None)
    candidates: list[str] = []
    if method != "fp16":
        import onnx

        candidates = m.quantized_nodes(method, prepared_model, onnx.load(str(scratch)))
        if method == "int8-dynamic" and any(n.op_type == "Conv" for n in prepared_model.graph.node
                                            if n.name in set(candidates)):
            notes.append(DYNAMIC_NOTE)
    aware = AwareResult()
    if options.max_accuracy_drop is not None:
        progress(f"{method}: checking the {options.max_accuracy_drop:g} pp budget")
        aware = fit_budget(method, scratch, candidates, quantize_to, job.drop_of, job.measure, job.ref_val,
                           options.max_accuracy_drop, options.max_float_nodes, work, progress)
    progress(f"{method}: measuring")
    quantized = job.load(scratch)
    val_acc = accuracy(quantized.logits(job.data.val_x), job.data.val_y)
    test_acc = accuracy(quantized.logits(job.data.test_x), job.data.test_y)
    del quantized
    info = {
        "method": method, "settings": settings, "float_nodes": aware.float_nodes,
        "source_file": job.path.name, "source_sha256": job.sha256, "host_cpu": host_cpu().describe(),
        "onnxruntime": _ort_version(), "calibration_data": job.data.name if method == "int8-static" else None,
        "val_accuracy": val_acc, "test_accuracy": test_acc,
        "fp32_val_accuracy": job.val_acc, "fp32_test_accuracy": job.test_acc,
    }
    val_drop = 100.0 * (job.val_acc - val_acc)
    if options.max_accuracy_drop is None and val_drop > LARGE_DROP_PP:
        notes.append(f"lost {val_drop:.2f} pp of validation accuracy against fp32; --max-accuracy-drop PP returns "
                     "the most sensitive nodes to float until the loss is within PP")
    try:
        with atomic_path(target) as tmp:
            shutil.copyfile(scratch, tmp)
            stamp(tmp, metadata(job.model), job.spec, info, job.model.doc_string)
            size = tmp.stat().st_size
    except OSError as exc:
        raise EdgecvError(f"cannot write {target}: {exc.strerror or exc}") from None
    return MethodResult(
        method=method, file=str(target), size_bytes=size, val_accuracy=val_acc, test_accuracy=test_acc,
        val_drop_pp=val_drop, test_drop_pp=100.0 * (job.test_acc - test_acc),
        settings=settings, float_nodes=aware.float_nodes,
        aware_steps=[{"returned_to_float": n, "val_drop_pp": d} for n, d in aware.steps],
        sensitivity=[{"node": n, "relative_logit_error": e} for n, e in aware.ranking],
        notes=notes, seconds=time.perf_counter() - start,
    )


def _float_softmax(job: _Job, method: str, prepared: Any, notes: list[str]) -> list[str]:
    """For a file whose outputs are probabilities, the Softmax that produces them, kept in float: quantised,
    its output would round every probability below 1/255 to 0 (the loss and top-5 accuracy suffer; measured
    on a 10-class digits file: NLL 0.84 -> 2.08, top-5 98.8% -> 96.5%, top-1 unchanged)."""
    if job.spec.outputs != "probabilities" or method != "int8-static" or prepared is None:
        return []
    outputs = {o.name for o in prepared.graph.output}
    kept = [n.name for n in prepared.graph.node if n.op_type == "Softmax" and outputs & set(n.output)]
    if kept:
        notes.append("kept the output Softmax in float: quantised, it would round small probabilities to 0")
    return kept


def _float_gates(job: _Job, method: str, prepared: Any) -> list[str]:
    """For an int8-static file tuned for OpenVINO, the SiLU gates and every squeeze-excite block kept in float
    (methods.int8_static's docs). Only for OpenVINO: ONNX Runtime's file with its SE blocks in float is slower
    than with them quantised (int8/fp32 at 224, batch 1 / batch 8: mobilenet_v3_large 0.85x / 0.88x -> 0.76x /
    0.76x, efficientnet_b0 0.98x / 1.30x -> 0.77x / 0.90x, 2-core Intel Xeon with AVX-512 VNNI)."""
    if job.options.tune_for != "openvino" or method != "int8-static" or prepared is None:
        return []
    return list(dict.fromkeys([*swish_nodes(prepared.graph), *squeeze_excite_nodes(prepared.graph)]))


def _record(out_dir: Path, report: QuantizeReport) -> None:
    """Add this run's outputs to ``out_dir/quantize.json``, keyed by file name, keeping other entries."""
    path = RunDir(out_dir).quantize_record
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    models = data.get("models", {}) if isinstance(data, dict) else {}
    for result in report.results:
        entry = asdict(result)
        entry["file"] = Path(result.file).name
        entry["source"] = report.source
        entry["data"] = report.data
        entry["host"] = report.host
        models[entry["file"]] = entry
    write_json(path, {"models": models})
