"""The MODELS registry and :func:`create_model`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgecv.core.errors import ModelError
from edgecv.core.registry import Registry
from edgecv.models.weights import head_of


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
class NativeInput:
    """What an architecture's pretrained weights expect, from the metadata its library ships (no download): the
    weights entry these facts are from, its crop size and resize (shorter side), interpolation, mean and std,
    class names, and the file the weights are published as."""

    weights: str
    size: int
    resize: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...] = field(repr=False)
    file_name: str = ""
    chosen: str = ""  # how this entry was picked and how to pick another, when it was a default


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
    # an architecture from another library: the preprocessing and classes of its weights entry (None: the default)
    native: Callable[[str | None], NativeInput] | None = None
    color: str | None = None  # the colour mode it takes ("RGB"); None: any
    # load(model, weights, new_head): a weights file or name into a built model; new_head False refuses a head
    # with another number of classes (a model deployed as it is must keep the head it was trained with)
    load: Callable[[nn.Module, str, bool], None] | None = None


LIBRARY_OPTIONS = frozenset({"weights", "weights_meta", "freeze", "feature_lr_scale"})  # torchvision's, timm's
SOURCES: dict[str, Callable[[str], ModelEntry]] = {}  # "torchvision" -> the entry of torchvision:NAME
# (recognises, resolves) pairs tried after SOURCES: a user's own module, path/net.py:factory
FALLBACKS: list[tuple[Callable[[str], bool], Callable[[str], ModelEntry]]] = []


def model_entry(name: str) -> ModelEntry:
    """The entry of a built-in model, of ``SOURCE:NAME`` (``torchvision:resnet18``) or of a user's factory."""
    source, sep, arch = name.partition(":")
    if sep and source in SOURCES:
        return SOURCES[source](arch)
    resolve = next((resolve for recognises, resolve in FALLBACKS if recognises(name)), None)
    if resolve is not None:
        return resolve(name)
    if sep:
        raise ModelError(f"unknown model {name!r}: {other_libraries()}")
    return MODELS.get(name)


MODELS: Registry[ModelEntry] = Registry("model", ModelError)


def register(name: str, description: str, input_size: int, **kwargs: Any) -> Callable:
    """Decorator registering ``build(in_channels, num_classes, size, **options)`` as model ``name``."""

    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(name, description, build, input_size, **kwargs))
        return build

    return add


def other_libraries() -> str:
    """How models of other libraries and a user's own are named, for an error message."""
    return (f"models from other libraries are named {' or '.join(f'{s}:NAME' for s in SOURCES)}, your own "
            "module path/to/net.py:factory or package.module:factory")


def create_model(
    name: str, in_channels: int = 1, num_classes: int = 10, size: int | None = None, **options: Any
) -> nn.Module:
    """Build model ``name`` for ``in_channels``×size×size inputs and ``num_classes`` outputs."""
    entry = model_entry(name)
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
    except (ValueError, RuntimeError, AssertionError) as exc:  # torch._assert raises AssertionError (ViT's size)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"model {name!r} cannot take {in_channels}x{size}x{size} inputs: {reason}") from None
    return model


def _probe(model: nn.Module, in_channels: int, size: int) -> None:
    """Run one zero image through ``model`` so impossible input sizes fail at build time."""
    import torch

    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, size, size))
    model.train()


def library_entry(name: str, description: str, input_size: int, make: Callable[[int, int, str | None], nn.Module],
                  load: Callable[[nn.Module, str, bool], None],
                  native: Callable[[str | None], NativeInput]) -> ModelEntry:
    """The entry of a model from another library (torchvision, timm): RGB input, ``make(num_classes, size,
    weights)`` builds it, ``load`` fits a weights file or name into it (a new head for fine-tuning), --freeze
    trains the head alone, --feature-lr-scale sets the body's learning rate, ``native`` gives the weights'
    preprocessing."""

    def build(c: int, k: int, s: int, weights: str | None = None, weights_meta: str | None = None,
              freeze: bool | None = None, feature_lr_scale: float | None = None) -> nn.Module:
        # weights_meta (the spec's preprocessing) and feature_lr_scale (the optimiser's groups) leave the network
        if c != 3:
            raise ModelError(f"{name} takes RGB images (3 channels), not {c}: pass --color RGB")
        model = make(k, s, weights)
        if weights:
            load(model, weights, True)
        return freeze_all_but_head(model, freeze)

    return ModelEntry(name, description, build, input_size, options=LIBRARY_OPTIONS,
                      param_groups=head_and_body_groups, native=native, color="RGB", load=load)


def freeze_all_but_head(model: nn.Module, freeze: bool | None) -> nn.Module:
    """A library model fine-tuned with --freeze: every parameter but the head's stops learning."""
    if freeze:
        head = head_of(model)
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(f"{head}."))
    return model


def head_and_body_groups(model: nn.Module, lr: float, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The head at ``lr``; the rest, when it learns, at ``lr`` x --feature-lr-scale (default 0.1 when starting
    from weights, as vgg16-transfer does, else 1)."""
    head = head_of(model)
    scale = options.get("feature_lr_scale") or (0.1 if options.get("weights") else 1.0)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if n.startswith(f"{head}.")], "lr": lr}]
    body = [p for n, p in params if not n.startswith(f"{head}.")]
    if body:
        groups.append({"params": body, "lr": lr * scale})
    return groups


def keep_frozen_norms(model: nn.Module) -> None:
    """BatchNorm layers whose parameters are frozen keep their running statistics: eval mode while the rest
    of the model trains."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and not m.weight.requires_grad:
            m.eval()


SETTLED = 3.0  # steps x momentum from which a BatchNorm's running statistics hold < 5% of their starting values
SETTLE_IMAGES = 1024  # training images that recompute unsettled statistics


def settle_batch_norms(model: nn.Module, batches: Iterable[torch.Tensor]) -> bool:
    """Where a trained BatchNorm's running statistics have not settled (its steps x momentum below
    :data:`SETTLED`, as torchvision's MobileNetV3 and EfficientNet-V2 at momentum 0.01 are after a few hundred
    steps), recompute every trainable BatchNorm's as a plain average over up to :data:`SETTLE_IMAGES` of
    ``batches`` (unaugmented training images), so the evaluation-mode network sees the statistics of the
    weights it has. Without it such a net trained briefly answers near uniformly in evaluation mode whatever it
    learnt (measured: mobilenet_v3_large, 10 epochs of 240 images from scratch: validation accuracy 25% ->
    97%). The step counts are kept, so once enough steps have run the running averages take over again.
    Returns whether it recomputed."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats and not (m.affine and not m.weight.requires_grad)]
    if not any(m.momentum is not None and int(m.num_batches_tracked) * m.momentum < SETTLED for m in norms):
        return False
    kept = [(m, m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    was_training = model.training
    model.train()
    keep_frozen_norms(model)  # frozen layers' statistics stay as they are
    seen = 0
    with torch.no_grad():
        for x in batches:
            model(x)
            seen += len(x)
            if seen >= SETTLE_IMAGES:
                break
    for m, momentum, steps in kept:
        m.momentum = momentum
        m.num_batches_tracked.copy_(steps)
    model.train(was_training)
    return True


def param_groups(name: str, model: nn.Module, lr: float, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Optimiser parameter groups: one group unless the model asks for several learning rates."""
    entry = model_entry(name)
    if entry.param_groups is not None:
        return entry.param_groups(model, lr, options)
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
