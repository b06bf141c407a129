"""Training: config, loop, checkpoints, learning-rate sweeps."""

from edgecv.train.config import TrainConfig
from edgecv.train.loop import Reporter, TrainResult, resume, train

__all__ = ["Reporter", "TrainConfig", "TrainResult", "resume", "train"]
