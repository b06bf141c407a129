"""Quantisation: every zoo model with every method through onnxruntime.quantization, measured against fp32,
the accuracy budget, the per-CPU int8 flavour, and bad input refused without a half-written file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_user_error, invoke, quick_bench_options, run_cli, zoo_names
from onnx import numpy_helper
from PIL import Image

from edgecv.core.cpu import CpuInfo, host_cpu, parse_cpuinfo
from edgecv.core.errors import ModelError
from edgecv.core.facts import Stated
from edgecv.core.onnxfile import SPEC_KEY, load_onnx, quantization_of, read_spec
from edgecv.core.preprocess import to_model_input
from edgecv.data import load_dataset
from edgecv.measure.bench import bench
from edgecv.quantize import METHODS, QuantizeError, QuantizeOptions, output_path, quantize
from edgecv.quantize.methods import default_flavour
from edgecv.runtimes import EVAL_BATCH, RuntimeOptions, load_model


@pytest.fixture(scope="session")
def exported(trained):
    """``trained`` run directories with an ONNX export in them (``model.onnx``), made on first use."""
    from edgecv.exporters import export_onnx, load_source

    def get(name: str, epochs: int | None = 1, uint8_input: bool = False, batch: int | None = None) -> Path:
        run = trained(name, epochs)
        stem = "model.uint8-input" if uint8_input else f"model.b{batch}" if batch else "model"
        path = run / f"{stem}.onnx"
        if not path.is_file():
            export_onnx(load_source(run), path, uint8_input=uint8_input, batch=batch)
        return path

    return get


def copy_run(model: Path, dest: Path) -> Path:
    """The model with its run's config.json, in a folder of the test's own (so outputs do not collide)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(model.parent / "config.json", dest / "config.json")
    shutil.copy(model, dest / "model.onnx")
    return dest / "model.onnx"


def digits_test(spec, data: str = "digits"):
    data_set = load_dataset(data, spec.size[0], color=spec.color)
    return to_model_input(data_set.test.x, spec), data_set.test.y


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory) -> str:
    """80 of digits' own 8x8 images as PNG files in a folder per class: enough to calibrate and score every
    method on every zoo model, few enough that the heaviest model's int8-dynamic file scores them quickly."""
    root = tmp_path_factory.mktemp("digit-pngs")
    data = load_dataset("digits", 8, color="L").train
    for label in range(10):
        (root / str(label)).mkdir()
        for i in np.flatnonzero(data.y == label)[:8]:
            Image.fromarray(data.x[i, 0]).save(root / str(label) / f"{i}.png")
    return f"folder:{root}"


