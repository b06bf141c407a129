"""torchvision's classification models by name, ``torchvision:resnet18``: every architecture
``torchvision.models.list_models`` names, at the crop size, preprocessing and class names of its weights entry.

That metadata ships inside torchvision, so nothing is downloaded to know it. Weights come from a file
(``--weights FILE``: any state dict as people save them, :mod:`edgecv.models.weights`) or, on a machine with a
network, from torchvision's own download (``--weights DEFAULT`` or an entry's name such as ``IMAGENET1K_V2``).
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from pathlib import Path
from typing import Any

from torch import nn

from edgecv.core.errors import ModelError
from edgecv.models.base import SOURCES, ModelEntry, NativeInput, library_entry
from edgecv.models.weights import fit_state_dict, read_state_dict

PREFIX = "torchvision"
INTERPOLATION = {"InterpolationMode.NEAREST": "nearest", "InterpolationMode.BILINEAR": "bilinear",
                 "InterpolationMode.BICUBIC": "bicubic", "InterpolationMode.LANCZOS": "lanczos"}
# googlenet and inception_v3: torchvision builds them with transform_input=True for their weights, which turns
# ImageNet-normalised input into (p - 0.5) / 0.5 inside the graph; edgecv normalises that way directly, so
# the file holds no extra node, and leaves their auxiliary classifiers out (only the main output is exported)
AUXILIARY = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
HALF = (0.5, 0.5, 0.5)
WEIGHTS_NAME = re.compile(r"^(DEFAULT|[A-Z0-9_]+|\w+_Weights\.[A-Z0-9_]+)$")


def names() -> list[str]:
    """Every classification architecture torchvision lists."""
    from torchvision import models

    return models.list_models(module=models)


def is_weights_name(text: str) -> bool:
    """``DEFAULT``, ``IMAGENET1K_V2`` or ``ResNet50_Weights.IMAGENET1K_V2``: a weights entry, not a file."""
    return bool(WEIGHTS_NAME.match(text)) and not Path(text).exists()


def _weights_enum(arch: str) -> Any:
    from torchvision import models

    return models.get_model_weights(arch)


def weights_entry(arch: str, which: str | None) -> Any:
    """The torchvision weights entry ``which`` (DEFAULT when None) of ``arch``, or one line listing them."""
    enum = _weights_enum(arch)
    key = (which or "DEFAULT").rpartition(".")[2]
    if key == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[key]
    except KeyError:
        raise ModelError(f"torchvision:{arch} has no weights {which!r}; it has DEFAULT, "
                         f"{', '.join(w.name for w in enum)}") from None


def native_input(arch: str, which: str | None = None) -> NativeInput:
    """The crop, resize, interpolation, mean, std and categories of ``arch``'s weights entry."""
    entry = weights_entry(arch, which)
    t = entry.transforms()
    mean, std = (HALF, HALF) if arch in AUXILIARY else (tuple(t.mean), tuple(t.std))
    return NativeInput(weights=str(entry), size=int(t.crop_size[0]), resize=int(t.resize_size[0]),
                       interpolation=INTERPOLATION[str(t.interpolation)], mean=mean, std=std,
                       labels=tuple(entry.meta["categories"]), file_name=entry.url.rsplit("/", 1)[-1],
                       chosen="" if which else "the architecture's DEFAULT entry; --weights-meta names another")


def _make(arch: str, k: int, weights: str | None) -> nn.Module:
    """``arch`` with ``k`` outputs, randomly initialised (its weights, if any, are loaded after)."""
    from torchvision import models

    extra: dict[str, Any] = {"aux_logits": False, "init_weights": weights is None} if arch in AUXILIARY else {}
    return models.get_model(arch, weights=None, num_classes=k, **extra)


def load_weights(model: nn.Module, arch: str, weights: str, new_head: bool) -> None:
    """A file (any state dict as saved) or a weights entry downloaded through torchvision, fitted key by key;
    with ``new_head`` a head with another number of classes is left out, so the model keeps its new one
    (fine-tuning), else it is refused."""
    drop = AUXILIARY.get(arch, ())
    what = f"torchvision:{arch}"
    if is_weights_name(weights):
        entry = weights_entry(arch, weights)
        fit_state_dict(model, download(entry, arch), str(entry), what=what, new_head=new_head, drop=drop)
    else:
        fit_state_dict(model, read_state_dict(weights), weights, what=what, new_head=new_head, drop=drop)


def download(entry: Any, arch: str) -> dict:
    """The entry's state dict through torchvision's cache and download, or one line when that fails."""
    try:
        return entry.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ModelError(f"cannot download {entry} for torchvision:{arch} ({reason}); offline, pass "
                         f"--weights FILE (the published file is {entry.url})") from None


@cache
def entry_for(arch: str) -> ModelEntry:
    """The model entry of ``torchvision:arch``, or one line naming the closest architectures."""
    known = names()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(f'torchvision:{n}' for n in close)}?" if close else \
            "; `edgecv models --source torchvision` lists them"
        raise ModelError(f"torchvision has no classification model {arch!r}{hint}")
    native = native_input(arch)
    return library_entry(f"{PREFIX}:{arch}", f"torchvision {arch} ({native.weights}, {len(native.labels)} classes)",
                         native.size, lambda k, _s, weights: _make(arch, k, weights),
                         lambda model, weights, new_head: load_weights(model, arch, weights, new_head),
                         lambda which: native_input(arch, which))


SOURCES[PREFIX] = entry_for
