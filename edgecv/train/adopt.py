"""A run directory for a model that was not trained here: ``torchvision:NAME`` with its published (or a file's)
weights, a state dict trained elsewhere, or your own module's state dict with the preprocessing it was trained
with, deployed as it is.

It holds what a training writes (config.json, spec.json, checkpoints/best.pt, at epoch 0 and with no history),
so export, quantize, bench and report treat it as any run. The spec takes the preprocessing and class names of
the architecture's weights entry, or the labels given for a head trained on other classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edgecv import __version__
from edgecv.core.errors import EdgecvError, MissingSpecError
from edgecv.core.facts import FLAG_OF, Stated, resolve_spec
from edgecv.core.fsutil import write_json
from edgecv.core.spec import COLORS, ModelSpec
from edgecv.data import parse_data_name
from edgecv.models import create_model, model_entry
from edgecv.models.user_code import absolute, code_record, is_user_code
from edgecv.models.weights import fit_state_dict, read_state_dict
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
          overwrite: bool = False, stated: Stated | None = None) -> Adopted:
    """Write a run directory for ``model`` with ``weights`` (a file or a weights name; None: random weights,
    for speed measurements only). ``labels`` name the classes of a head trained elsewhere (default: the
    weights entry's categories); ``data`` is the data set its parity check and calibration draw on. Your own
    module (``net.py:factory``) has no published preprocessing: ``stated`` gives it (labels, mean, std, size)."""
    entry = model_entry(model)
    if data:
        parse_data_name(data)  # a bad --data is one line before anything is built
    if entry.native is None and is_user_code(model):
        return _adopt_own(model, entry, weights, replace(stated or Stated(), **({"labels": labels} if labels else {})),
                          data, out, overwrite)
    extra = [k for k in (stated.given() if stated else {}) if k != "labels"]
    if extra:
        raise EdgecvError(f"--{extra[0].replace('_', '-')} applies to your own module (--model net.py:factory); "
                          f"{model}'s preprocessing comes from its weights metadata (--weights-meta)")
    if entry.native is None or entry.load is None:
        raise EdgecvError(f"{model} has no published weights and preprocessing to deploy it with as it is: train it "
                          f"(edgecv train --model {model}), then export its run directory")
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
    return _write(net, cfg, spec, data, out, overwrite, notes, native.weights)


def _adopt_own(model: str, entry, weights: str | None, stated: Stated, data: str | None, out: Path | None,
               overwrite: bool) -> Adopted:
    """Your own module with a state dict trained elsewhere, and the preprocessing it was trained with."""
    if not weights:
        raise EdgecvError(f"{model} is deployed as it is from its trained weights: pass them as SOURCE "
                          f"(edgecv export weights.pth --model {model} ...)")
    if stated.input_shape is None and stated.crop is None:
        stated = replace(stated, input_shape=(COLORS[stated.color or "RGB"], entry.input_size, entry.input_size))
    try:
        spec = resolve_spec(model, {}, None, stated).spec
    except MissingSpecError as exc:
        raise EdgecvError(f"{model} is deployed with the preprocessing it was trained with: pass "
                          f"{', '.join(FLAG_OF[k] for k in exc.missing)}") from None
    if spec.layout != "NCHW" or spec.output or spec.outputs != "logits" or spec.size[0] != spec.size[1]:
        raise EdgecvError("your own module is exported as it is: square NCHW input, one output of logits "
                          "(--layout, --output and --outputs do not apply)")
    spec = replace(spec, arch=absolute(model), dataset=data or "", edgecv_version=__version__)
    c, size = spec.channels, spec.size[0]
    net = create_model(model, c, spec.num_classes, size)
    fit_state_dict(net, read_state_dict(weights), weights, what=model, new_head=False)
    cfg = TrainConfig(data=data or "", model=absolute(model), model_code=code_record(model),
                      weights=resolved_weights(weights), img_size=size, color=spec.color, calibrate=False)
    notes = [f"{spec.num_classes} classes; input {c}x{size}x{size} ({spec.color}), mean {spec.mean}, std {spec.std}"
             + (f", shorter side resized to {spec.resize} then centre-cropped" if spec.resize else "")]
    return _write(net, cfg, spec, data, out, overwrite, notes, None)


def _write(net, cfg: TrainConfig, spec: ModelSpec, data: str | None, out: Path | None, overwrite: bool,
           notes: list[str], weights_entry: str | None) -> Adopted:
    run_dir = Path(out) if out else default_run_dir(cfg.model, data or AS_IS)
    claim_run_dir(run_dir, overwrite)
    cfg.out = str(run_dir)
    files = RunDir(run_dir)
    save_checkpoint(files.best, {"edgecv_version": __version__, "epoch": 0, "model": net.state_dict(),
                                 "config": cfg.to_dict(), "spec": spec.to_dict(), "history": [],
                                 "adopted": {"weights": cfg.weights, "weights_meta": weights_entry}})
    write_json(files.spec, spec.to_dict())
    write_json(files.config, cfg.to_dict())  # last: a folder with config.json is a run
    return Adopted(run_dir, spec, notes)
