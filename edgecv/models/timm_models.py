"""timm's models by name, ``timm:resnet50.a1_in1k``: the architecture and pretrained tag (default: timm's own
default tag), with the input size, crop_pct, interpolation and mean/std of that tag's ``pretrained_cfg`` and the
class names of timm's ImageNet info for in1k, in12k and in22k heads. pip install 'edgecv[timm]'.

The metadata ships inside timm, so nothing is downloaded to know it. Weights come from a file
(``--weights FILE``, :mod:`edgecv.models.weights`) or, on a machine with a network, from the Hugging Face hub
(``--weights DEFAULT``: the tag's published weights).
"""

from __future__ import annotations

import difflib
import math
import textwrap
from functools import cache
from typing import Any

from torch import nn

from edgecv.core.errors import ModelError
from edgecv.models.base import SOURCES, ModelEntry, NativeInput, library_entry
from edgecv.models.weights import fit_state_dict, read_state_dict

PREFIX = "timm"
HUB = "DEFAULT"  # --weights DEFAULT: the tag's published weights, through timm's hub download


def require_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ModelError("timm models need timm: pip install 'edgecv[timm]'") from None
    return timm


def _cfg(name: str) -> Any:
    """The pretrained_cfg of ``arch[.tag]``, or one line naming the closest names."""
    timm = require_timm()
    from timm.models import get_pretrained_cfg

    arch = name.partition(".")[0]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'timm:{n}' for n in close)}?" if close else ""
        raise ModelError(f"timm has no model {arch!r}{hint}")
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:
        tags = [n for n in timm.list_models(arch, pretrained=True) if n.partition(".")[0] == arch]
        raise ModelError(f"timm:{arch} has no pretrained tag {name.partition('.')[2]!r}; it has "
                         f"{', '.join(tags[:8])}{' ...' if len(tags) > 8 else ''}") from None
    if cfg is None:
        raise ModelError(f"timm:{name} has no pretrained_cfg, so its preprocessing is unknown")
    return cfg


def _labels(cfg: Any) -> tuple[str, ...]:
    """Class names for the tag's head: timm's ImageNet info for in1k, in12k or in22k heads (the first
    description, with the synset where two would be the same), else class_0, class_1, ..."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(cfg)
    if subset is None:
        return tuple(f"class_{i}" for i in range(cfg.num_classes))
    info = ImageNetInfo(subset)
    short = [d.split(",")[0].strip() for d in info.label_descriptions()]
    synsets = info.label_names()
    return tuple(s if short.count(s) == 1 else f"{s} ({n})" for s, n in zip(short, synsets, strict=True))


def native_input(name: str) -> NativeInput:
    """What ``arch[.tag]`` expects: timm's evaluation transform (shorter side to floor(size / crop_pct), centre
    crop) in edgecv's terms."""
    cfg = _cfg(name)
    c, h, w = cfg.input_size
    if h != w:
        raise ModelError(f"timm:{name} takes {h}x{w} images; edgecv frames square crops")
    if (cfg.crop_mode or "center") != "center":
        raise ModelError(f"timm:{name} crops with crop_mode {cfg.crop_mode!r}; edgecv frames as 'center' does")
    resize = math.floor(h / (cfg.crop_pct or 0.875))
    interpolation = cfg.interpolation if cfg.interpolation in ("nearest", "bilinear", "bicubic") else "bicubic"
    tag = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    return NativeInput(weights=f"timm {tag}", size=h, resize=resize, interpolation=interpolation,
                       mean=tuple(cfg.mean), std=tuple(cfg.std), labels=_labels(cfg),
                       file_name=cfg.hf_hub_id or cfg.url or "",
                       chosen="" if "." in name else f"timm's default tag for {name}; timm:{name}.TAG names another")


def _make(name: str, k: int, s: int, fixed_size: bool) -> nn.Module:
    """``name`` with ``k`` outputs, randomly initialised; a vision transformer (``fixed_size``) builds its
    position embeddings for ``s``, given as ``img_size``."""
    size = {"img_size": s} if fixed_size else {}
    return require_timm().create_model(name, pretrained=False, num_classes=k, **size)


def load_weights(model: nn.Module, name: str, weights: str, new_head: bool) -> None:
    """A weights file, or (DEFAULT) the tag's published weights from the hub, fitted key by key."""
    if weights == HUB:
        fit_state_dict(model, download(name), f"timm:{name} (hub)", what=f"timm:{name}", new_head=new_head)
    else:
        fit_state_dict(model, read_state_dict(weights), weights, what=f"timm:{name}", new_head=new_head)


def download(name: str) -> dict:
    """The tag's published state dict through timm (the Hugging Face hub), or one line when that fails."""
    timm = require_timm()
    try:
        return timm.create_model(name, pretrained=True).state_dict()
    except Exception as exc:  # the hub client raises its own types for offline, missing and gated files
        reason = textwrap.shorten((str(exc).splitlines() or [type(exc).__name__])[0], 160, placeholder=" ...")
        raise ModelError(f"cannot download the weights of timm:{name} ({reason}); offline, pass "
                         "--weights FILE") from None


@cache
def entry_for(name: str) -> ModelEntry:
    """The model entry of ``timm:arch[.tag]``; --weights-meta does not apply (the tag names the weights)."""
    native = native_input(name)
    fixed_size = bool(_cfg(name).fixed_input_size)

    def meta(which: str | None) -> NativeInput:
        if which:
            raise ModelError(f"timm:{name}: the pretrained tag in the name picks the preprocessing "
                             f"(timm:{name.partition('.')[0]}.TAG), not --weights-meta")
        return native

    return library_entry(f"{PREFIX}:{name}", f"timm {native.weights} ({len(native.labels)} classes)", native.size,
                         lambda k, s, _weights: _make(name, k, s, fixed_size),
                         lambda model, weights, new_head: load_weights(model, name, weights, new_head), meta)


SOURCES[PREFIX] = entry_for
