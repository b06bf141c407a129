"""Shared building blocks: every zoo model is a few lines over these."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn


class Net(nn.Module):
    """``features`` (convolutions, Grad-CAM looks here) followed by ``classifier`` (flatten + dense)."""

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def conv(cin: int, cout: int, k: int = 3, *, pad: int | None = None, bn: bool = False) -> list[nn.Module]:
    """Conv (+ BatchNorm) + ReLU; the conv has no bias when BatchNorm follows."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2 if pad is None else pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


def conv_stages(
    cin: int,
    widths: Iterable[int],
    *,
    convs: int = 1,
    k: int = 3,
    pad: int | None = None,
    bn: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Stages of ``convs`` convolutions each, then 2×2 max-pool (+ Dropout)."""
    layers: list[nn.Module] = []
    for width in widths:
        for _ in range(convs):
            layers += conv(cin, width, k, pad=pad, bn=bn)
            cin = width
        layers.append(nn.MaxPool2d(2))
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def dense_head(in_features: int, hidden: Sequence[int], classes: int, dropout: float = 0.0) -> nn.Sequential:
    """Flatten, hidden Linear+ReLU(+Dropout) layers, then the class logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_features = width
    layers.append(nn.Linear(in_features, classes))
    return nn.Sequential(*layers)


def flat_size(features: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """Number of features ``features`` produces for one (C, H, W) input."""
    try:
        with torch.no_grad():
            out = features.eval()(torch.zeros(1, *in_shape))
    except RuntimeError:
        out = torch.zeros(0)
    features.train()
    if out.numel() == 0:
        raise ValueError("the input is too small for this network")
    return out[0].numel()


def with_head(
    features: nn.Module,
    in_shape: tuple[int, int, int],
    hidden: Sequence[int],
    classes: int,
    dropout: float = 0.0,
) -> Net:
    """A :class:`Net` whose dense head is sized for ``in_shape`` inputs."""
    return Net(features, dense_head(flat_size(features, in_shape), hidden, classes, dropout))


def replace_stem(conv_layer: nn.Conv2d, in_channels: int, stride: int) -> nn.Conv2d:
    """A copy of a stem convolution taking ``in_channels`` inputs at ``stride`` (for small images)."""
    return nn.Conv2d(
        in_channels,
        conv_layer.out_channels,
        conv_layer.kernel_size,
        stride=stride,
        padding=conv_layer.padding,
        bias=conv_layer.bias is not None,
    )


def adapt_input_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Pretrained RGB conv weights for ``in_channels`` inputs: summed for grayscale, tiled otherwise."""
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_channels // weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)
