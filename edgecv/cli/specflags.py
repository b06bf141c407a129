"""The spec flags every command that takes a model accepts (``--labels``, ``--mean``, ``--resize``, ``--output``
…), declared once: :func:`spec_flags` adds them to a command and hands it one :class:`SpecFlags`.

Each flag states a fact about the model file, over what the file itself says (edgecv's spec, another
exporter's metadata, the graph's shape): see :mod:`edgecv.core.facts`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from edgecv.cli.common import parse_labels
from edgecv.core.errors import EdgecvError
from edgecv.core.facts import Stated
from edgecv.core.spec import CHANNEL_ORDERS, COLORS, INTERPOLATIONS, LAYOUTS, OUTPUT_KINDS

PANEL = "Model facts (for a file edgecv did not write, or to correct one)"


def _option(flag: str, help_text: str) -> Any:
    return typer.Option(None, flag, help=help_text, rich_help_panel=PANEL)


# name -> (annotation, option); a name is both the command parameter and the SpecFlags field
OPTIONS: dict[str, tuple[type, Any]] = {
    "labels": (str, _option("--labels", "Class names in the model's output order: a,b,c or @classes.txt "
                                        "(one per line).")),
    "mean": (str, _option("--mean", "Per-channel mean subtracted from the scaled pixels, e.g. "
                                    "0.485,0.456,0.406 (one value serves every channel).")),
    "std": (str, _option("--std", "Per-channel std the pixels are divided by, e.g. 0.229,0.224,0.225.")),
    "scale": (float, _option("--scale", "Pixel multiplier before --mean and --std [default: 1/255, pixels "
                                        "0..1]; 1 feeds 0..255.")),
    "input_shape": (str, _option("--input-shape", "C,H,W the model takes (a graph with dynamic height and "
                                                  "width needs it, or --crop).")),
    "crop": (int, _option("--crop", "Height and width of the centre crop the model takes (e.g. 224).")),
    "layout": (str, _option("--layout", f"{' | '.join(LAYOUTS)} [default: read from the graph].")),
    "resize": (int, _option("--resize", "Resize the shorter side to this, then centre-crop to the input size "
                                        "(e.g. 256 for 224); 0 resizes straight to it.")),
    "interpolation": (str, _option("--interpolation", f"{' | '.join(INTERPOLATIONS)} [default: bilinear].")),
    "channel_order": (str, _option("--channel-order", f"{' | '.join(CHANNEL_ORDERS)}: bgr for a model "
                                                      "trained on OpenCV's BGR images.")),
    "color": (str, _option("--color", f"{' | '.join(COLORS)}: the colour mode images are converted to.")),
    "output": (str, _option("--output", "The graph output holding the class scores, for a graph with several.")),
    "outputs": (str, _option("--outputs", f"{' | '.join(OUTPUT_KINDS)} [default: detected once on a probe "
                                          "batch for a file edgecv did not write].")),
    "label_map": (Path, _option("--label-map", "A file of 'folder name<TAB or comma>label' lines mapping a "
                                               "data folder's class names to the model's labels (e.g. "
                                               "n01440764,tench).")),
}


@dataclass(frozen=True)
class SpecFlags:
    """The spec flags as typed, by name (the keys of :data:`OPTIONS`; None where not given): parsed, with
    one-line errors, by :meth:`stated` and :meth:`folder_names`."""

    typed: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.typed.get(name)

    @property
    def label_map(self) -> Path | None:
        return self.get("label_map")

    def stated(self) -> Stated | None:
        """The facts stated, checked one by one; None when no flag about the model is given."""
        self._check_choices()
        text = self.get("input_shape")
        shape = _numbers(text, int, "--input-shape")
        if shape is not None and len(shape) != 3:
            raise EdgecvError(f"--input-shape takes C,H,W, got {text!r}")
        if shape is not None and (shape[0] not in (1, 3) or min(shape) < 1):
            raise EdgecvError(f"--input-shape needs 1 or 3 channels and a positive size, got {text!r}")
        for flag, value, low in (("--crop", self.get("crop"), 1), ("--resize", self.get("resize"), 0)):
            if value is not None and value < low:
                raise EdgecvError(f"{flag} must be at least {low}, got {value}")
        scale = self.get("scale")
        if scale is not None and not scale > 0:
            raise EdgecvError(f"--scale must be positive, got {scale}")
        layout = self.get("layout")
        plain = {k: self.get(k) for k in ("scale", "crop", "resize", "interpolation", "channel_order", "color",
                                          "output", "outputs")}
        stated = Stated(labels=parse_labels(self.get("labels")), mean=_numbers(self.get("mean"), float, "--mean"),
                        std=_numbers(self.get("std"), float, "--std"), input_shape=shape,
                        layout=layout and layout.upper(), **plain)
        return stated if stated.given() else None

    def _check_choices(self) -> None:
        layout = self.get("layout")
        choices = (("--layout", layout and layout.upper(), LAYOUTS),
                   ("--interpolation", self.get("interpolation"), INTERPOLATIONS),
                   ("--channel-order", self.get("channel_order"), CHANNEL_ORDERS),
                   ("--color", self.get("color"), tuple(COLORS)), ("--outputs", self.get("outputs"), OUTPUT_KINDS))
        for flag, value, allowed in choices:
            if value is not None and value not in allowed:
                raise EdgecvError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")

    def folder_names(self) -> dict[str, str] | None:
        """``--label-map``: data folder name -> model label, or None without it."""
        if self.label_map is None:
            return None
        return read_label_map(self.label_map)


def read_label_map(path: Path) -> dict[str, str]:
    """'folder<TAB or comma>label' lines (blank lines and # comments skipped) as a dict."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgecvError(f"--label-map {path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    mapping: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        folder, sep, label = text.partition("\t") if "\t" in text else text.partition(",")
        if not sep or not folder.strip() or not label.strip():
            raise EdgecvError(f"--label-map {path} line {number}: expected 'folder,label', got {text!r}")
        mapping[folder.strip()] = label.strip()
    if not mapping:
        raise EdgecvError(f"--label-map {path} maps no folder names")
    return mapping


def _numbers(text: str | None, kind: type, flag: str) -> list | None:
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        raise EdgecvError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def spec_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` every spec flag; it receives them as one ``flags: SpecFlags`` argument."""
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "flags"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
             for name, (kind, option) in OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        typed = {name: kwargs.pop(name, None) for name in OPTIONS}
        return command(*args, flags=SpecFlags(typed), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    return wrapper
