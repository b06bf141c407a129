"""Folder data sets that stream from disk: the same splits, pixels, statistics and batches as a folder held in
memory, unreadable files found before training, and the CLI paths (train, eval, bench) with --stream."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import BLOCK_TORCH, assert_user_error, cli_env, invoke, make_image_folder, run_cli

from edgecv.core.errors import DataError
from edgecv.data import FolderSplit, Split, load_dataset
from edgecv.data.batches import DeviceBatches, StreamBatches, batches_for


def _pixels(split) -> np.ndarray:
    return np.concatenate([x for x, _ in split.chunks(size=7, workers=2)])


def test_a_streamed_folder_splits_and_scales_exactly_as_one_held_in_memory(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "imgs", per_class=20, size=(20, 14))
    held = load_dataset(f"folder:{root}", 12, stream=False)
    streamed = load_dataset(f"folder:{root}", 12, stream=True)
    assert not held.streamed and streamed.streamed
    assert isinstance(streamed.train, FolderSplit) and isinstance(held.train, Split)
    assert (streamed.mean, streamed.std) == (held.mean, held.std)
    assert streamed.input_shape == held.input_shape == (3, 12, 12)
    for name in ("train", "val", "test"):
        a, b = held.split(name), streamed.split(name)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(_pixels(b), a.x)
        np.testing.assert_array_equal(b.take([4, 0, 2]), a.x[[4, 0, 2]])
        np.testing.assert_array_equal(b.head(3), a.x[:3])
    # without --stream, a folder streams only past the memory budget
    assert not load_dataset(f"folder:{root}", 12).streamed
    monkeypatch.setenv("EDGECV_RESIDENT_MB", "0.001")
    auto = load_dataset(f"folder:{root}", 12, check=False)
    assert auto.streamed and auto.mean == []  # no pass over the images was asked for
    monkeypatch.setenv("EDGECV_RESIDENT_MB", "lots")
    with pytest.raises(DataError, match="EDGECV_RESIDENT_MB must be a number"):
        load_dataset(f"folder:{root}", 12)


def test_unreadable_files_stop_a_streamed_folder_before_training_or_are_left_out_the_same_way(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=12)
    (root / "cat" / "cat_0.png").write_bytes(b"not a png")
    (root / "dog" / "dog_1.png").write_bytes((root / "dog" / "dog_2.png").read_bytes()[:60])  # truncated
    with pytest.raises(DataError, match=r"2 of 36 images .* cannot be read \(cat_0.png, dog_1.png.*--keep-going"):
        load_dataset(f"folder:{root}", 8, stream=True)
    streamed = load_dataset(f"folder:{root}", 8, stream=True, keep_going=True)
    held = load_dataset(f"folder:{root}", 8, stream=False, keep_going=True)
    assert sorted(streamed.skipped) == sorted(held.skipped) and len(held.skipped) == 2
    for name in ("train", "val", "test"):  # the split is carved after the bad files are left out, as in memory
        np.testing.assert_array_equal(streamed.split(name).y, held.split(name).y)
        np.testing.assert_array_equal(_pixels(streamed.split(name)), held.split(name).x)
    # without the pass, a streamed split finds them as it goes and leaves them out of its chunks
    raw = load_dataset(f"folder:{root}", 8, stream=True, check=False)
    seen = sum(len(x) for split in (raw.train, raw.val, raw.test) for x, _ in split.chunks())
    assert seen == 34
    assert {p for s in (raw.train, raw.val, raw.test) for p, _ in s.bad} == set(held.skipped)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_are_the_resident_batches(tmp_path, workers):
    """Same seed: the same shuffled order, crops, flips and shards, whether the pixels come from memory or
    from DataLoader workers; and a file broken after the check is one clear error naming it."""
    root = make_image_folder(tmp_path / "imgs", per_class=15)
    held = load_dataset(f"folder:{root}", 10, stream=False)
    streamed = load_dataset(f"folder:{root}", 10, stream=True)
    common = dict(shuffle=True, crop_pad=2, pad_mode="reflect", flip=True, drop_last=True, shard=(1, 2))
    a = DeviceBatches(held.train, held.mean, held.std, 4, torch.device("cpu"),
                      gen=torch.Generator().manual_seed(3), **common)
    b = batches_for(streamed.train, streamed.mean, streamed.std, 4, torch.device("cpu"), workers=workers,
                    gen=torch.Generator().manual_seed(3), **common)
    assert isinstance(b, StreamBatches) and len(a) == len(b) > 1
    for _epoch in range(2):
        pairs = list(zip(a, b, strict=True))
        assert len(pairs) == len(a)
        for (xa, ya), (xb, yb) in pairs:
            assert torch.equal(ya, yb) and torch.equal(xa, xb)
    victim = streamed.train.paths[0]
    with open(victim, "wb") as fh:
        fh.write(b"gone bad")
    every = batches_for(streamed.train, streamed.mean, streamed.std, 64, torch.device("cpu"), workers=workers)
    with pytest.raises(DataError) as caught:
        list(every)
    message = str(caught.value)
    assert "\n" not in message and victim in message and "Traceback" not in message


def _history(run) -> list[dict[str, str]]:
    with open(run / "history.csv") as fh:
        return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in csv.DictReader(fh)]


def test_train_eval_and_bench_stream_a_folder_with_the_same_results(tmp_path):
    """One user path: train with --stream and with --no-stream (identical histories and test metrics), then
    eval and bench on the folder streamed and held in memory (identical accuracy); bad input stays one line."""
    root = make_image_folder(tmp_path / "imgs", per_class=25)
    args = ["train", "--data", f"folder:{root}", "--model", "lenet5", "--epochs", "2", "--seed", "4"]
    streamed = run_cli(*args, "--stream", "--workers", "1", "--out", tmp_path / "s", check=True)
    invoke(*args, "--no-stream", "--out", tmp_path / "m", check=True)  # the streamed one ran in a process of its own
    assert "test accuracy" in streamed.stdout
    assert _history(tmp_path / "s") == _history(tmp_path / "m")
    ms, mm = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("s", "m"))
    assert ms["accuracy"] == mm["accuracy"] and ms["num_samples"] == mm["num_samples"] == 15
    assert json.loads((tmp_path / "s" / "config.json").read_text())["stream"] is True

    # training ran in processes of its own; export, eval and bench run in this one
    invoke("export", tmp_path / "s", "--format", "onnx", check=True)
    model = tmp_path / "s" / "model.onnx"
    scores = {}
    for mode in ("--stream", "--no-stream"):
        invoke("eval", model, mode, "--json", tmp_path / f"e{mode}.json", check=True)
        scores[mode] = json.loads((tmp_path / f"e{mode}.json").read_text())["metrics"]
    assert scores["--stream"]["accuracy"] == scores["--no-stream"]["accuracy"] == ms["accuracy"]
    assert scores["--stream"]["confusion_matrix"] == scores["--no-stream"]["confusion_matrix"]
    # the base install: the folder is listed and streamed without torch or torchvision
    args_free = ["eval", str(model), "--stream", "--json", str(tmp_path / "free.json")]
    script = BLOCK_TORCH + f"from edgecv.cli.app import app\napp({args_free!r}, standalone_mode=False)\n" \
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules\n"
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "free.json").read_text())["metrics"]["accuracy"] == ms["accuracy"]
    invoke("bench", model, "--stream", "--no-isolate", "--seconds", "0.2", "--rounds", "2", "--batch-sizes", "1,4",
           "--json", tmp_path / "b.json", check=True)
    bench_row = json.loads((tmp_path / "b.json").read_text())["variants"][0]
    assert bench_row["metrics"]["accuracy"] == ms["accuracy"]

    (root / "cat" / "cat_3.png").write_bytes(b"broken")
    broken = invoke("eval", model, "--stream", "--data", f"folder:{root}", "--split", "train")
    assert_user_error(broken, "1 of", "cat_3.png", "--keep-going")
    assert_user_error(invoke("train", "--data", "digits", "--stream", "--out", tmp_path / "d"),
                      "--stream applies to folder:PATH")
    assert_user_error(invoke(*args, "--stream", "--workers", "-1", "--out", tmp_path / "w"),
                      "--workers must be at least 0")
