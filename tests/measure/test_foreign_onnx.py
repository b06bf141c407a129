"""An ONNX classifier from elsewhere: no edgecv spec, its labels in its own order, resize and centre crop, BGR,
its own mean and std, softmax outputs, opset 12. Eval, quantize, bench and predict must score it as its own
reference pipeline does."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import assert_user_error, invoke
from onnx import TensorProto, helper
from PIL import Image
from torch import nn
from torchvision import transforms as T

from edgecv import Predictor
from edgecv.core.facts import Stated
from edgecv.measure.evaluate import evaluate
from edgecv.models import create_model
from edgecv.train import TrainConfig, train

COLOURS = {"red": (0,), "green": (1,), "blue": (2,), "yellow": (0, 1)}
MODEL_ORDER = ["yellow", "blue", "red", "green"]  # not the folder's sorted order
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)  # the file's own normalisation (of BGR channels)
RESIZE, CROP = 40, 32


def _folder(root, per_class=12, seed=3):
    """JPEGs of many sizes, each class a dominant colour."""
    rng = np.random.default_rng(seed)
    for name, channels in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(rng.integers(40, 120)), int(rng.integers(40, 120))
            small = rng.integers(0, 80, (4, 4, 3), dtype=np.uint8)
            for c in channels:
                small[..., c] += 160
            Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(root / name / f"{i}.jpg")
    return root


class _Foreign(nn.Module):
    """A trained edgecv network wrapped as a third party would ship it: BGR input normalised with MEAN/STD,
    classes in MODEL_ORDER, softmax on the outputs."""

    def __init__(self, net, mean, std, folder_labels):
        super().__init__()
        self.net = net
        self.register_buffer("own_mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("own_std", torch.tensor(STD).view(1, 3, 1, 1))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.order = [folder_labels.index(n) for n in MODEL_ORDER]

    def forward(self, x):
        rgb = (x * self.own_std + self.own_mean).flip(1)
        logits = self.net((rgb - self.mean) / self.std)
        return torch.softmax(logits[:, self.order], dim=1)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """The folder, and model.onnx exported with plain torch.onnx.export (opset 12, no metadata)."""
    root = tmp_path_factory.mktemp("foreign")
    folder = _folder(root / "colours")
    result = train(TrainConfig(model="cnn", data=f"folder:{folder}", img_size=CROP, epochs=6, batch_size=16,
                               out=str(root / "run"), calibrate=False))
    ckpt = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=False)
    net = create_model("cnn", 3, 4, CROP)
    net.load_state_dict(ckpt["model"])
    spec = ckpt["spec"]
    model = _Foreign(net.eval(), spec["mean"], spec["std"], spec["labels"]).eval()
    path = root / "model.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, CROP, CROP), str(path), input_names=["images"],
                      output_names=["probs"], opset_version=12, dynamo=False,
                      dynamic_axes={"images": {0: "n"}, "probs": {0: "n"}})
    (root / "classes.txt").write_text("\n".join(MODEL_ORDER) + "\n")
    return folder, path, root / "classes.txt"


FLAGS = ["--resize", str(RESIZE), "--channel-order", "bgr", "--mean", ",".join(map(str, MEAN)),
         "--std", ",".join(map(str, STD))]


def _reference(path, folder):
    """The file's own pipeline: torchvision's resize and centre crop, BGR, its mean and std; argmax by name."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    prep = T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.ToTensor(), T.Normalize(MEAN, STD)])
    right, total, probs = 0, 0, []
    for image in sorted(folder.glob("*/*.jpg")):
        with Image.open(image) as img:
            x = prep(Image.merge("RGB", img.convert("RGB").split()[::-1]))  # BGR
        p = session.run(None, {"images": x[None].numpy()})[0][0]
        probs.append(p)
        right += MODEL_ORDER[int(p.argmax())] == image.parent.name
        total += 1
    return right / total, total, np.array(probs)


