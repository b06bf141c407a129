"""What every exporter shares: the trained source model, example and parity inputs, the parity check."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.fsutil import sha256
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec
from edgecv.data import load_dataset
from edgecv.models.summary import ModelSummary, summarize
from edgecv.rundir import RunDir
from edgecv.train.checkpoint import calibrated, load_checkpoint, model_from_checkpoint
from edgecv.train.config import TrainConfig

PARITY_BATCHES = (1, 37)  # a dynamic batch axis must serve both from one file
REAL_BATCH = 64  # validation images in the parity check


class ExportError(EdgecvError):
    """The exported file does not match the torch model, or could not be produced."""

    def __init__(self, message: str, report: ExportReport | None = None) -> None:
        super().__init__(message)
        self.report = report  # the failed parity numbers, for export.json


@dataclass
class Source:
    """A trained model ready to export, with its spec and where it came from."""

    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    checkpoint: Path | None  # None for a live module (edgecv.export_module)
    out_dir: Path  # default folder for exported files: the run directory

    @cached_property
    def summary(self) -> ModelSummary:
        """Params and MACs, computed once however many files are exported."""
        return summarize(self.model, self.spec.input_shape)

    @cached_property
    def val_images(self) -> np.ndarray | None:
        """Up to 64 uint8 (N, C, H, W) validation images of the model's own data set, loaded once;
        None when the data set cannot be loaded here."""

        cfg, spec = self.config, self.spec
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = load_dataset(cfg.data, spec.size[0], color=spec.color, data_root=cfg.data_root,
                                    keep_going=cfg.keep_going, stream=cfg.stream, check=False, framing=spec.framing)
                return data.val.head(REAL_BATCH)
        except EdgecvError:
            return None


def load_source(path: Path | str, trust_code: bool = False) -> Source:
    """A run directory (its best checkpoint) or a checkpoint file, validated before anything is built
    (``trust_code``: rebuild a user's module that changed since the run began)."""
    path = Path(path)
    if path.is_dir():
        ckpt_path = RunDir(path).best
        if not ckpt_path.is_file():
            raise ModelError(f"{path} has no checkpoints/best.pt: is it an edgecv run directory?")
        out_dir = path
    elif path.is_file():
        ckpt_path = path
        out_dir = RunDir.of(path).path
    else:
        raise ModelError(f"{path} does not exist")
    ckpt = load_checkpoint(ckpt_path)
    model, spec, cfg = model_from_checkpoint(ckpt, ckpt_path, trust_code)
    spec = replace(spec, source_sha256=sha256(ckpt_path))
    return Source(model, spec, cfg, ckpt_path, out_dir)


class Uint8Input(nn.Module):
    """Takes raw uint8 NHWC images and does cast, scaling, normalisation and transpose in the graph."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2).float() * self.scale + self.shift)


def exportable(source: Source, uint8_input: bool) -> tuple[nn.Module, ModelSpec]:
    """The module to export and the spec its file carries (uint8 NHWC input when asked), with the fitted
    temperature inside, so the file's own logits are calibrated."""
    model = calibrated(source.model, source.spec)
    if not uint8_input:
        return model, source.spec
    module = Uint8Input(model, source.spec.mean, source.spec.std).eval()
    return module, replace(source.spec, layout="NHWC", dtype="uint8")


def example_input(spec: ModelSpec, batch: int, seed: int = 0) -> torch.Tensor:
    """A random input of ``batch`` images in the layout and dtype ``spec`` describes."""
    gen = torch.Generator().manual_seed(seed)
    c, h, w = spec.input_shape
    if spec.dtype == "uint8":
        return torch.randint(0, 256, (batch, h, w, c), dtype=torch.uint8, generator=gen)
    return torch.randn(batch, c, h, w, generator=gen)


def _real_batch(source: Source, spec: ModelSpec) -> torch.Tensor | None:
    """The source's validation images, preprocessed as ``spec`` says."""
    if source.val_images is None:
        return None
    return torch.from_numpy(to_model_input(source.val_images, spec))


def parity_inputs(source: Source, spec: ModelSpec, fixed_batch: int | None) -> dict[str, torch.Tensor]:
    """Named inputs for the parity check: a real validation batch and random batches."""
    sizes = (fixed_batch,) if fixed_batch else PARITY_BATCHES
    inputs = {f"random x{b}": example_input(spec, b, seed=b) for b in sizes}
    real = _real_batch(source, spec)
    if real is not None:
        if fixed_batch:
            real = real[:fixed_batch] if len(real) >= fixed_batch else None
        if real is not None:
            inputs = {f"validation x{len(real)}": real, **inputs}
    return inputs


@dataclass
class ParityRow:
    inputs: str
    max_abs_diff: float
    max_rel_diff: float
    top1_agreement: float


@dataclass
class ExportReport:
    """What ``export.json`` records for one exported file."""

    format: str
    file: str
    exporter: str
    opset: int | None
    batch: str
    input: dict[str, Any]
    size_bytes: int
    params: int
    macs: int
    atol: float  # allowed difference per unit of the largest |logit| (at least 1): the tolerance scales with them
    parity: list[ParityRow] = field(default_factory=list)
    logit_scale: float = 1.0  # the largest |logit| torch gave on the parity inputs
    passed: bool = False
    # the same file on other installed engines (OpenVINO): their parity against torch, reported, not required
    other_runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tolerance(self) -> float:
        """The largest logit difference that passes: ``atol`` times the largest |logit|, or ``atol`` when the
        logits are all within 1."""
        return self.atol * max(1.0, self.logit_scale)

    @property
    def max_abs_diff(self) -> float:
        return max((row.max_abs_diff for row in self.parity), default=float("nan"))

    @property
    def agreement(self) -> float:
        return min((row.top1_agreement for row in self.parity), default=float("nan"))


def compare(name: str, reference: np.ndarray, exported: np.ndarray) -> ParityRow:
    """Max absolute/relative logit difference and top-1 agreement of two (N, classes) outputs."""
    if reference.shape != exported.shape:
        raise ExportError(f"exported model gives shape {exported.shape} for {name}, torch gives {reference.shape}")
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    scale = np.maximum(np.abs(reference).max(axis=1, keepdims=True), 1e-6)
    return ParityRow(
        inputs=name,
        max_abs_diff=float(diff.max()),
        max_rel_diff=float((diff / scale).max()),  # relative to each sample's largest logit
        top1_agreement=float((reference.argmax(1) == exported.argmax(1)).mean()),
    )


def check_parity(report: ExportReport, module: nn.Module, inputs: dict[str, torch.Tensor],
                 run: Callable[[torch.Tensor], np.ndarray]) -> None:
    """Fill ``report.parity``; raise :class:`ExportError` when a difference exceeds ``report.tolerance`` or a
    top-1 prediction differs."""
    with torch.no_grad():
        for name, x in inputs.items():
            reference = module(x).numpy()
            report.logit_scale = max(report.logit_scale, float(np.abs(reference).max()))
            report.parity.append(compare(name, reference, run(x)))
    report.passed = report.max_abs_diff <= report.tolerance and report.agreement == 1.0
    if not report.passed:
        raise ExportError(
            f"{report.format} export of {report.file} failed its parity check: max abs diff "
            f"{report.max_abs_diff:.3g} (tolerance {report.tolerance:.2g}: atol {report.atol:g} x the largest "
            f"logit, {report.logit_scale:.3g}), top-1 agreement {report.agreement:.2%}; "
            "no file was written",
            report,
        )


@contextmanager
def quiet_torch() -> Iterator[None]:
    """Silence torch's deprecation chatter about TorchScript and the TorchScript-based ONNX exporter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def quiet_fds() -> Iterator[None]:
    """Keep prints from torch's C++ side (the IR dump on a failed ONNX export) off stdout and stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def require_calibration_data(data: str | None) -> None:
    """model.int8.pte needs images to calibrate on: a model deployed as it is has them only with --data."""
    if not data:
        raise EdgecvError("model.int8.pte is calibrated on images like those the model will see: pass --data "
                          "folder:PATH when deploying a model as it is")
