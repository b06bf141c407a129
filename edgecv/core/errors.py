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


class MissingSpecError(ModelError):
    """A model file carries no edgecv spec and was not told the facts it lacks. ``missing`` names them (of
    ``labels``, ``mean``, ``std``, ``input_shape``, ``dataset``), so a caller can ask for each in its own words."""

    def __init__(self, message: str, missing: tuple[str, ...] | list[str] = ("labels", "mean", "std", "input_shape"),
                 path: object = None) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.path = path

    @classmethod
    def in_file(cls, path: object) -> MissingSpecError:
        """The runtimes' error for a file without a spec, naming the command-line flags that supply one."""
        return cls(f"{path} has no edgecv spec: pass --labels, --mean, --std and --input-shape", path=path)


class CheckpointError(ModelError):
    """A checkpoint is corrupt, foreign or unsafe to load."""


class TrainingDiverged(EdgecvError):
    """The loss became NaN or infinite; the last good checkpoint is kept (exit code 1)."""

    exit_code = 1