def test_a_file_from_elsewhere_is_scored_by_name_on_every_image_as_its_own_pipeline_scores_it(foreign):
    folder, path, classes = foreign
    want, n, ref_probs = _reference(path, folder)
    assert want >= 0.9  # it learnt something
    stated = Stated(labels=MODEL_ORDER, mean=MEAN, std=STD, resize=RESIZE, channel_order="bgr")
    result = evaluate(path, data=f"folder:{folder}", spec=stated)
    m = result.metrics
    assert result.split == "all" and m["num_samples"] == n  # every image, nothing carved
    assert m["accuracy"] == pytest.approx(want)
    assert any("probabilities" in note for note in result.notes)
    assert np.allclose(np.sort(result.probs, axis=1), np.sort(ref_probs, axis=1), atol=1e-4)  # not softmaxed again
    assert m["confidence_right"] > 0.8
    proc = invoke("eval", path, "--data", f"folder:{folder}", "--labels", f"@{classes}", *FLAGS, check=True)
    assert f"{n} images" in proc.stdout and "not softmaxed again" in proc.stdout
    assert [row["label"] for row in m["per_class"]] == MODEL_ORDER  # the model's classes, matched by name


def test_quantised_on_a_folder_it_carries_its_spec_and_needs_no_flags_after(foreign, tmp_path):
    folder, path, classes = foreign
    out = tmp_path / "q"
    invoke("quantize", path, "--method", "int8-static", "--data", f"folder:{folder}", "--labels", f"@{classes}",
           *FLAGS, "--calib-size", "16", "--out", out, "--json", check=True)
    int8 = out / "model.int8.onnx"
    graph = onnx.load(str(int8)).graph
    assert next(n for n in graph.node if "probs" in n.output).op_type == "Softmax"  # probabilities kept in float
    meta = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    spec = json.loads(meta["edgecv.spec"])
    assert (spec["labels"], spec["resize"], spec["channel_order"], spec["outputs"]) == \
        (MODEL_ORDER, RESIZE, "bgr", "probabilities")
    record = json.loads((out / "quantize.json").read_text())["models"]["model.int8.onnx"]
    assert record["data"]["calib_images"] == 16 and record["data"]["test_images"] == 48 - 16
    assert record["test_accuracy"] >= 0.85
    scored = evaluate(int8, data=f"folder:{folder}")  # no flags
    assert scored.split == "all" and scored.metrics["num_samples"] == 48
    assert any("calibrated on are among" in note for note in scored.notes)
    predictor = Predictor(int8)
    image = sorted((folder / "blue").glob("*.jpg"))[0]
    assert predictor.predict(str(image)).label == "blue"
    proc = invoke("predict", image, "--model", int8, "--json", check=True)
    assert json.loads(proc.stdout)[0]["label"] == "blue"


def test_a_folder_with_some_of_the_models_classes_is_scored_with_an_other_column(foreign, tmp_path):
    folder, path, classes = foreign
    subset = tmp_path / "subset"
    for name in ("red", "blue"):
        (subset / name).mkdir(parents=True)
        for image in sorted((folder / name).glob("*.jpg")):
            (subset / name / image.name).write_bytes(image.read_bytes())
    stated = Stated(labels=MODEL_ORDER, mean=MEAN, std=STD, resize=RESIZE, channel_order="bgr")
    m = evaluate(path, data=f"folder:{subset}", spec=stated).metrics
    assert (m["classes_scored"], m["model_classes"], m["num_samples"]) == (2, 4, 24)
    assert m["confusion_columns"] == ["blue", "red", "other"]
    assert np.array(m["confusion_matrix"]).shape == (2, 3) and np.array(m["confusion_matrix"]).sum() == 24
    proc = invoke("eval", path, "--data", f"folder:{subset}", "--labels", f"@{classes}", *FLAGS, check=True)
    assert "2 of the model's 4 classes" in proc.stdout
    renamed = tmp_path / "renamed"
    (renamed / "r").mkdir(parents=True)
    (renamed / "b").mkdir(parents=True)
    for src, dst in (("red", "r"), ("blue", "b")):
        for image in sorted((folder / src).glob("*.jpg"))[:3]:
            (renamed / dst / image.name).write_bytes(image.read_bytes())
    mapping = tmp_path / "map.txt"
    mapping.write_text("r,red\nb\tblue\n")
    proc = invoke("eval", path, "--data", f"folder:{renamed}", "--labels", f"@{classes}", *FLAGS,
                  "--label-map", mapping, check=True)
    assert "6 images" in proc.stdout


