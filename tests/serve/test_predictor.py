"""The Predictor: every image input kind and Pillow mode, train/serve consistency, typed errors on bad input,
torch-free use, thread safety, `edgecv predict`, and the examples that embed it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import BLOCK_TORCH, ROOT, assert_user_error, cli_env, invoke, png_header_only, run_cli
from PIL import Image

from edgecv import InvalidImageError, ModelError, Prediction, Predictor
from edgecv.core.errors import MissingSpecError
from edgecv.core.imageio import from_array, ready_pixels, to_pixels
from edgecv.core.preprocess import input_table, normalise_into, to_model_input
from edgecv.core.spec import COLORS, ModelSpec
from edgecv.data import load_dataset
from edgecv.measure.evaluate import evaluate


@pytest.fixture(scope="module")
def model(trained, tmp_path_factory) -> Path:
    """A lenet5 digits ONNX export (and a uint8-input one beside it) in the run directory."""
    from edgecv.exporters import export_onnx, load_source

    run = trained("lenet5", epochs=3)
    for name, u8 in (("model.onnx", False), ("model.uint8-input.onnx", True)):
        if not (run / name).is_file():
            export_onnx(load_source(run), run / name, uint8_input=u8)
    return run / "model.onnx"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 8)  # native 8x8 pixels: the Predictor resizes them as training did


def test_digits_test_images_as_png_files_score_what_the_test_split_reports(model, digits, tmp_path):
    paths = []
    for i, (img, label) in enumerate(zip(digits.test.x[:, 0], digits.test.y, strict=True)):
        paths.append(tmp_path / f"{i:03d}-{label}.png")
        Image.fromarray(img).save(paths[-1])
    predictor = Predictor(model)
    preds = predictor.predict_batch(paths)
    accuracy = np.mean([p.index == y for p, y in zip(preds, digits.test.y, strict=True)])
    assert accuracy == evaluate(model).metrics["accuracy"]
    # the same pixels reach the model as in training: the training pipeline's 32x32 test images
    train_view = load_dataset("digits", 32).test.x
    assert np.array_equal(np.stack([predictor.preprocess(p) for p in paths[:20]]), train_view[:20])


def test_every_input_kind_gives_the_same_answer(model, digits, tmp_path):
    predictor = Predictor(model, top_k=3)
    img = digits.test.x[0, 0]
    path = tmp_path / "d.png"
    Image.fromarray(img).save(path)
    kinds = [path, str(path), path.read_bytes(), bytearray(path.read_bytes()), Image.open(path), img,
             img[:, :, None], np.repeat(img[:, :, None], 3, axis=2)]
    results = [predictor.predict(k) for k in kinds]
    assert all(r.label == results[0].label for r in results)
    first = results[0]
    assert isinstance(first, Prediction) and first.label == predictor.labels[first.index]
    assert len(first.topk) == 3 and first.topk[0] == (first.label, first.score)
    assert [s for _, s in first.topk] == sorted((s for _, s in first.topk), reverse=True)
    assert predictor.predict_batch([]) == []


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"])
def test_every_pillow_mode_is_converted_to_the_models_colour(model, digits, mode):
    predictor = Predictor(model)
    gray = Image.fromarray(digits.test.x[0, 0])
    if mode == "I;16":
        img = Image.fromarray(digits.test.x[0, 0].astype(np.uint16) * 257)  # full 16-bit range
        img = img.convert("I;16") if img.mode != "I;16" else img
    else:
        img = gray.convert(mode)
    pixels = predictor.preprocess(img)
    assert pixels.shape == (1, 32, 32) and pixels.dtype == np.uint8
    expected = predictor.preprocess(gray)
    tolerance = 255 if mode == "1" else 2  # 1-bit dithers; the others keep the gray levels
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= tolerance, mode
    if mode != "1":
        assert predictor.predict(img).label == predictor.predict(gray).label


def test_exif_orientation_is_applied(model, tmp_path):
    predictor = Predictor(model)
    arr = np.zeros((8, 16), np.uint8)
    arr[:, :8] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=100)
    pixels = predictor.preprocess(buf.getvalue())[0]
    assert pixels[:16].mean() > 200 and pixels[16:].mean() < 50  # the white half is now on top


def test_uint8_input_models_skip_what_their_graph_does(model, digits):
    float_p = Predictor(model)
    u8_p = Predictor(model.parent / "model.uint8-input.onnx")
    assert u8_p.spec.dtype == "uint8"
    images = list(digits.test.x[:50, 0])
    assert [p.label for p in u8_p.predict_batch(images)] == [p.label for p in float_p.predict_batch(images)]
    assert [u8_p.predict(img).label for img in images] == [float_p.predict(img).label for img in images]


@pytest.mark.parametrize("color, shape", [("L", (32, 32)), ("L", (32, 32, 1)), ("RGB", (32, 32, 3))])
def test_arrays_already_at_the_model_size_skip_pillow_with_the_same_pixels(color, shape):
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    fast = ready_pixels(arr, color, (32, 32))
    assert fast is not None and fast.shape == (COLORS[color], 32, 32)
    assert np.array_equal(fast, to_pixels(from_array(arr), color, (32, 32)))
    for other in (arr[:31], arr.astype(np.int16), np.repeat(arr[..., :1], 4, axis=-1)):
        assert ready_pixels(other, color, (32, 32)) is None  # these go through Pillow (or its errors)
    assert ready_pixels(arr, "RGB" if color == "L" else "L", (32, 32)) is None


def test_single_and_batched_calls_and_every_size_give_the_same_scores(model, digits):
    predictor = Predictor(model)
    at_size = load_dataset("digits", 32).test.x[:40, 0]
    for images in (list(at_size), list(digits.test.x[:40, 0])):
        one_by_one = [predictor.predict(img) for img in images]
        assert predictor.predict_batch(images[:1]) == one_by_one[:1]  # same run, same arithmetic: identical
        batched = predictor.predict_batch(images)
        assert [p.label for p in batched] == [p.label for p in one_by_one]
        for b, o in zip(batched, one_by_one, strict=True):
            assert [label for label, _ in b.topk] == [label for label, _ in o.topk]
            assert [s for _, s in b.topk] == pytest.approx([s for _, s in o.topk], abs=1e-6)
    logits = Predictor(model, top_k=10).session.run(None, {"input": to_model_input(at_size[:1, None], predictor.spec)})
    probs = np.exp(logits[0][0] - logits[0][0].max())
    probs /= probs.sum()
    assert [s for _, s in predictor.predict(at_size[0]).topk] == pytest.approx(sorted(probs)[::-1][:5], abs=1e-6)


def test_lookup_and_arithmetic_normalisation_give_the_same_bits():
    for color, layout, order in (("L", "NCHW", "rgb"), ("RGB", "NCHW", "rgb"), ("RGB", "NHWC", "rgb"),
                                 ("RGB", "NCHW", "bgr"), ("RGB", "NHWC", "bgr")):
        c = COLORS[color]
        spec = ModelSpec(labels=["a", "b"], input_shape=(c, 24, 24), mean=[0.485, 0.456, 0.406][:c],
                         std=[0.229, 0.224, 0.225][:c], color=color, layout=layout, channel_order=order)
        images = np.random.default_rng(2).integers(0, 256, (30, c, 24, 24), dtype=np.uint8)
        mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (spec.mean, spec.std))
        network = images[:, ::-1] if order == "bgr" else images  # mean[c] and std[c] are the network's channel c
        direct = (network.astype(np.float32) / 255 - mean) / std
        batch = to_model_input(images, spec)  # arithmetic
        singles = np.concatenate([to_model_input(images[i:i + 1], spec) for i in range(30)])  # lookups
        assert np.array_equal(batch, singles)
        in_place = np.empty((1, *batch.shape[1:]), np.float32)
        normalise_into(images[3], spec, input_table(spec), in_place)  # the Predictor's single-image path
        assert np.array_equal(in_place[0], batch[3])
        expected = direct.transpose(0, 2, 3, 1) if layout == "NHWC" else direct
        assert np.allclose(batch, expected, atol=1e-5)


def test_bad_images_raise_typed_errors_before_decoding(model, digits, tmp_path):
    predictor = Predictor(model, max_pixels=10_000)
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(png, format="PNG")
    big = io.BytesIO()
    Image.new("L", (200, 200)).save(big, format="PNG")
    cases = [(b"definitely not an image", "not an image"), (png.getvalue()[: len(png.getvalue()) // 2], "truncated"),
             (big.getvalue(), "over the 10,000 pixel cap"), (np.zeros((0, 5), np.uint8), "empty"),
             (np.zeros((8, 8), np.float32), "must be uint8"), (np.zeros((2, 8, 8, 1), np.uint8), "H×W or H×W×C"),
             (np.zeros((8, 8, 2), np.uint8), "H×W or H×W×C"), (tmp_path / "missing.png", "does not exist"),
             (12345, "expected a path, bytes")]
    for image, fragment in cases:
        with pytest.raises(InvalidImageError, match=fragment):
            predictor.predict(image)
    # the cap is checked on the header: a 50,000 x 50,000 PNG header is refused without allocating its pixels
    with pytest.raises(InvalidImageError, match="over the [0-9,]+ pixel cap"):
        Predictor(model).predict(png_header_only(50_000, 50_000))


def test_bad_models_raise_model_errors(model, tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.touch()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07junk" * 10)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model.read_bytes()[:5000])
    for path, fragment in ((tmp_path / "none.onnx", "does not exist"), (empty, "is empty"),
                           (junk, "cannot load"), (truncated, "cannot load"),
                           (model.parent / "checkpoints" / "best.pt", "runs ONNX files")):
        with pytest.raises(ModelError, match=fragment):
            Predictor(path)
    m = onnx.load(str(model))
    del m.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(m, str(foreign))
    with pytest.raises(MissingSpecError, match="pass labels=, mean=, std= to Predictor") as missing:
        Predictor(foreign)  # the input shape comes from the graph
    assert missing.value.missing == ("labels", "mean", "std") and str(missing.value.path) == str(foreign)
    with pytest.raises(MissingSpecError, match="pass std= to Predictor") as missing:
        Predictor(foreign, labels=list("0123456789"), mean=[0.5])
    assert missing.value.missing == ("std",)
    spec = Predictor(model).spec
    p = Predictor(foreign, labels=spec.labels, mean=spec.mean, std=spec.std, input_shape=spec.input_shape)
    assert p.predict(np.zeros((8, 8), np.uint8)).label == Predictor(model).predict(np.zeros((8, 8), np.uint8)).label
    # external data that points outside the model's folder is refused before ONNX Runtime opens the file
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save(onnx.load(str(model)), str(folder / "m.onnx"), save_as_external_data=True, location="w.bin",
              size_threshold=0)
    assert Predictor(folder / "m.onnx").labels == spec.labels
    escaped = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for t in escaped.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    onnx.save(escaped, str(folder / "escape.onnx"))
    with pytest.raises(ModelError, match="outside its own folder"):
        Predictor(folder / "escape.onnx")


def test_eight_threads_share_one_predictor_and_agree_with_a_sequential_run(model, digits):
    predictor = Predictor(model)
    at_size = load_dataset("digits", 32).test.x[:, 0]
    images = [at_size[i % len(at_size)] if i % 2 else digits.test.x[i % len(digits.test), 0] for i in range(200)]
    sequential = [predictor.predict(img) for img in images]
    barrier = threading.Barrier(8)

    def worker(_):
        barrier.wait()
        return [predictor.predict(img) for img in images]

    with ThreadPoolExecutor(8) as pool:
        for result in pool.map(worker, range(8)):
            assert result == sequential


def test_the_predictor_imports_and_runs_without_torch(model, digits, tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray(digits.test.x[0, 0]).save(path)
    code = BLOCK_TORCH + (
        "from edgecv import Predictor\n"
        f"p = Predictor({str(model)!r})\n"
        f"print(p.predict({str(path)!r}).label)\n"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules\n"
        "assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules  # an app's start-up\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == Predictor(model).predict(path).label


def test_cli_predict_table_json_and_keep_going(model, digits, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(digits.test.x[i, 0]).save(folder / f"{i}.png")
    proc = run_cli("predict", folder, "--model", model, "--top-k", "2", "--json", check=True)
    rows = json.loads(proc.stdout)
    assert [Path(r["file"]).name for r in rows] == ["0.png", "1.png", "2.png", "3.png"]
    local = Predictor(model)
    assert [r["label"] for r in rows] == [local.predict(folder / f"{i}.png").label for i in range(4)]
    assert len(rows[0]["topk"]) == 2
    table = invoke("predict", folder / "0.png", "--model", model, check=True)  # the same command, in-process
    assert "0.png" in table.stdout and "top 3" in table.stdout
    (folder / "broken.png").write_bytes(b"not a png")
    assert_user_error(invoke("predict", folder, "--model", model), "broken.png is not an image")
    kept = invoke("predict", folder, "--model", model, "--keep-going", "--json", check=True)
    entries = json.loads(kept.stdout)
    assert len(entries) == 5 and "broken.png" in entries[-1]["file"] and "error" in entries[-1]
    assert "skipped:" in kept.stderr
    assert_user_error(invoke("predict", folder / "0.png", "--model", tmp_path / "none.onnx"), "does not exist")


def test_embed_example_classifies_images(model, digits, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(digits.test.x[i, 0]).save(paths[-1])
    (tmp_path / "bad.png").write_bytes(b"nope")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "embed_predictor.py"), str(model), *map(str, paths),
                           str(tmp_path / "bad.png")], env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("classes: 0, 1, 2")
    local = Predictor(model)
    for line, path in zip(lines[1:4], paths, strict=True):
        assert f"{path}: {local.predict(path).label} (" in line
    assert "bad.png: skipped" in lines[4]


def test_http_example_serves_concurrent_requests_and_refuses_bad_ones(model, digits):
    server = subprocess.Popen([sys.executable, str(ROOT / "examples" / "serve_http.py"), str(model), "--port", "0",
                               "--max-bytes", "5000"], env=cli_env(), stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[-1]

        def post(body: bytes, path: str = "/predict"):
            request = urllib.request.Request(url + path, data=body, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        bodies = []
        for i in range(16):
            buf = io.BytesIO()
            Image.fromarray(digits.test.x[i, 0]).save(buf, format="PNG")
            bodies.append(buf.getvalue())
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, bodies))
        assert [a[0] for a in answers] == [200] * 16
        local = Predictor(model)
        assert [a[1]["label"] for a in answers] == [local.predict(b).label for b in bodies]
        assert len(answers[0][1]["topk"]) == 3
        assert post(b"not an image")[0] == 400
        assert post(b"x" * 6000)[0] == 413
        assert post(bodies[0], "/nope")[0] == 404
        with urllib.request.urlopen(url + "/", timeout=30) as response:
            assert json.loads(response.read())["labels"] == [str(i) for i in range(10)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_predict_timed_takes_the_same_steps_as_predict_and_times_each(model, digits):
    from edgecv.measure.endtoend import sample_photo
    from edgecv.serve.predictor import STAGES

    predictor, photo = Predictor(model), sample_photo()
    for image in (photo, digits.test.x[0, 0], np.zeros((32, 32), np.uint8)):
        prediction, split = predictor.predict_timed(image)
        assert prediction == predictor.predict(image)
        assert list(split) == list(STAGES) and all(ns > 0 for ns in split.values())


def test_many_class_top_k_is_a_stable_sort_of_the_softmax(tmp_path):
    """Over 64 classes top-k comes from a partition: the same classes, order and ties as a stable sort."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3 * 8 * 8, 40)).astype(np.float32)
    # 40 logits, each given to 5 classes (i, i + 40, ...): ties, which a stable sort puts lower class first
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["l"]),
             helper.make_node("Concat", ["l"] * 5, ["logits"], axis=1)]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 200])],
                              [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist())])
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    labels = [f"c{i}" for i in range(200)]
    predictor = Predictor(path, labels=labels, mean=[0.5] * 3, std=[0.25] * 3, top_k=7)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(12)]
    batched = predictor.predict_batch(images)
    for image, in_batch in zip(images, batched, strict=True):
        one = predictor.predict(image)
        x = ((image.transpose(2, 0, 1)[None] / 255.0 - 0.5) / 0.25).astype(np.float32)
        logits = predictor.session.run(None, {"x": x})[0][0].astype(np.float64)
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        order = np.argsort(-probs, kind="stable")[:7]
        assert [t[0] for t in one.topk] == [labels[i] for i in order] == [t[0] for t in in_batch.topk]
        assert np.allclose([t[1] for t in one.topk], probs[order], rtol=1e-4)
        assert order[0] < 40 and order[1:5].tolist() == [order[0] + 40 * k for k in range(1, 5)]


@pytest.mark.parametrize("outputs", [1, 2])  # one output: ONNX Runtime's IO binding; two: the plain path
def test_a_bgr_network_sees_its_channels_reversed_one_image_or_many(tmp_path, outputs):
    """Each channel's mean as the logits: a pure red photo must light the network's third channel (B, G, R)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])]
    if outputs == 2:
        nodes.append(helper.make_node("Identity", ["y"], ["extra"]))
        outs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["n", 3]))
    graph = helper.make_graph(nodes, "means", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            ["n", 3, 8, 8])], outs)
    path = tmp_path / "means.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    from edgecv.core.facts import Stated

    predictor = Predictor(path, labels=["b", "g", "r"], mean=[0.0] * 3, std=[1.0] * 3,
                          facts=Stated(channel_order="bgr", output="y" if outputs == 2 else None))
    assert predictor._bindable == (outputs == 1)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    one, timed = predictor.predict(red), predictor.predict_timed(red)[0]
    assert one.label == "r" and one == timed and one.topk == predictor.predict_batch([red, red])[0].topk
