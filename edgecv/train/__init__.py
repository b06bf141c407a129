"""Training: config, loop, checkpoints, learning-rate sweeps.

``from edgecv.train import TrainConfig, train`` loads the loop (and scikit-learn, which its calibration uses) on
first use, so a process that only reads a checkpoint through ``edgecv.train.checkpoint`` (a torch runtime, a
memory probe) starts without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecv.train.config import TrainConfig
    from edgecv.train.loop import Reporter, TrainResult, resume, train

__all__ = ["Reporter", "TrainConfig", "TrainResult", "resume", "train"]

_HOMES = {"TrainConfig": "edgecv.train.config", "Reporter": "edgecv.train.loop", "TrainResult": "edgecv.train.loop",
          "resume": "edgecv.train.loop", "train": "edgecv.train.loop"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'edgecv.train' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
