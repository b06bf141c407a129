"""The same seed gives bit-identical weights on the CPU, run after run, in separate processes."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli

from edgecv.train.checkpoint import load_checkpoint


def _weights(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow  # make test-all
def test_the_same_seed_gives_bit_identical_weights_and_another_seed_does_not(tmp_path):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        runs[name] = tmp_path / name
        run_cli("train", "--model", "cnn-bn", "--epochs", "2", "--seed", seed, "--out", runs[name], check=True)
    a, b, c = (_weights(runs[k]) for k in "abc")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert not all(torch.equal(a[k], c[k]) for k in a)
    untimed = [_untimed(runs[k] / "history.csv") for k in "ab"]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2  # every loss and metric, to the last digit


def _untimed(path) -> list[dict[str, str]]:
    """history.csv without its wall-clock columns (seconds, images/s)."""
    import csv

    rows = list(csv.DictReader(path.read_text().splitlines()))
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in rows]
