"""Checked ONNX loading: truncated files and external data outside the model's folder are refused."""

from __future__ import annotations

import pytest
from conftest import FUZZ, assert_user_error, invoke, run_cli
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from edgecv import Predictor
from edgecv.core.errors import ModelError


@FUZZ
@given(cut=st.floats(0.0, 0.999))
def test_truncated_onnx_files_are_refused_with_a_typed_error(lenet_onnx, cut, tmp_path_factory):
    data = lenet_onnx.read_bytes()
    path = tmp_path_factory.mktemp("cut") / "model.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelError):
        Predictor(path)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_onnx_external_data_that_leaves_the_model_folder_is_refused(lenet_onnx, tmp_path, how):
    """An ONNX file whose weights live in a file outside its folder could make the runtime read any file the
    process can; the Predictor and every CLI command refuse it before ONNX Runtime opens it."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(lenet_onnx))
    outside, folder = tmp_path / "outside", tmp_path / "model"
    outside.mkdir()
    folder.mkdir()
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(model, str(folder / "model.onnx"))  # writes model/weights.bin
    secret = outside / "weights.bin"
    (folder / "weights.bin").replace(secret)
    if how == "symlink":
        (folder / "weights.bin").symlink_to(secret)
    else:
        target = "../outside/weights.bin" if how == "dotdot" else str(secret)
        model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = target
        (folder / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="outside its own folder"):
        Predictor(folder / "model.onnx")
    Image.new("L", (8, 8)).save(tmp_path / "x.png")
    assert_user_error(run_cli("predict", "-m", folder / "model.onnx", tmp_path / "x.png"), "outside its own folder")
    assert_user_error(invoke("eval", folder / "model.onnx", "--data", "digits"), "outside its own folder")