def run_model(path: Path, x: np.ndarray) -> np.ndarray:
    """Logits in batches of the size the quantiser evaluates with: int8-dynamic models quantise activations
    per batch, so their outputs depend on what else is in the batch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + EVAL_BATCH]})[0] for i in range(0, len(x), EVAL_BATCH)])


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_model_quantises_with_every_method_and_runs_in_onnx_runtime(exported, digit_pngs, tmp_path, name):
    model = copy_run(exported(name), tmp_path)
    report = quantize(model, QuantizeOptions(data=digit_pngs, speed_batch=8))
    assert [r.method for r in report.results] == list(METHODS) and not report.failures
    spec = read_spec(model)
    x, y = digits_test(spec, digit_pngs)
    assert report.data["test_images"] == len(y) == 16  # the folder's test split, not digits'
    fp32 = run_model(model, x)
    assert report.source["test_accuracy"] == pytest.approx(float((fp32.argmax(1) == y).mean()))
    for result in report.results:
        path = Path(result.file)
        assert path == output_path(model, result.method)
        logits = run_model(path, x)  # float32 in, float32 out, whatever the method
        assert logits.shape == fp32.shape and logits.dtype == np.float32 and np.isfinite(logits).all()
        # the report's accuracy is what ONNX Runtime gives on the test split
        assert result.test_accuracy == pytest.approx(float((logits.argmax(1) == y).mean()))
        assert result.test_drop_pp == pytest.approx(100 * (report.source["test_accuracy"] - result.test_accuracy))
        assert result.size_bytes == path.stat().st_size < model.stat().st_size
        # timed against fp32 on this host; a file slower beyond noise says so
        assert result.speed["batch"] == 8 and result.speed["vs_fp32"] > 0
        assert any("does not pay" in n for n in result.notes) == result.speed["slower_beyond_noise"]
        level = not (result.speed["slower_beyond_noise"] or result.speed["faster_beyond_noise"])
        assert any("saves size" in n and "not time" in n for n in result.notes) == level  # no faster: says so
        # the spec travels, with the file's own measured accuracy; the settings are recorded
        qspec = read_spec(path)
        assert (qspec.labels, qspec.input_shape, qspec.mean, qspec.arch) == \
            (spec.labels, spec.input_shape, spec.mean, spec.arch)
        assert qspec.metrics["test_accuracy"] == result.test_accuracy
        info = quantization_of(onnx.load(str(path)))
        assert info["method"] == result.method and info["fp32_test_accuracy"] == report.source["test_accuracy"]
    ops = {r.method: op_types(Path(r.file)) for r in report.results}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops["int8-static"]
    assert ops["int8-dynamic"] & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
    f16 = onnx.load(str(output_path(model, "fp16")))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in f16.graph.initializer)
    assert f16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    recorded = json.loads((tmp_path / "quantize.json").read_text())["models"]
    assert sorted(recorded) == ["model.fp16.onnx", "model.int8-dynamic.onnx", "model.int8.onnx"]


# cnn-bn trained with its defaults (15 epochs) is make test-all's
@pytest.mark.parametrize("name", ["lenet5", pytest.param("cnn-bn", marks=pytest.mark.slow)])
def test_int8_static_loses_at_most_half_a_point_on_digits(exported, tmp_path, name):
    model = copy_run(exported(name, epochs=None), tmp_path)  # trained with the model's defaults
    report = quantize(model, QuantizeOptions(methods=("int8-static",)))
    result = report.results[0]
    assert report.source["test_accuracy"] >= 0.99
    assert result.test_drop_pp <= 0.5, (result.test_accuracy, report.source["test_accuracy"])
    assert result.settings["calib_size"] == 512 and result.settings["per_channel"]
    assert result.size_bytes < 0.35 * report.source["size_bytes"]


def hostile(model: Path, dest: Path) -> Path:
    """The same function with conv1's channel 0 scaled up 1000x and conv2's matching input scaled down:
    ReLU and max-pool commute with the scale, so fp32 is unchanged, but one int8 range must now cover
    values 1000x apart, which wipes out the other channels."""
    m = onnx.load(str(model))
    init = {t.name: t for t in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"][:2]
    for tensor_name, fn in ((convs[0].input[1], lambda w: w.__setitem__(0, w[0] * 1000)),
                            (convs[0].input[2], lambda b: b.__setitem__(0, b[0] * 1000)),
                            (convs[1].input[1], lambda w: w.__setitem__((slice(None), 0), w[:, 0] / 1000))):
        array = numpy_helper.to_array(init[tensor_name]).copy()
        fn(array)
        init[tensor_name].CopyFrom(numpy_helper.from_array(array, tensor_name))
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dest))
    shutil.copy(model.parent / "config.json", dest.parent / "config.json")
    return dest


def test_accuracy_aware_mode_returns_sensitive_nodes_to_float_and_meets_the_budget(exported, tmp_path):
    source = exported("lenet5", epochs=None)
    model = hostile(source, tmp_path / "run" / "model.onnx")
    x, _ = digits_test(read_spec(model))
    assert np.allclose(run_model(model, x), run_model(source, x), atol=1e-3)  # same fp32 function
    plain = quantize(model, QuantizeOptions(methods=("int8-static",), out_dir=tmp_path / "plain")).results[0]
    assert plain.val_drop_pp > 5  # the scale imbalance really breaks plain int8

    report = quantize(model, QuantizeOptions(methods=("int8-static",), max_accuracy_drop=0.5))
    result = report.results[0]
    assert result.float_nodes and result.val_drop_pp <= 0.5 and result.test_drop_pp <= 1.0
    assert result.aware_steps[-1]["val_drop_pp"] == pytest.approx(result.val_drop_pp)
    errors = [row["relative_logit_error"] for row in result.sensitivity]
    assert errors == sorted(errors, reverse=True) and result.sensitivity[0]["node"] == result.float_nodes[0]
    assert any("Conv" in n for n in result.float_nodes)
    qmodel = onnx.load(result.file)
    assert quantization_of(qmodel)["float_nodes"] == result.float_nodes
    producer = {o: n.op_type for n in qmodel.graph.node for o in n.output}
    for node in qmodel.graph.node:
        if node.name in result.float_nodes:  # really left in float: no dequantised input
            assert all(producer.get(i) != "DequantizeLinear" for i in node.input), node.name
    # the CLI says which nodes stayed float
    proc = invoke("quantize", model, "--method", "int8-static", "--max-accuracy-drop", "0.5", check=True)
    assert "in float to stay within the budget" in proc.stdout and result.float_nodes[0] in proc.stdout


def test_a_budget_that_cannot_be_met_exits_2_and_writes_no_file(exported, tmp_path):
    model = hostile(exported("lenet5", epochs=None), tmp_path / "model.onnx")
    proc = invoke("quantize", model, "--method", "int8-static", "--max-accuracy-drop", "0.5", "--max-float-nodes", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot meet the 0.5 pp accuracy budget" in proc.stderr and "--max-float-nodes" in proc.stderr
    assert not output_path(model, "int8-static").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.onnx"]
    with pytest.raises(QuantizeError) as info:
        quantize(model, QuantizeOptions(methods=("int8-static", "fp16"), max_accuracy_drop=0.5, max_float_nodes=1))
    assert list(info.value.report.failures) == ["int8-static"]  # fp16 still made, and reported
    assert [r.method for r in info.value.report.results] == ["fp16"] and output_path(model, "fp16").is_file()


def test_cli_quantises_a_run_directory_and_records_quantize_json(exported, tmp_path):
    model = copy_run(exported("lenet5"), tmp_path / "run")
    (tmp_path / "run" / "checkpoints").mkdir()  # a run directory: the CLI picks its model.onnx
    proc = run_cli("quantize", tmp_path / "run", "--method", "all", "--calib-size", "64", check=True)
    for name in ("model.int8.onnx", "model.int8-dynamic.onnx", "model.fp16.onnx"):
        assert (tmp_path / "run" / name).is_file() and name in proc.stdout
    assert "int8-static: U8S8" in proc.stdout
    assert "ConvInteger" in proc.stderr  # the honest note on dynamic conv nets
    if not host_cpu().native_fp16:
        assert "no native fp16" in proc.stderr
    assert "only 64 calibration images" in proc.stderr
    data = json.loads((tmp_path / "run" / "quantize.json").read_text())["models"]
    entry = data["model.int8.onnx"]
    assert entry["source"]["size_bytes"] == model.stat().st_size
    assert entry["size_bytes"] == (tmp_path / "run" / "model.int8.onnx").stat().st_size
    assert 0 <= entry["val_accuracy"] <= 1 and 0 <= entry["source"]["val_accuracy"] <= 1
    assert entry["data"]["calib_images"] == 64 and entry["data"]["name"] == "digits"
    assert entry["host"]["int8_default"]["activation_type"] == default_flavour(host_cpu()).activation_type
    # re-running one method replaces only its own entry
    proc = invoke("quantize", model, "-m", "fp16", "--json", check=True)
    assert json.loads(proc.stdout)["results"][0]["method"] == "fp16"
    assert sorted(json.loads((tmp_path / "run" / "quantize.json").read_text())["models"]) == \
        ["model.fp16.onnx", "model.int8-dynamic.onnx", "model.int8.onnx"]


def test_explicit_int8_flavour_and_calibration_methods_are_used_and_recorded(exported, tmp_path):
    model = copy_run(exported("lenet5"), tmp_path)
    for calib in ("entropy", "percentile"):
        opts = QuantizeOptions(methods=("int8-static",), calib_method=calib, calib_size=128, activation_type="int8",
                               weight_type="int8", reduce_range=False, per_channel=False,
                               out_dir=tmp_path / calib)
        result = quantize(model, opts).results[0]
        info = quantization_of(onnx.load(result.file))["settings"]
        assert info == {**info, "calib_method": calib, "activation_type": "int8", "weight_type": "int8",
                        "reduce_range": False, "per_channel": False}
        assert "chosen_for" not in info  # the user chose
        qlinear = [n for n in onnx.load(result.file).graph.node if n.op_type == "QuantizeLinear"]
        zero_points = {n.input[2] for n in qlinear}
        init = {t.name: t for t in onnx.load(result.file).graph.initializer}
        assert {init[z].data_type for z in zero_points} == {onnx.TensorProto.INT8}


def test_uint8_input_and_fixed_batch_models_quantise(exported, tmp_path):
    for kind, source in (("u8", exported("lenet5", uint8_input=True)), ("b1", exported("lenet5", batch=1))):
        model = copy_run(source, tmp_path / kind)
        report = quantize(model, QuantizeOptions(calib_size=40))
        assert not report.failures
        spec = read_spec(model)
        for result in report.results:
            session = ort.InferenceSession(result.file, providers=["CPUExecutionProvider"])
            assert session.get_inputs()[0].type == ("tensor(uint8)" if kind == "u8" else "tensor(float)")
            x, _ = digits_test(spec)
            n = 1 if kind == "b1" else 5
            assert run_model(Path(result.file), x[:n]).shape == (n, 10)


def test_a_model_without_spec_needs_data_and_then_works(exported, tmp_path):
    m = onnx.load(str(exported("lenet5")))
    del m.metadata_props[:]
    model = tmp_path / "foreign.onnx"
    onnx.save(m, str(model))
    assert_user_error(invoke("quantize", model), "no edgecv spec", "--labels", "--mean", "--std")
    spec = load_model(exported("lenet5")).spec
    stated = ["--labels", ",".join(spec.labels), "--mean", str(spec.mean[0]), "--std", str(spec.std[0])]
    assert_user_error(invoke("quantize", model, *stated), "does not say which data set", "--data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.onnx"]
    facts = Stated(labels=spec.labels, mean=spec.mean, std=spec.std)
    report = quantize(model, QuantizeOptions(methods=("int8-static",), data="digits", calib_size=64, facts=facts))
    qmodel = onnx.load(report.results[0].file)
    written = json.loads({p.key: p.value for p in qmodel.metadata_props}[SPEC_KEY])
    assert written["labels"] == spec.labels and written["mean"] == spec.mean  # the facts stated, kept
    assert report.data["calib_images"] == 64 and report.data["test_images"] == 1797 - 64  # the rest of digits
    assert report.results[0].test_accuracy > 0.5


def test_bad_input_is_one_line_with_exit_2_and_no_output(exported, tmp_path):
    good = exported("lenet5")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.onnx"
    empty.touch()
    cases = [
        ((text,), "notes.onnx is not an ONNX model"),
        ((truncated,), "truncated.onnx is not"),
        ((empty,), "empty.onnx is empty"),
        ((tmp_path / "missing.onnx",), "does not exist"),
        ((good, "--method", "int4"), "--method takes"),
        ((good, "--calib-size", "0"), "--calib-size must be at least 1"),
        ((good, "--calib-method", "mse"), "--calib-method must be one of"),
        ((good, "--activation-type", "int16"), "--activation-type must be uint8 or int8"),
        ((good, "--max-accuracy-drop", "-1"), "--max-accuracy-drop takes percentage points"),
        ((good, "--speed-batch", "0"), "--speed-batch must be at least 1"),
        ((good, "--data", "nope"), "nope"),
        ((good, "--tune-for", "tensorrt"), "--tune-for must be one of onnxruntime, openvino"),
        ((good, "--tune-for", "openvino", "--method", "fp16"), "shapes int8-static files only"),
    ]
    before = sorted(p.name for p in good.parent.iterdir())
    for args, fragment in cases:
        assert_user_error(invoke("quantize", *args, "--out", tmp_path / "out"), fragment)
    assert not (tmp_path / "out").exists()
    assert_user_error(invoke("quantize", good, "--out", text / "sub"), "cannot write to", "is a file")
    assert sorted(p.name for p in good.parent.iterdir()) == before
    # an int8 file is not quantised again
    q = quantize(copy_run(good, tmp_path / "q"), QuantizeOptions(methods=("int8-static",), calib_size=32))
    assert_user_error(invoke("quantize", q.results[0].file), "already quantised")


def test_onnx_files_with_external_data_outside_their_folder_are_refused(exported, tmp_path):
    m = onnx.load(str(exported("lenet5")))
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(m, str(folder / "model.onnx"), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    assert load_onnx(folder / "model.onnx").graph.node  # inside its folder: fine
    escaped = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for t in escaped.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    (tmp_path / "secret.bin").write_bytes((folder / "weights.bin").read_bytes())
    onnx.save(escaped, str(folder / "escape.onnx"))
    with pytest.raises(ModelError, match="outside its own folder"):
        load_onnx(folder / "escape.onnx")


def test_int8_flavour_follows_the_cpu():
    name, flags = parse_cpuinfo("processor: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert name == "Intel Xeon" and "avx512_vnni" in flags
    vnni = CpuInfo(name, "x86_64", flags)
    assert vnni.vnni and (default_flavour(vnni).activation_type, default_flavour(vnni).reduce_range) == \
        ("uint8", False)
    avx2 = CpuInfo("AMD EPYC", "x86_64", frozenset({"avx2", "f16c"}))
    assert not avx2.vnni and not avx2.native_fp16  # F16C converts, it does not compute
    assert (default_flavour(avx2).weight_type, default_flavour(avx2).reduce_range) == ("int8", True)
    _, arm_flags = parse_cpuinfo("Features\t: fp asimd asimdhp asimddp\n")
    arm = CpuInfo("Neoverse", "aarch64", arm_flags)
    assert arm.native_fp16 and default_flavour(arm).activation_type == "int8"
    assert "no VNNI" in avx2.describe() and "AVX2" in avx2.describe()


def test_help_shows_defaults_and_examples():
    proc = run_cli("quantize", "--help", check=True)
    for fragment in ("[default: all]", "[default: 512]", "--max-accuracy-drop", "int8-dynamic", "quantize.json"):
        assert fragment in proc.stdout, fragment


def test_a_quantisation_that_does_not_pay_is_said_by_quantize_and_bench(lenet, tmp_path):
    from edgecv.quantize import QuantizeOptions, quantize

    run, _ = lenet
    src = tmp_path / "model.onnx"
    shutil.copy(run / "model.onnx", src)
    r = quantize(src, QuantizeOptions(methods=("int8-static",), calib_size=64)).results[0]
    assert r.speed["batch"] == 64 and r.speed["vs_fp32"] > 0 and r.speed["fp32_images_per_s"] > 0
    assert any("does not pay" in n for n in r.notes) == r.speed["slower_beyond_noise"]
    level = not (r.speed["slower_beyond_noise"] or r.speed["faster_beyond_noise"])
    assert any("saves size" in n for n in r.notes) == level
    recorded = json.loads((tmp_path / "quantize.json").read_text())["models"]["model.int8.onnx"]["speed"]
    assert recorded["vs_fp32"] == pytest.approx(r.speed["vs_fp32"])
    report = bench([src, tmp_path / "model.int8.onnx"], RuntimeOptions(threads=1),
                   quick_bench_options(batch_sizes=(1, 64), seconds=0.5))
    fp32, int8 = report.row("onnx fp32"), report.row("onnx int8")
    slower = int8.throughput_ci["64"][1] * 1.05 < fp32.throughput_ci["64"][0]
    assert slower == any(n.startswith("onnx int8 runs") and "does not pay" in n for n in report.notes)
