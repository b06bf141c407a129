"""Keras-style model summaries: output shape, parameters and multiply-accumulates per layer.

MACs come from torch's own FLOP counter (one MAC = two FLOPs), so they match what torch executes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    input_shape: tuple[int, int, int]
    total_params: int
    trainable_params: int
    macs: int


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and not list(m.children())]


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelSummary:
    """Run one (1, C, H, W) zero input through ``model`` in eval mode and describe every leaf layer."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in _leaves(model):
        def hook(_m, _inp, out, name=name):
            if isinstance(out, torch.Tensor):
                shapes[name] = tuple(out.shape[1:])
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, module in _leaves(model):
        flops = sum(counts.get(f"{root}.{name}", {}).values())
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerRow(name, type(module).__name__, shapes.get(name, ()), params, flops // 2))
    params = list(model.parameters())
    return ModelSummary(
        rows=rows,
        input_shape=tuple(input_shape),
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=counter.get_total_flops() // 2,
    )