def test_bad_input_about_a_foreign_file_is_one_line(foreign, tmp_path):
    folder, path, classes = foreign
    data = ["--data", f"folder:{folder}"]
    assert_user_error(invoke("eval", path, *data), "--labels", "--mean", "--std")
    assert_user_error(invoke("eval", path, *data, "--labels", "a,b,c,d", *FLAGS), "no class", "red", "--label-map")
    assert_user_error(invoke("eval", path, *data, "--labels", "a,b,c", *FLAGS), "not one row of 3")
    assert_user_error(invoke("eval", path, *data, "--labels", f"@{classes}", *FLAGS, "--input-shape", "3,40,40"),
                      "--input-shape")
    assert_user_error(invoke("eval", path, *data, "--labels", f"@{classes}", *FLAGS, "--output", "logits"),
                      "no output 'logits'", "probs")
    assert_user_error(invoke("eval", path, *data, "--labels", f"@{classes}", *FLAGS, "--layout", "NCWH"), "--layout")
    two_in = tmp_path / "two_inputs.onnx"
    _two_way(two_in, inputs=2)
    assert_user_error(invoke("eval", two_in, *data, "--labels", "a,b"), "2 inputs", "a, b")
    two_out = tmp_path / "two_outputs.onnx"
    _two_way(two_out, inputs=1)
    assert_user_error(invoke("eval", two_out, *data, "--labels", "a,b"), "2 outputs", "--output")
    assert not list(tmp_path.glob("*.int8.onnx"))


def _two_way(path, inputs):
    """A tiny graph with two inputs (a, b) and one output, or one input and two outputs (a, b)."""
    shape = ["n", 3, 8, 8]
    if inputs == 2:
        ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b")]
        nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("ReduceMean", ["s"], ["y"], axes=[2, 3],
                                                                                 keepdims=0)]
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])]
    else:
        ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
        nodes = [helper.make_node("ReduceMean", ["x"], ["a"], axes=[2, 3], keepdims=0),
                 helper.make_node("Identity", ["a"], ["b"])]
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 3]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "g", ins, outs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_an_ultralytics_classifier_needs_no_flags(foreign, tmp_path):
    """Class names, size and transform from Ultralytics' metadata (names, imgsz, task): a softmax over each
    channel's mean, which picks an image's dominant colour."""
    folder, _, _ = foreign
    rgb = tmp_path / "rgb"
    for name in ("red", "green", "blue"):
        (rgb / name).mkdir(parents=True)
        for image in sorted((folder / name).glob("*.jpg")):
            (rgb / name / image.name).write_bytes(image.read_bytes())
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("Mul", ["m", "k"], ["z"]), helper.make_node("Softmax", ["z"], ["output0"], axis=1)]
    graph = helper.make_graph(nodes, "yolo-cls", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                                [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor("k", TensorProto.FLOAT, [], [20.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    helper.set_model_props(model, {"names": "{0: 'red', 1: 'green', 2: 'blue'}", "imgsz": "[16, 16]",
                                   "task": "classify", "stride": "1"})
    path = tmp_path / "yolo-cls.onnx"
    onnx.save(model, str(path))
    result = evaluate(path, data=f"folder:{rgb}")
    assert result.metrics["accuracy"] >= 0.9 and result.metrics["num_samples"] == 36
    assert any("Ultralytics" in note for note in result.notes)
    spec = Predictor(path).spec
    assert (spec.labels, spec.resize, spec.mean, spec.outputs) == (["red", "green", "blue"], 16, [0.0] * 3,
                                                                   "probabilities")
