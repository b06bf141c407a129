"""What quantisation is asked (QuantizeOptions) and what it reports (MethodResult per method, QuantizeReport for the
run, written as quantize.json), with its error type."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.core.errors import EdgecvError
from edgecv.core.facts import Stated
from edgecv.quantize import methods as m

METHODS = m.METHODS


CALIB_METHODS = m.CALIB_METHODS


QTYPES = m.QTYPES


TUNED_FOR = m.TUNED_FOR


DYNAMIC_NOTE = ("ONNX Runtime has no fast dynamic ConvInteger kernel, so conv nets usually run slower as "
                "int8-dynamic than as fp32; it suits Linear/MatMul-heavy models")


LARGE_DROP_PP = 1.0  # without a budget, a bigger validation loss than this gets a note


class QuantizeError(EdgecvError):
    """One or more methods failed; ``report`` holds what the others produced."""

    def __init__(self, message: str, report: QuantizeReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class QuantizeOptions:
    """How to quantise; ``None`` means "decide from the model, its data and the host CPU"."""

    methods: tuple[str, ...] = METHODS
    data: str | None = None  # data set for calibration and accuracy; default: the model's own
    data_root: str | None = None  # where torchvision data sets live
    calib_size: int = 512  # calibration images, drawn from the training split
    calib_method: str = "minmax"  # minmax | entropy | percentile
    per_channel: bool = True  # per-channel weight scales
    activation_type: str | None = None  # uint8 | int8; default from the host CPU
    weight_type: str | None = None  # int8 | uint8; default from the host CPU
    reduce_range: bool | None = None  # 7-bit weights; default: on for x86 without VNNI
    max_accuracy_drop: float | None = None  # percentage points of validation accuracy against fp32
    max_float_nodes: int | None = None  # most nodes the accuracy-aware mode may return to float
    out_dir: Path | None = None  # default: next to the input
    speed_check: bool = True  # time each file against fp32 and say when one does not pay
    speed_batch: int = 64  # the batch size the speed check times (a fixed-batch model: its own)
    facts: Stated | None = None  # facts stated over the file's spec (--labels, --resize, …; edgecv.core.facts)
    label_map: dict[str, str] | None = None  # data folder name -> model label
    tune_for: str = "onnxruntime"  # the engine the int8 files are shaped for (methods.TUNED_FOR)

    def validate(self) -> None:
        bad = [x for x in self.methods if x not in METHODS]
        if bad or not self.methods:
            raise EdgecvError(f"--method must be {', '.join(METHODS)} or all, got {', '.join(bad) or 'nothing'}")
        if self.calib_method not in CALIB_METHODS:
            raise EdgecvError(f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {self.calib_method!r}")
        for flag, value in (("--activation-type", self.activation_type), ("--weight-type", self.weight_type)):
            if value is not None and value not in QTYPES:
                raise EdgecvError(f"{flag} must be uint8 or int8, got {value!r}")
        if self.calib_size < 1:
            raise EdgecvError(f"--calib-size must be at least 1 (calibration needs images), got {self.calib_size}")
        if self.max_accuracy_drop is not None and not self.max_accuracy_drop >= 0:
            raise EdgecvError(f"--max-accuracy-drop takes percentage points >= 0, got {self.max_accuracy_drop}")
        if self.speed_batch < 1:
            raise EdgecvError(f"--speed-batch must be at least 1, got {self.speed_batch}")
        if self.tune_for not in TUNED_FOR:
            raise EdgecvError(f"--tune-for must be one of {', '.join(TUNED_FOR)}, got {self.tune_for!r}")
        if self.tune_for != "onnxruntime" and self.methods != ("int8-static",):
            raise EdgecvError(f"--tune-for {self.tune_for} shapes int8-static files only: pass --method int8-static")
        if self.max_float_nodes is not None and self.max_float_nodes < 0:
            raise EdgecvError(f"--max-float-nodes must be >= 0, got {self.max_float_nodes}")


@dataclass
class MethodResult:
    """One quantised file: what it is, how it was made, and what it scores against fp32."""

    method: str
    file: str
    size_bytes: int
    val_accuracy: float
    test_accuracy: float
    val_drop_pp: float
    test_drop_pp: float
    settings: dict[str, Any]
    float_nodes: list[str] = field(default_factory=list)
    aware_steps: list[dict[str, Any]] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)  # nodes by logit error when quantised alone
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    speed: dict[str, Any] = field(default_factory=dict)  # images/s against fp32 at speed_batch on this host (speed.py)


@dataclass
class QuantizeReport:
    """What ``quantize.json`` records: the fp32 source, the data, the host, and each method's result."""

    source: dict[str, Any]
    data: dict[str, Any]
    host: dict[str, Any]
    results: list[MethodResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
