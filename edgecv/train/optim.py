"""Optimisers and per-batch learning-rate schedules from a TrainConfig."""

from __future__ import annotations

from typing import Any

import torch

from edgecv.train.config import TrainConfig


def build_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over ``groups``; weight decay skips biases and norms."""
    split = []
    for group in groups:
        decay = [p for p in group["params"] if p.ndim > 1]
        no_decay = [p for p in group["params"] if p.ndim <= 1]
        split += [{**group, "params": decay, "weight_decay": cfg.weight_decay},
                  {**group, "params": no_decay, "weight_decay": 0.0}]
    split = [g for g in split if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(split, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(split, lr=cfg.lr)
    return torch.optim.AdamW(split, lr=cfg.lr)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The schedule, stepped once per batch; None for a constant learning rate."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "one-cycle":
        peaks = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peaks, total_steps=total)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return None
