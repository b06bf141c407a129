"""TrainConfig: every training setting, with the defaults a plain ``edgecv train`` uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgecv.core.errors import EdgecvError
from edgecv.core.spec import Framing
from edgecv.data import DataBundle, load_dataset, parse_data_name
from edgecv.models import model_entry
from edgecv.models.torchvision_models import is_weights_name
from edgecv.models.user_code import absolute, code_record, is_user_code

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "one-cycle")
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """Settings for one training run; ``None`` means "the model's or data set's default"."""

    data: str = "digits"  # a registered data set, or folder:PATH
    model: str = "cnn-bn"
    out: str | None = None  # run directory; default runs/<model>-<data>, numbered if taken
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # peak learning rate for one-cycle
    optimizer: str | None = None  # sgd | adam | adamw
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True  # SGD Nesterov momentum
    weight_decay: float | None = None
    schedule: str | None = None  # constant | cosine | one-cycle, stepped every batch
    label_smoothing: float | None = None
    grad_clip: float | None = None  # max global gradient norm
    patience: int | None = None  # stop after this many epochs without a better validation loss
    seed: int = 0  # model init, shuffling, augmentation, dropout
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # CUDA mixed precision: auto (bf16 where supported) | bf16 | fp16 | off
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False  # torch.compile the model (CUDA)
    deterministic: bool = False  # deterministic kernels (slower on CUDA)
    img_size: int | None = None  # images are resized to size x size; None: the model's input size
    color: str | None = None  # L | RGB; None: the data set's own
    augment: bool = True  # random crop with padding (random-resized crops: torchvision/timm models on a folder)
    flip: bool | None = None  # horizontal flips; None: the data set's default (never for digits)
    data_root: str = "data"  # where torchvision data sets live
    download: bool = False
    weights: str | None = None  # pretrained weights: a file, or a torchvision weights name (DEFAULT, IMAGENET1K_V2)
    weights_meta: str | None = None  # torchvision:NAME: the weights entry whose preprocessing applies (default DEFAULT)
    freeze: bool | None = None  # freeze pretrained features (vgg16-transfer)
    feature_lr_scale: float | None = None  # feature LR = lr x this when unfrozen (vgg16-transfer)
    calibrate: bool = True  # fit a temperature on the validation split after training (edgecv.core.calibration)
    keep_going: bool = False  # leave out a folder's unreadable images instead of refusing it
    stream: bool | None = None  # folders: decode on the fly; None: when larger than EDGECV_RESIDENT_MB
    workers: int | None = None  # DataLoader processes decoding a streamed folder; None: one per core, at most 4
    model_code: dict[str, str] | None = None  # your own module: the file's path and SHA-256 when the run began

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def preprocessing(self) -> tuple[Framing, list[float] | None, list[float] | None]:
        """How a resolved run frames and normalises its images: a torchvision or timm model as its weights
        expect (the shorter side resized in the weights' proportion to --img-size, centre-cropped, their mean and
        std); others resized straight to --img-size, with the data set's own statistics (None, None)."""
        entry = model_entry(self.model)
        if entry.native is None:
            return Framing(), None, None
        native = entry.native(self.weights_meta)
        resize = max(self.img_size, round(native.resize * self.img_size / native.size))  # type: ignore[operator]
        return Framing(resize, native.interpolation), list(native.mean), list(native.std)

    def load_data(self, progress: Callable[[int, int], None] | None = None) -> DataBundle:
        """The resolved run's data set, framed and normalised as :meth:`preprocessing` says.

        A torchvision or timm model trained on a folder with augmentation streams it and trains on
        random-resized crops of each whole image, as torchvision's recipes do (``--no-stream`` holds the framed
        images in memory and trains on their padded crops instead)."""
        framing, mean, std = self.preprocessing()
        crops = self.random_crops()
        data = load_dataset(self.data, self.img_size, color=self.color, data_root=self.data_root,  # type: ignore[arg-type]
                            download=self.download, keep_going=self.keep_going, stream=True if crops else self.stream,
                            progress=progress, framing=framing)
        if crops:
            data = replace(data, train=data.train.with_random_crops())
        return replace(data, mean=mean, std=std) if mean else data

    def random_crops(self) -> bool:
        """Whether training draws torchvision's random-resized crops from whole images: a torchvision or timm
        model, a folder, augmentation on and streaming not turned off."""
        return (self.augment and self.stream is not False and self.data.startswith("folder:")
                and model_entry(self.model).native is not None)

    def model_options(self) -> dict[str, Any]:
        """Builder options the user set (only models that declare them accept them)."""
        opts = {"weights": self.weights, "freeze": self.freeze, "feature_lr_scale": self.feature_lr_scale,
                "weights_meta": self.weights_meta}
        return {k: v for k, v in opts.items() if v is not None}

    def resolved(self) -> TrainConfig:
        """A copy with every model and data default filled in, validated."""

        entry = model_entry(self.model)
        info, folder = parse_data_name(self.data)
        d = entry.defaults
        own_code = is_user_code(self.model)
        cfg = replace(
            self,
            model=absolute(self.model) if own_code else self.model,
            model_code=(self.model_code or code_record(self.model)) if own_code else None,  # a resume keeps the first
            # absolute paths, so a run resumes from any working directory
            data=f"folder:{folder.resolve()}" if folder is not None else self.data,
            data_root=str(Path(self.data_root).expanduser().resolve()),
            weights=resolved_weights(self.weights),
            epochs=self.epochs if self.epochs is not None else d.epochs,
            batch_size=self.batch_size if self.batch_size is not None else d.batch_size,
            lr=self.lr if self.lr is not None else d.lr,
            optimizer=self.optimizer or d.optimizer,
            weight_decay=self.weight_decay if self.weight_decay is not None else d.weight_decay,
            schedule=self.schedule or d.schedule,
            label_smoothing=self.label_smoothing if self.label_smoothing is not None else d.label_smoothing,
            img_size=self.img_size or entry.input_size,
            color=self.color or entry.color,  # torchvision and timm models take RGB: gray data is converted
            flip=self.flip if self.flip is not None else info.allow_flip,
        )
        if entry.pretrained and not self.weights:
            # random VGG16 features (no BatchNorm) carry no signal and do not train from scratch
            raise EdgecvError(f"{self.model} starts from pretrained weights: pass --weights FILE (a torchvision "
                              "VGG16 state dict, e.g. vgg16-397923af.pth); to train from scratch use --model vgg")
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`EdgecvError` naming the first impossible setting."""
        checks = [
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}"),
            (self.color in (None, "L", "RGB"), "--color must be L or RGB"),
            (self.epochs is not None and self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size is not None and self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr is not None and self.lr > 0, "--lr must be positive"),
            (self.weight_decay is not None and self.weight_decay >= 0, "--weight-decay must be >= 0"),
            (self.label_smoothing is not None and 0 <= self.label_smoothing < 1,
             "--label-smoothing must be in [0, 1)"),
            (self.grad_clip is None or self.grad_clip > 0, "--grad-clip must be positive"),
            (self.patience is None or self.patience >= 1, "--patience must be at least 1"),
            (self.img_size is None or 4 <= self.img_size <= 1024, "--img-size must be between 4 and 1024"),
            (0 <= self.momentum < 1, "--momentum must be in [0, 1)"),
            (self.workers is None or self.workers >= 0, "--workers must be at least 0"),
            (not self.stream or self.data.startswith("folder:"),
             "--stream applies to folder:PATH data sets; the built-in ones are always held in memory"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgecvError(message)


def resolved_weights(weights: str | None) -> str | None:
    """A weights file as an absolute path (a run resumes from any working directory); a weights name as it is."""
    if not weights or is_weights_name(weights):
        return weights
    return str(Path(weights).expanduser().resolve())
