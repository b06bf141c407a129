"""Export: every zoo model to TorchScript and ONNX, spec inside, parity proven, bad input refused."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import Exploit, assert_user_error, cli_env, invoke, run_cli, zoo_names

from edgecv import ModelSpec
from edgecv.core.onnxfile import read_spec
from edgecv.data import load_dataset
from edgecv.exporters import ExportError, export_onnx, export_torchscript, load_source
from edgecv.exporters.common import Source
from edgecv.train.checkpoint import calibrated, load_checkpoint, save_checkpoint


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", zoo_names())
def test_every_model_exports_to_both_formats_with_parity(trained, tmp_path, name):
    run = trained(name)
    source = load_source(run)
    onnx_path, ts_path = tmp_path / "onnx" / "model.onnx", tmp_path / "ts" / "model.pt"
    onnx_report = export_onnx(source, onnx_path)
    ts_report = export_torchscript(source, ts_path)
    for report in (onnx_report, ts_report):
        # within 1e-4 per unit of the largest |logit| (the exporter's own rule): real BatchNorm statistics can
        # make a briefly trained net's logits on random inputs large
        assert report.passed and report.agreement == 1.0 and report.atol == 1e-4
        assert report.max_abs_diff <= report.tolerance == 1e-4 * max(1.0, report.logit_scale)
        assert [row.inputs for row in report.parity] == ["validation x64", "random x1", "random x37"]
    # one self-contained ONNX file with a dynamic batch axis, opset 17 and the spec in its metadata
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["model.onnx"]
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert model.producer_name == "edgecv" and name in model.doc_string
    spec = read_spec(onnx_path)
    assert spec.arch == name and spec.source_sha256 == _sha(run / "checkpoints" / "best.pt")
    assert spec.metrics["test_accuracy"] == json.loads((run / "metrics.json").read_text())["accuracy"]
    # checked independently of the exporter's own parity code: batch 1 and 37 from the same file
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(ts_path), _extra_files=(files := {"edgecv_spec.json": ""}))
    assert ModelSpec.from_json(files["edgecv_spec.json"]) == spec
    module = calibrated(source.model, spec)  # the trained model with its fitted temperature, as the files apply it
    for batch in (1, 37):
        x = torch.randn(batch, *spec.input_shape)
        with torch.no_grad():
            ref = module(x).numpy()
            atol = 1e-4 * max(1.0, float(np.abs(ref).max()))
            assert np.allclose(scripted(x).numpy(), ref, atol=atol)
        assert np.allclose(session.run(None, {"input": x.numpy()})[0], ref, atol=atol)


def test_torchscript_file_loads_in_a_process_without_edgecv(trained, tmp_path):
    path = tmp_path / "model.pt"
    export_torchscript(load_source(trained("lenet5")), path)
    code = (
        "import sys, json, torch\n"
        f"files = {{'edgecv_spec.json': ''}}\n"
        f"m = torch.jit.load({str(path)!r}, _extra_files=files)\n"
        "spec = json.loads(files['edgecv_spec.json'])\n"
        "out = m(torch.zeros(37, *spec['input_shape']))\n"
        "assert not [k for k in sys.modules if k.startswith('edgecv')]\n"
        "print(tuple(out.shape), spec['arch'], len(spec['labels']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(37, 10) lenet5 10"


def test_uint8_input_variant_gives_the_float_models_top1_on_the_digits_test_split(trained, tmp_path):
    source = load_source(trained("lenet5", epochs=5))
    export_onnx(source, tmp_path / "float.onnx")
    report = export_onnx(source, tmp_path / "u8.onnx", uint8_input=True)
    assert report.input == {"name": "input", "shape": ["batch", 32, 32, 1], "dtype": "uint8", "layout": "NHWC"}
    spec = read_spec(tmp_path / "u8.onnx")
    assert (spec.dtype, spec.layout, spec.mean) == ("uint8", "NHWC", source.spec.mean)
    test = load_dataset("digits", 32).test
    float_in = ((test.x / 255.0 - np.array(spec.mean).reshape(1, -1, 1, 1))
                / np.array(spec.std).reshape(1, -1, 1, 1)).astype(np.float32)
    float_sess = ort.InferenceSession(str(tmp_path / "float.onnx"), providers=["CPUExecutionProvider"])
    u8_sess = ort.InferenceSession(str(tmp_path / "u8.onnx"), providers=["CPUExecutionProvider"])
    assert u8_sess.get_inputs()[0].type == "tensor(uint8)"
    float_top1 = float_sess.run(None, {"input": float_in})[0].argmax(1)
    u8_top1 = u8_sess.run(None, {"input": test.x.transpose(0, 2, 3, 1).copy()})[0].argmax(1)
    assert len(test.y) == 360 and (float_top1 == u8_top1).all()
    assert (u8_top1 == test.y).mean() > 0.9
    ts = export_torchscript(source, tmp_path / "u8.pt", uint8_input=True)
    assert ts.passed and ts.input["dtype"] == "uint8"


def test_cli_export_writes_both_files_export_json_and_a_parity_table(trained, tmp_path):
    run = tmp_path / "run"
    os.symlink(trained("cnn-bn"), run)
    proc = run_cli("export", run, check=True)
    assert (run / "model.onnx").is_file() and (run / "model.pt").is_file()
    assert "parity against the torch model" in proc.stdout and "top-1 agree" in proc.stdout
    record = json.loads((run / "export.json").read_text())["exports"]
    assert set(record) == {"model.onnx", "model.pt"}
    onnx_entry = record["model.onnx"]
    assert onnx_entry["passed"] and onnx_entry["opset"] == 17 and onnx_entry["params"] > 0 and onnx_entry["macs"] > 0
    assert onnx_entry["size_bytes"] == (run / "model.onnx").stat().st_size
    assert "legacy" in onnx_entry["exporter"]


def test_parity_failure_exits_2_and_leaves_no_file(trained, tmp_path):
    run = trained("lenet5")
    target = tmp_path / "out" / "model.onnx"
    proc = invoke("export", run, "--format", "onnx", "--atol", "0", "--out", target)
    assert_user_error(proc, "failed its parity check", "no file was written")
    assert sorted(p.name for p in target.parent.iterdir()) == ["export.json"]
    entry = json.loads((target.parent / "export.json").read_text())["exports"]["model.onnx"]
    assert entry["passed"] is False and entry["parity"][0]["max_abs_diff"] > 0


def test_fixed_batch_dynamo_exporter_and_no_simplify(trained, tmp_path):
    source = load_source(trained("lenet5"))
    fixed = export_onnx(source, tmp_path / "b8.onnx", batch=8)
    assert fixed.input["shape"][0] == 8 and [r.inputs for r in fixed.parity] == ["validation x8", "random x8"]
    session = ort.InferenceSession(str(tmp_path / "b8.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="dimension|Got invalid"):
        session.run(None, {"input": np.zeros((1, 1, 32, 32), np.float32)})
    dynamo = export_onnx(source, tmp_path / "d.onnx", exporter="dynamo", opset=18)
    assert dynamo.passed and [o.version for o in onnx.load(str(tmp_path / "d.onnx")).opset_import
                              if o.domain in ("", "ai.onnx")] == [18]
    plain = export_onnx(source, tmp_path / "plain.onnx", simplify=False)
    assert plain.passed


class _Tril(torch.nn.Module):
    def forward(self, x):
        return torch.tril(x).flatten(1)[:, :10]


def test_an_operator_missing_from_the_opset_is_named_with_the_opset_it_needs(trained, tmp_path):
    source = load_source(trained("lenet5"))
    spec = replace(source.spec, input_shape=(1, 8, 8))
    tril = Source(_Tril().eval(), spec, source.config, source.checkpoint, tmp_path)
    with pytest.raises(ExportError, match=r"aten::tril is not in ONNX opset 13; it needs opset 14: pass --opset 14"):
        export_onnx(tril, tmp_path / "tril.onnx", opset=13)
    assert not (tmp_path / "tril.onnx").exists()
    assert export_onnx(tril, tmp_path / "tril.onnx", opset=14).passed


def test_bad_sources_and_options_are_one_line_errors(trained, tmp_path):
    run = trained("mlp")
    assert_user_error(invoke("export", tmp_path / "nowhere"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_user_error(invoke("export", tmp_path / "empty"), "has no checkpoints/best.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes((run / "checkpoints" / "best.pt").read_bytes()[:1000])
    assert_user_error(invoke("export", bad), "corrupt or truncated")
    bad.write_bytes(pickle.dumps(Exploit(tmp_path / "pwned")))
    assert_user_error(invoke("export", bad), "objects other than tensors")
    assert not (tmp_path / "pwned").exists()
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    ckpt["config"]["model"] = "cnn-tiny"
    save_checkpoint(bad, ckpt)
    assert_user_error(invoke("export", bad), "does not fit model 'cnn-tiny'")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_user_error(invoke("export", run, "--format", "onnx", "--out", blocker / "model.onnx"), "cannot write")
    assert_user_error(invoke("export", run, "--batch", "0"), "--batch takes 'dynamic'")
    assert_user_error(invoke("export", run, "--out", tmp_path / "m.onnx"), "names a file, but --format all")
    assert_user_error(invoke("export", run, "--format", "tflite"), "--format must be")
    assert_user_error(invoke("export", run, "--opset", "99"), "emits opsets 7 to 20")
    assert_user_error(invoke("export", run, "--exporter", "dynamo", "--opset", "17"), "emits opsets 18 to 23")
    assert not (run / "model.onnx").exists()


def test_a_model_torch_onnx_cannot_export_is_one_quiet_line(trained, tmp_path):
    run = trained("lenet5")
    code = (
        "import torch\n"
        "from dataclasses import replace\n"
        "from pathlib import Path\n"
        "from edgecv.exporters import ExportError, export_onnx, load_source\n"
        "from edgecv.exporters.common import Source\n"
        "class FFT(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.fft.fft(x).abs().flatten(1)[:, :10]\n"
        f"src = load_source({str(run)!r})\n"
        "spec = replace(src.spec, input_shape=(1, 8, 8))\n"
        f"out = {str(tmp_path / 'fft.onnx')!r}\n"
        "try:\n"
        "    export_onnx(Source(FFT().eval(), spec, src.config, src.checkpoint, src.out_dir), Path(out))\n"
        "except ExportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("operator aten::fft_fft has no ONNX export in opset 17 with the legacy exporter; "
                                   "try --exporter dynamo (opset 18 or newer)")
    assert proc.stderr == ""
    assert not (tmp_path / "fft.onnx").exists()
