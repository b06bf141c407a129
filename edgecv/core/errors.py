"""Typed errors. The CLI turns an :class:`EdgecvError` into one line on stderr and its exit code."""

from __future__ import annotations


class EdgecvError(Exception):
    """A problem the user can fix: bad input, a missing file, an impossible setting (exit code 2)."""

    exit_code = 2


class DataError(EdgecvError):
    """A data set cannot be found, read or split."""


class InvalidImageError(DataError):
    """An image cannot be read: not an image, truncated, empty, too large, or an array of the wrong shape."""


class ModelError(EdgecvError):
    """A model name, file or weight set is unknown, corrupt or does not fit."""


class CheckpointError(ModelError):
    """A checkpoint is corrupt, foreign or unsafe to load."""


class TrainingDiverged(EdgecvError):
    """The loss became NaN or infinite; the last good checkpoint is kept (exit code 1)."""

    exit_code = 1
