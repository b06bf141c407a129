"""Weights files as people save them, read safely and fitted to a model key by key.

A bare state dict, one nested under ``state_dict``/``model``/``state_dict_ema``/``model_ema`` (a Lightning
``.ckpt`` keeps it under ``state_dict``), keys prefixed ``module.`` (DataParallel, DDP), ``model.`` (Lightning)
or ``_orig_mod.`` (torch.compile), a ``.safetensors`` file. Only tensors are unpickled (``weights_only=True``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecv.core.errors import ModelError

NESTED_UNDER = ("state_dict", "model", "state_dict_ema", "model_ema")  # looked for in this order
PREFIXES = ("module.", "model.", "_orig_mod.")


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped from the containers and prefixes above."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    state = _safetensors(path) if path.suffix == ".safetensors" else _torch_file(path)
    for _ in range(3):  # a Lightning checkpoint of an EMA wrapper nests twice
        if _tensors(state):
            break
        inner = next((state[k] for k in NESTED_UNDER if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    tensors = _tensors(state)
    if not tensors:
        raise ModelError(f"weights file {path} holds no state dict (no tensors at its top level or under "
                         f"{', '.join(NESTED_UNDER)})")
    return tensors


def _tensors(state: object) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        return {}
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _torch_file(path: Path) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot load weights {path} safely (only tensors and plain values are read): "
                         f"{reason}") from None


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ModelError(f"{path} is a safetensors file: pip install safetensors to read it") from None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"cannot read safetensors file {path}: {exc}") from None


def head_of(model: nn.Module) -> str:
    """The name of the layer that produces the logits: the last Linear or Conv2d (squeezenet's head is a 1x1
    convolution)."""
    name = ""
    for n, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            name = n
    return name


@dataclass(frozen=True)
class Fitted:
    """How a weights file went into a model: whether its head was left out (it had other outputs)."""

    head_replaced: bool
    file_classes: int | None  # outputs of the file's head when it was left out


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: Path | str, *, what: str,
                   new_head: bool, drop: tuple[str, ...] = ()) -> Fitted:
    """Load ``state`` into ``model``, checked key by key: the first key ``model`` lacks or needs, or the first
    shape that does not fit, is one :class:`ModelError`. A head with another number of outputs is left out
    (the model keeps its new head) when ``new_head``, else refused. Keys starting with ``drop`` (auxiliary
    classifiers) are ignored."""
    own = model.state_dict()
    state = {k: v for k, v in _unprefixed(state, own).items() if not k.startswith(drop)}
    # BatchNorm's num_batches_tracked came in torch 0.4.1: older files (torchvision's resnet18 among them) lack it
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(f"weights file {path} lacks {missing[0]}"
                         f"{f' and {len(missing) - 1} more keys' if len(missing) > 1 else ''}: is it a {what} "
                         "state dict?")
    extra = [k for k in state if k not in own]
    if extra:
        raise ModelError(f"weights file {path} has {extra[0]}, which {what} does not"
                         f"{f' (and {len(extra) - 1} more keys)' if len(extra) > 1 else ''}")
    head = head_of(model)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    replaced = bool(wrong) and set(wrong) <= head_keys
    if wrong and not replaced:
        k = next(k for k in wrong if k not in head_keys)
        raise ModelError(f"weights file {path}: {k} has shape {tuple(state[k].shape)}, {what} needs "
                         f"{tuple(own[k].shape)}")
    file_classes = int(state[f"{head}.weight"].shape[0]) if replaced else None
    if replaced and not new_head:
        raise ModelError(f"weights file {path} has a head of {file_classes} classes ({head}), but the model "
                         f"has {int(own[f'{head}.weight'].shape[0])}: pass labels for {file_classes} classes")
    model.load_state_dict({k: v for k, v in state.items() if not (replaced and k in head_keys)}, strict=False)
    return Fitted(replaced, file_classes)


def _unprefixed(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the wrapper prefixes its keys share and the model's keys do not have."""
    for _ in range(len(PREFIXES) + 1):
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)
                       and not all(k.startswith(p) for k in own)), None)
        if prefix is None:
            break
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state
