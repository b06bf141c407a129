"""What every model's run is given, alike for one pipeline and for each model of a study: one type, checked
once, so the two never drift apart."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from edgecv.core.errors import EdgecvError


@dataclass
class RunOptions:
    """The data, the training length and how long to measure."""

    data: str = "digits"
    epochs: int | None = None  # None: the model's default
    provider: str = "cpu"
    force: bool = False  # redo every stage, even those whose outputs are current
    seconds: float = 0.5  # time per bench measurement
    data_root: str | None = None
    download: bool = False
    calibrate: bool = True  # temperature scaling on the validation split after training
    isolate: bool = True  # bench measures memory and cold start in a fresh process per variant
    keep_going: bool = False  # leave out a folder's unreadable images instead of refusing it
    stream: bool | None = None  # folders: stream from disk; None: when larger than EDGECV_RESIDENT_MB

    def validate(self) -> None:
        if self.seconds <= 0:
            raise EdgecvError(f"--seconds must be positive, got {self.seconds}")
        if self.epochs is not None and self.epochs < 1:
            raise EdgecvError(f"--epochs must be at least 1, got {self.epochs}")

    def shared(self) -> dict[str, Any]:
        """These options as keyword arguments, for the options of one model's run."""
        return {f.name: getattr(self, f.name) for f in fields(RunOptions)}
