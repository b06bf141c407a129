"""Learning-rate sweeps: one sub-run per value, then a summary ranked by validation loss."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_json
from edgecv.rundir import RunDir, default_run_dir
from edgecv.train.config import TrainConfig
from edgecv.train.loop import Reporter, resume, train


def _check_same_settings(sub: Path, cfg: TrainConfig) -> None:
    try:
        saved = json.loads(RunDir(sub).config.read_text())
    except (OSError, ValueError):
        return  # resume reads the settings from the checkpoint itself
    differ = sorted(k for k, v in cfg.to_dict().items() if k not in ("device",) and saved.get(k) != v)
    if differ:
        raise EdgecvError(f"{sub} was trained with other settings ({', '.join(differ)}); "
                          "use --overwrite to redo the sweep, or another --out")


def sweep(cfg: TrainConfig, lrs: list[float], reporter: Reporter | None = None,
          overwrite: bool = False) -> list[dict[str, Any]]:
    """Train once per learning rate into ``<out>/lr-<value>``; write ``<out>/sweep.json``.

    Sub-runs that already finished are kept (their results reused) and interrupted ones are resumed,
    so re-running the same sweep after a crash completes it.
    """
    cfg = replace(cfg, lr=lrs[0]).resolved()
    root = Path(cfg.out) if cfg.out else default_run_dir(f"{cfg.model}-sweep", cfg.data)
    rows = []
    for lr in lrs:
        sub = root / f"lr-{lr:g}"
        sub_cfg = replace(cfg, lr=lr, out=str(sub))
        if RunDir(sub).last.is_file() and not overwrite:
            _check_same_settings(sub, sub_cfg)
            result = resume(sub, reporter)
        else:
            # a sub-run that died before its first checkpoint holds nothing worth keeping
            result = train(sub_cfg, reporter, overwrite=True)
        best = result.history[result.best_epoch - 1] if result.history else {}
        rows.append({"lr": lr, "run_dir": str(sub), "best_epoch": result.best_epoch,
                     "val_loss": best.get("val_loss"), "val_acc": best.get("val_acc"),
                     "test_accuracy": result.metrics["accuracy"], "test_macro_f1": result.metrics["macro_f1"]})
    rows.sort(key=lambda r: r["val_loss"] if r["val_loss"] is not None else float("inf"))
    write_json(root / "sweep.json", {"model": cfg.model, "data": cfg.data, "runs": rows})
    return rows
