"""ModelSpec: everything an app needs to feed a model, serialised as JSON inside every artefact.

Torch-free: the predictor, eval and bench read it from model files on machines without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgecv.core.errors import ModelError

LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "uint8")
COLORS = {"L": 1, "RGB": 3}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")  # Pillow's resampling filters, by torchvision's names
CHANNEL_ORDERS = ("rgb", "bgr")
OUTPUT_KINDS = ("logits", "probabilities")


@dataclass(frozen=True)
class Framing:
    """How a decoded image is brought to the model's H×W: resized straight to it (``resize`` 0, as edgecv's own
    models are trained), or its shorter side resized to ``resize`` and the centre H×W cropped (torchvision's
    and timm's evaluation transform), with Pillow's ``interpolation`` filter either way."""

    resize: int = 0
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ModelError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize < 0:
            raise ModelError(f"resize must be 0 (straight to the input size) or a positive size, got {self.resize}")

    def check_fits(self, size: tuple[int, int]) -> None:
        """A crop of ``size`` (H, W) must fit inside the resized image."""
        if self.resize and self.resize < max(size):
            raise ModelError(f"resize {self.resize} is smaller than the {size[0]}x{size[1]} crop it must hold")


@dataclass
class ModelSpec:
    """Preprocessing and provenance facts that travel with a model.

    An image is converted to ``color``, then brought to ``input_shape``'s H×W with ``interpolation``: resized
    straight to it when ``resize`` is 0, else its shorter side resized to ``resize`` and the centre cropped
    (:class:`Framing`). ``channel_order`` "bgr" reverses an RGB image's channels for the network, and a pixel
    ``p`` (0..255) of network channel ``c`` reaches it as ``(p * scale - mean[c]) / std[c]``. The model's
    outputs (``output``: the graph output that holds them) are logits already divided by ``temperature``
    (fitted on the validation split), so their softmax is calibrated, or, with ``outputs`` "probabilities",
    probabilities as they are. Spec files written before ``resize``, ``channel_order`` and ``outputs`` existed
    read as 0, "rgb" and "logits".
    """

    labels: list[str]
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]
    std: list[float]
    color: str = "L"  # Pillow mode the image is converted to: "L" or "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    scale: float = 1.0 / 255.0
    interpolation: str = "bilinear"  # Pillow resample used for the training data
    resize: int = 0  # shorter side resized to this, then the centre cropped; 0: resized straight to H×W
    channel_order: str = "rgb"  # "bgr": the network takes an RGB image's channels reversed
    temperature: float = 1.0  # the model file already divides its logits by this (see edgecv.core.calibration)
    outputs: str = "logits"  # "probabilities": the file's scores are probabilities already (never softmaxed again)
    output: str = ""  # the graph output holding the class scores ("": the first)
    arch: str = ""
    dataset: str = ""
    edgecv_version: str = ""
    source_sha256: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(v) for v in self.input_shape)  # type: ignore[assignment]
        self.labels = [str(label) for label in self.labels]
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.temperature = float(self.temperature)
        self.resize = int(self.resize)
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.input_shape[1], self.input_shape[2]

    @property
    def framing(self) -> Framing:
        return Framing(self.resize, self.interpolation)

    def validate(self) -> None:
        """Raise :class:`ModelError` naming the first inconsistent field."""
        if not self.labels:
            raise ModelError("model spec has no labels")
        if len(set(self.labels)) != len(self.labels):
            raise ModelError("model spec has duplicate labels")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ModelError(f"model spec input_shape must be (C, H, W), got {self.input_shape}")
        if self.color not in COLORS:
            raise ModelError(f"model spec color must be one of {sorted(COLORS)}, got {self.color!r}")
        if COLORS[self.color] != self.channels:
            raise ModelError(
                f"model spec color {self.color!r} does not match {self.channels} input channels"
            )
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ModelError("model spec mean/std need one value per input channel")
        if min(self.std) <= 0:
            raise ModelError("model spec std values must be positive")
        if not self.temperature > 0:
            raise ModelError(f"model spec temperature must be positive, got {self.temperature}")
        if self.layout not in LAYOUTS:
            raise ModelError(f"model spec layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dtype not in DTYPES:
            raise ModelError(f"model spec dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.outputs not in OUTPUT_KINDS:
            raise ModelError(f"model spec outputs must be logits or probabilities, got {self.outputs!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ModelError(f"model spec channel_order must be rgb or bgr, got {self.channel_order!r}")
        if self.channel_order == "bgr" and self.color != "RGB":
            raise ModelError("model spec channel_order bgr needs color RGB")
        try:
            self.framing.check_fits(self.size)
        except ModelError as exc:
            raise ModelError(f"model spec {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build from a dict, ignoring keys written by newer versions."""
        if not isinstance(data, dict):
            raise ModelError("model spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("labels", "input_shape", "mean", "std") if k not in data]
        if missing:
            raise ModelError(f"model spec lacks {', '.join(missing)}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model spec is malformed: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)
