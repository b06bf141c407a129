"""Data sets: the embedded digits, real MNIST/CIFAR-10 file formats and image folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_user_error, invoke, make_cifar10, make_image_folder, make_mnist_like, run_cli
from PIL import Image
from sklearn.datasets import load_digits

from edgecv.core.errors import DataError
from edgecv.data import DATASETS, load_dataset
from edgecv.data import folder as folder_mod


def test_registry_lists_the_data_sets():
    assert DATASETS.names() == ["digits", "mnist", "fashion-mnist", "cifar10", "folder"]
    with pytest.raises(DataError, match="choose one of: digits, mnist"):
        load_dataset("imagenet", 8)


def test_digits_split_is_fixed_stratified_and_8bit():
    bundle = load_dataset("digits", 8)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (1293, 144, 360)
    assert bundle.input_shape == (1, 8, 8) and bundle.labels == [str(i) for i in range(10)]
    assert bundle.train.x.dtype == np.uint8 and bundle.train.x.max() == 255
    # every class is in every split in proportion
    for split in (bundle.train, bundle.val, bundle.test):
        counts = np.bincount(split.y, minlength=10)
        assert counts.min() >= 0.8 * counts.mean()
    # the same images as scikit-learn's, scaled from 0..16 to 0..255
    raw = load_digits()
    scaled = np.rint(raw.images * 255 / 16).astype(np.uint8)
    first = bundle.test.x[0, 0]
    assert any(np.array_equal(first, img) for img in scaled)
    # splits do not overlap, and do not change between calls
    again = load_dataset("digits", 8)
    assert np.array_equal(again.test.x, bundle.test.x)
    train_keys = {x.tobytes() for x in bundle.train.x}
    assert not any(x.tobytes() in train_keys for x in bundle.test.x if (scaled == x[0]).all(axis=(1, 2)).sum() == 1)


def test_digits_resize_and_colour_conversion_use_pillow():
    small = load_dataset("digits", 8)
    big = load_dataset("digits", 32, color="RGB")
    assert big.input_shape == (3, 32, 32) and big.color == "RGB"
    expected = np.asarray(Image.fromarray(small.test.x[0, 0]).convert("RGB").resize((32, 32), Image.BILINEAR))
    assert np.array_equal(big.test.x[0].transpose(1, 2, 0), expected)
    assert len(big.mean) == 3 and big.mean[0] == big.mean[1] == big.mean[2]


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_format_files_load_through_torchvision(tmp_path, name, folder):
    arrays = make_mnist_like(tmp_path, folder, n_train=60, n_test=20)
    bundle = load_dataset(name, 28, data_root=tmp_path)
    assert bundle.input_shape == (1, 28, 28)
    assert len(bundle.test) == 20 and len(bundle.train) + len(bundle.val) == 60
    x_test, y_test = arrays["t10k"]
    assert np.array_equal(bundle.test.x[:, 0], x_test) and np.array_equal(bundle.test.y, y_test)
    assert bundle.allow_flip is (name == "fashion-mnist")
    if name == "mnist":
        assert bundle.labels == [str(i) for i in range(10)]
    else:
        assert bundle.labels[0] == "T-shirt/top"
    resized = load_dataset(name, 32, data_root=tmp_path)
    assert resized.input_shape == (1, 32, 32)


def test_cifar10_format_batches_load_through_torchvision(tmp_path):
    written, names = make_cifar10(tmp_path, per_batch=10, n_test=20)
    bundle = load_dataset("cifar10", 32, data_root=tmp_path)
    assert bundle.labels == names and bundle.color == "RGB" and bundle.input_shape == (3, 32, 32)
    test_data, test_labels = written["test_batch"]
    assert np.array_equal(bundle.test.x, test_data.reshape(-1, 3, 32, 32))
    assert bundle.test.y.tolist() == test_labels
    assert len(bundle.train) + len(bundle.val) == 50
    assert bundle.allow_flip and bundle.pad_mode == "reflect"


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_torchvision_data_says_how_to_get_it(tmp_path, name):
    with pytest.raises(DataError, match="pass --download to fetch it, or --data-root DIR"):
        load_dataset(name, 32, data_root=tmp_path / "empty")


def test_image_folder_with_seeded_split_and_auto_colour(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=10)
    bundle = load_dataset(f"folder:{root}", 16)
    assert bundle.labels == ["cat", "dog", "fox"] and bundle.color == "RGB"
    assert bundle.input_shape == (3, 16, 16)
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 30
    assert sorted(set(bundle.test.y.tolist())) == [0, 1, 2]
    gray = load_dataset(f"folder:{make_image_folder(tmp_path / 'gray', mode='L')}", 16)
    assert gray.color == "L" and gray.input_shape == (1, 16, 16)


def test_image_folder_uses_train_val_test_subfolders(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        make_image_folder(tmp_path / "ds" / split, classes=("a", "b"), per_class=n, seed=len(split))
    bundle = load_dataset(f"folder:{tmp_path / 'ds'}", 12, color="L")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (12, 4, 6)
    assert bundle.color == "L" and bundle.labels == ["a", "b"]


def test_image_folder_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}", 16)
    one = make_image_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(DataError, match="has 1 class folder"):
        load_dataset(f"folder:{one}", 16)
    empty = make_image_folder(tmp_path / "empty", classes=("a", "b"))
    (empty / "c").mkdir()
    with pytest.raises(DataError, match="Found no valid file for the classes c"):
        load_dataset(f"folder:{empty}", 16)
    broken = make_image_folder(tmp_path / "broken", classes=("a", "b"))
    (broken / "b" / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"1 of 21 images .* cannot be read \(bad\.png; the first: image .*bad\.png "
                                        r"is not an image"):
        load_dataset(f"folder:{broken}", 16)
    split = tmp_path / "split"
    make_image_folder(split / "train", classes=("a", "b"))
    make_image_folder(split / "test", classes=("a", "c"))
    with pytest.raises(DataError, match="has classes"):
        load_dataset(f"folder:{split}", 16)
    with pytest.raises(DataError, match="folder:PATH"):
        load_dataset("folder", 16)


def test_image_folder_refuses_images_over_the_pixel_cap(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "big", classes=("a", "b"), size=(40, 30))
    monkeypatch.setattr(folder_mod, "MAX_PIXELS", 1000)
    with pytest.raises(DataError, match="over the 1,000 pixel cap"):
        load_dataset(f"folder:{root}", 16)


def test_too_few_images_to_split_is_a_clear_error(tmp_path):
    root = make_image_folder(tmp_path / "few", classes=("a", "b"), per_class=2)
    with pytest.raises(DataError, match="too few images"):
        load_dataset(f"folder:{root}", 16)


def test_unreadable_images_in_a_folder_are_counted_and_named_or_left_out_with_keep_going(tmp_path):
    """Four broken files among 36: training refuses before it starts, naming the count and the first three;
    --keep-going trains on the rest, says what it left out, and the run's eval leaves out the same files."""

    root = make_image_folder(tmp_path / "imgs", per_class=12)
    (root / "cat" / "cat_0.png").write_bytes(b"not a png")
    (root / "dog" / "dog_1.png").write_bytes((root / "dog" / "dog_2.png").read_bytes()[:40])  # truncated
    (root / "fox" / "fox_3.png").write_bytes(b"")
    (root / "fox" / "fox_4.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    args = ["train", "--data", f"folder:{root}", "--model", "mlp", "--epochs", "1"]
    refused = invoke(*args, "--out", tmp_path / "r1")
    assert_user_error(refused, "4 of 36 images", "cannot be read", "and 1 more", "--keep-going")
    assert not (tmp_path / "r1").exists()
    kept = run_cli(*args, "--out", tmp_path / "r2", "--keep-going", check=True)
    assert "left out 4 unreadable images (--keep-going)" in kept.stdout + kept.stderr
    metrics = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    total = metrics["num_samples"]
    invoke("export", tmp_path / "r2", "--format", "onnx", check=True)
    evaluated = invoke("eval", tmp_path / "r2" / "model.onnx", "--json", tmp_path / "e.json", check=True)
    assert json.loads((tmp_path / "e.json").read_text())["metrics"]["num_samples"] == total
    assert "Traceback" not in evaluated.stderr
    # a copy outside its run (no config to say how it was trained): refused, or left out with --keep-going
    model = tmp_path / "elsewhere" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes((tmp_path / "r2" / "model.onnx").read_bytes())
    assert_user_error(invoke("eval", model, "--data", f"folder:{root}"), "4 of 36 images", "--keep-going")
    invoke("eval", model, "--data", f"folder:{root}", "--keep-going", "--json", tmp_path / "f.json",
           check=True)
    assert json.loads((tmp_path / "f.json").read_text())["metrics"]["num_samples"] == total
