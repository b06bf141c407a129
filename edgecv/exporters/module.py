"""A live ``nn.Module`` (from a notebook, say) exported into a run directory: ``edgecv.export_module``.

The folder gets config.json, spec.json, model.onnx and model.pt (each with its parity against the module) and
export.json, so ``edgecv quantize``, ``bench``, ``eval`` and the Predictor work on it as on any run. It holds
no checkpoint: the module's code lives in the caller's process, and edgecv never pickles code.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edgecv import __version__
from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.fsutil import write_json
from edgecv.core.spec import COLORS, ModelSpec
from edgecv.data import parse_data_name
from edgecv.exporters import default_path, export_onnx, export_torchscript, record
from edgecv.exporters.common import ExportReport, Source
from edgecv.rundir import RunDir, claim_run_dir
from edgecv.train.config import TrainConfig

FORMATS = ("onnx", "torchscript")


def export_module(module: nn.Module, out: Path | str, *, labels: Sequence[str], input_size: int | tuple[int, int],
                  mean: Sequence[float], std: Sequence[float], color: str = "RGB", resize: int = 0,
                  interpolation: str = "bilinear", data: str | None = None, formats: Sequence[str] = FORMATS,
                  overwrite: bool = False, atol: float = 1e-4) -> list[ExportReport]:
    """Export ``module`` (it maps float (N, C, H, W) images to (N, len(labels)) logits) into the run directory
    ``out``, with the preprocessing given: images converted to ``color``, framed to ``input_size`` (``resize``
    > 0: the shorter side first, then a centre crop) with ``interpolation``, then normalised with ``mean`` and
    ``std`` (one value serves every channel). ``data`` (e.g. ``folder:PATH``) adds a parity check on its
    validation images and is what quantize calibrates on. Returns each written file's report, parity included.
    """
    if not isinstance(module, nn.Module):
        raise ModelError(f"export_module takes a torch nn.Module, got {type(module).__name__}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise EdgecvError(f"formats must be onnx and/or torchscript, got {list(formats)}")
    if color not in COLORS:
        raise ModelError(f"color must be L or RGB, got {color!r}")
    if data:
        parse_data_name(data)
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    c = COLORS[color]
    spec = ModelSpec(labels=list(labels), input_shape=(c, h, w), mean=_per_channel(mean, c, "mean"),
                     std=_per_channel(std, c, "std"), color=color, resize=resize, interpolation=interpolation,
                     arch=f"module:{type(module).__name__}", dataset=data or "", edgecv_version=__version__)
    model = copy.deepcopy(module).cpu().eval()
    with torch.no_grad():
        try:
            logits = model(torch.zeros(2, c, h, w))
        except Exception as exc:  # the caller's module may raise anything on the wrong input
            raise ModelError(f"the module cannot take {c}x{h}x{w} images: {type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0]}") from None
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, len(spec.labels)):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(f"the module gives {shape} for 2 images, not (2, {len(spec.labels)}) logits, one per label")
    out = Path(out)
    claim_run_dir(out, overwrite)
    cfg = TrainConfig(data=data or "", model=spec.arch, out=str(out), img_size=h, color=color, calibrate=False)
    write_json(RunDir(out).spec, spec.to_dict())
    write_json(RunDir(out).config, cfg.to_dict())
    source = Source(model, spec, cfg, None, out)
    reports = []
    for fmt in formats:
        target = default_path(source, fmt, False)
        exporter = export_onnx if fmt == "onnx" else export_torchscript
        reports.append(exporter(source, target, atol=atol))
        record(out, reports[-1])
    return reports


def _per_channel(values: Sequence[float], channels: int, what: str) -> list[float]:
    values = [float(v) for v in values]
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ModelError(f"{what} needs 1 or {channels} values, got {len(values)}")
    return values
