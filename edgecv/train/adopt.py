"""A run directory for a model that was not trained here: ``torchvision:NAME`` with its published (or a file's)
weights, or a state dict trained elsewhere, deployed as it is.

It holds what a training writes (config.json, spec.json, checkpoints/best.pt, at epoch 0 and with no history),
so export, quantize, bench and report treat it as any run. The spec takes the preprocessing and class names of
the architecture's weights entry, or the labels given for a head trained on other classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgecv import __version__
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_json
from edgecv.core.spec import ModelSpec
from edgecv.data import parse_data_name
from edgecv.models import create_model, model_entry
from edgecv.rundir import RunDir, claim_run_dir, default_run_dir
from edgecv.train.checkpoint import save_checkpoint
from edgecv.train.config import TrainConfig, resolved_weights

AS_IS = "as-is"  # the data part of an adopted run's default name when no --data is given


@dataclass(frozen=True)
class Adopted:
    """The run directory written, its spec, and what the user should be told about it."""

    run_dir: Path
    spec: ModelSpec
    notes: list[str]


def adopt(model: str, *, weights: str | None = None, labels: Sequence[str] | None = None,
          weights_meta: str | None = None, data: str | None = None, out: Path | None = None,
          overwrite: bool = False) -> Adopted:
    """Write a run directory for ``model`` with ``weights`` (a file or a weights name; None: random weights,
    for speed measurements only). ``labels`` name the classes of a head trained elsewhere (default: the
    weights entry's categories); ``data`` is the data set its parity check and calibration draw on."""
    entry = model_entry(model)
    if entry.native is None or entry.load is None:
        raise EdgecvError(f"{model} has no published weights and preprocessing to deploy it with as it is: train it "
                          f"(edgecv train --model {model}), then export its run directory")
    if data:
        parse_data_name(data)  # a bad --data is one line before anything is built
    native = entry.native(weights_meta)
    names = list(labels) if labels else list(native.labels)
    notes = [f"preprocessing from {native.weights}: resize the shorter side to {native.resize}, centre-crop "
             f"{native.size}x{native.size}, {native.interpolation}" + (f" ({native.chosen})" if native.chosen else "")]
    net = create_model(model, 3, len(names), native.size)
    if weights:
        entry.load(net, weights, False)
    else:
        notes.append("no --weights: random weights, fit for speed measurements only")
    if not labels:
        notes.append(f"classes: the {len(names)} categories of {native.weights}")
    cfg = TrainConfig(data=data or "", model=model, weights=resolved_weights(weights), weights_meta=weights_meta,
                      img_size=native.size, color="RGB", calibrate=False)
    spec = ModelSpec(labels=names, input_shape=(3, native.size, native.size), mean=list(native.mean),
                     std=list(native.std), color="RGB", interpolation=native.interpolation, resize=native.resize,
                     arch=model, dataset=data or "", edgecv_version=__version__)
    run_dir = Path(out) if out else default_run_dir(model, data or AS_IS)
    claim_run_dir(run_dir, overwrite)
    cfg.out = str(run_dir)
    files = RunDir(run_dir)
    save_checkpoint(files.best, {"edgecv_version": __version__, "epoch": 0, "model": net.state_dict(),
                                 "config": cfg.to_dict(), "spec": spec.to_dict(), "history": [],
                                 "adopted": {"weights": cfg.weights, "weights_meta": native.weights}})
    write_json(files.spec, spec.to_dict())
    write_json(files.config, cfg.to_dict())  # last: a folder with config.json is a run
    return Adopted(run_dir, spec, notes)
