"""history.csv: one row per finished epoch, rewritten atomically so each epoch appears exactly once."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from edgecv.core.fsutil import write_text

COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "train_precision",
    "train_recall",
    "train_f1",
    "val_loss",
    "val_acc",
    "val_precision",
    "val_recall",
    "val_f1",
    "lr",
    "seconds",
    "images_per_s",
)


def write_history(path: Path | str, rows: list[dict[str, Any]]) -> None:
    """Write all epoch rows to ``path``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in COLUMNS})  # "" where a resumed older run lacks one
    write_text(path, buf.getvalue())


def read_history(path: Path | str) -> list[dict[str, float]]:
    """Rows of a history.csv as numbers."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: float(v) if v else float("nan") for k, v in row.items()} for row in csv.DictReader(fh)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
