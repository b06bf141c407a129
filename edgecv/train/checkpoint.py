"""Checkpoints: one dict of tensors and plain values, written atomically, read with weights_only=True."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from edgecv.core.errors import CheckpointError
from edgecv.core.fsutil import atomic_path
from edgecv.core.spec import ModelSpec
from edgecv.models import create_model
from edgecv.models.user_code import check_unchanged, is_user_code
from edgecv.train.config import TrainConfig

FORMAT = "edgecv.checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("epoch", "model", "config", "spec", "history")


def save_checkpoint(path: Path | str, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` via a temp file and ``os.replace``: a crash leaves the old file.

    The format stamp is always this version's, so a loaded checkpoint can be saved back as it is.
    """
    payload = {**payload, "format": FORMAT, "format_version": FORMAT_VERSION}
    writer = _Recording()
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as writer.fh:
            torch.save(payload, writer)
    except (OSError, RuntimeError) as exc:  # a full disk or a file-size limit: the previous file is kept
        cause = writer.error or exc
        reason = getattr(cause, "strerror", None) or str(cause).splitlines()[0]
        raise CheckpointError(f"cannot write checkpoint {path}: {reason}; the last good checkpoint, if any, "
                              "is kept") from None


class _Recording:
    """A file that remembers the OSError of a failed write: torch's zip writer reports it only as a
    RuntimeError about stream positions, which would hide "No space left on device"."""

    def __init__(self) -> None:
        self.fh: Any = None
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read and validate an edgecv checkpoint without running any code stored in it.

    Files that are missing, corrupt, pickles of arbitrary objects, or not edgecv checkpoints are refused
    with :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"refusing checkpoint {path}: it holds objects other than tensors and plain values, "
            "which could run code when loaded"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an edgecv checkpoint")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} was written by a newer edgecv; upgrade to read it")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return data


class TemperatureScaled(torch.nn.Module):
    """A trained model whose logits are divided by its fitted temperature, so exported files carry it."""

    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("inv_temperature", torch.tensor(1.0 / temperature, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.inv_temperature


def calibrated(model: torch.nn.Module, spec) -> torch.nn.Module:
    """``model`` as the spec says its files behave: logits divided by ``spec.temperature`` when it is not 1.

    Where the logits come straight from a final Linear layer (every zoo model), its weights and bias are divided
    instead, on a copy: the files then hold no extra node, cost nothing at run time and quantise as before.
    Otherwise the model is wrapped in :class:`TemperatureScaled`. Either way the result is checked against the
    model's own logits over T on a random batch."""
    import copy

    if spec.temperature == 1.0:
        return model
    t = spec.temperature
    gen = torch.Generator().manual_seed(0)  # a check input that leaves the global random state alone
    x = torch.randn(4, *spec.input_shape, generator=gen) if spec.dtype == "float32" else None
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if linears and x is not None:
        folded = copy.deepcopy(model).eval()
        last = [m for m in folded.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.div_(t)
            if last.bias is not None:
                last.bias.div_(t)
            want = model.eval()(x) / t
            if torch.allclose(folded(x), want, rtol=1e-4, atol=1e-5):
                return folded
    return TemperatureScaled(model, t).eval()


def model_from_checkpoint(ckpt: dict[str, Any], path: Path | str = "checkpoint", trust_code: bool = False):
    """Rebuild the trained model (eval mode, CPU) and its ModelSpec from a loaded checkpoint.

    The architecture comes from the checkpoint's config; weights must fit it exactly, so a checkpoint
    whose weights belong to another architecture is refused. A model built by the user's own code is
    rebuilt only when that file is unchanged since the run began, or with ``trust_code``.
    """

    try:
        cfg = TrainConfig.from_dict(ckpt["config"])
        spec = ModelSpec.from_dict(ckpt["spec"])
    except (TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} holds an invalid config or spec: {exc}") from None
    if is_user_code(cfg.model):
        check_unchanged(cfg.model, cfg.model_code, trust_code)
    options = {k: v for k, v in cfg.model_options().items() if k != "weights"}
    model = create_model(cfg.model, spec.channels, spec.num_classes, spec.size[0], **options)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit model {cfg.model!r}: "
                              f"{str(exc).splitlines()[0]}") from None
    return model.eval(), spec, cfg


def config_to_resume(ckpt: dict[str, Any], path: Path | str, trust_code: bool = False) -> TrainConfig:
    """The resolved config a run resumes with; resuming a model built by the user's own code runs that code
    again, so a changed file is refused unless ``trust_code``."""
    try:
        recorded = TrainConfig.from_dict(ckpt["config"])
        if is_user_code(recorded.model):
            check_unchanged(recorded.model, recorded.model_code, trust_code)
        return recorded.resolved()
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path} holds an invalid config: {exc}") from None
