"""The MODELS registry and :func:`create_model`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgecv.core.errors import ModelError
from edgecv.core.registry import Registry


@dataclass(frozen=True)
class TrainDefaults:
    """Settings that give a good digits model with plain ``edgecv train --model NAME``."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    schedule: str = "one-cycle"
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its builder, designed input size and training defaults."""

    name: str
    description: str
    build: Callable[..., nn.Module]  # build(in_channels, num_classes, size, **options)
    input_size: int  # data are resized to this unless the user picks another size
    defaults: TrainDefaults = field(default_factory=TrainDefaults)
    options: frozenset[str] = frozenset()  # extra keyword options the builder accepts
    param_groups: Callable[[nn.Module, float, dict[str, Any]], list[dict[str, Any]]] | None = None
    pretrained: bool = False  # meant to start from a --weights file


MODELS: Registry[ModelEntry] = Registry("model", ModelError)


def register(name: str, description: str, input_size: int, **kwargs: Any) -> Callable:
    """Decorator registering ``build(in_channels, num_classes, size, **options)`` as model ``name``."""

    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(name, description, build, input_size, **kwargs))
        return build

    return add


def create_model(
    name: str, in_channels: int = 1, num_classes: int = 10, size: int | None = None, **options: Any
) -> nn.Module:
    """Build model ``name`` for ``in_channels``×size×size inputs and ``num_classes`` outputs."""
    entry = MODELS.get(name)
    given = {k for k, v in options.items() if v is not None}
    unknown = given - entry.options
    if unknown:
        raise ModelError(f"model {name!r} does not take option(s): {', '.join(sorted(unknown))}")
    if in_channels < 1 or num_classes < 2:
        raise ModelError(f"a model needs at least 1 input channel and 2 classes, got {in_channels}, {num_classes}")
    size = size or entry.input_size
    try:
        model = entry.build(in_channels, num_classes, size, **{k: options[k] for k in given})
        _probe(model, in_channels, size)
    except (ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0]
        raise ModelError(f"model {name!r} cannot take {in_channels}x{size}x{size} inputs: {reason}") from None
    return model


def _probe(model: nn.Module, in_channels: int, size: int) -> None:
    """Run one zero image through ``model`` so impossible input sizes fail at build time."""
    import torch

    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, size, size))
    model.train()


def param_groups(name: str, model: nn.Module, lr: float, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Optimiser parameter groups: one group unless the model asks for several learning rates."""
    entry = MODELS.get(name)
    if entry.param_groups is not None:
        return entry.param_groups(model, lr, options)
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
