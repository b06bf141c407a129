"""VGG16 transfer learning: torchvision's VGG16 features (pretrained weights from a file), a new head."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecv.core.errors import ModelError
from edgecv.models.base import TrainDefaults, register
from edgecv.models.blocks import Net, adapt_input_weight, dense_head, replace_stem

FEATURE_LR_SCALE = 0.1  # unfrozen pretrained features learn 10x slower than the new head


def load_vgg16_features(model: nn.Module, path: Path | str) -> None:
    """Copy ``features.*`` weights from a torchvision VGG16 state dict file into ``model``.

    Only tensors are unpickled (``weights_only=True``); the first conv is adapted to the model's input
    channels (summed for grayscale).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"weights file {path} does not exist") from None
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise ModelError(f"cannot load weights {path} safely: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"weights file {path} does not hold a state dict")
    own = model.features.state_dict()
    missing = [k for k in own if f"features.{k}" not in state]
    if missing:
        raise ModelError(f"weights file {path} lacks features.{missing[0]}: is it a torchvision VGG16 state dict?")
    loaded = {}
    for key, tensor in own.items():
        value = state[f"features.{key}"]
        if key == "0.weight":
            value = adapt_input_weight(value, tensor.shape[1])
        if value.shape != tensor.shape:
            raise ModelError(f"weights file {path}: features.{key} has shape {tuple(value.shape)}, "
                             f"VGG16 needs {tuple(tensor.shape)}")
        loaded[key] = value
    model.features.load_state_dict(loaded)


def _groups(model: nn.Module, lr: float, options: dict[str, Any]) -> list[dict[str, Any]]:
    head = [p for n, p in model.named_parameters() if not n.startswith("features.") and p.requires_grad]
    feats = [p for p in model.features.parameters() if p.requires_grad]
    groups = [{"params": head, "lr": lr}]
    if feats:
        groups.append({"params": feats, "lr": lr * options.get("feature_lr_scale", FEATURE_LR_SCALE)})
    return groups


@register("vgg16-transfer", "torchvision VGG16 features (--weights FILE, frozen by default) + new head", 32,
          defaults=TrainDefaults(epochs=8, lr=1e-3), options=frozenset({"weights", "freeze", "feature_lr_scale"}),
          param_groups=_groups, pretrained=True)
def vgg16_transfer(c: int, k: int, s: int, weights: str | None = None, freeze: bool = True,
                   feature_lr_scale: float = FEATURE_LR_SCALE) -> nn.Module:
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"])  # VGG16's convolutions, with torchvision's parameter names
    if c != 3:
        features[0] = replace_stem(features[0], c, stride=1)
    model = Net(features, nn.Sequential(nn.AdaptiveAvgPool2d(1), dense_head(512, (256,), k, dropout=0.5)))
    if weights:
        load_vgg16_features(model, weights)
    model.features.requires_grad_(not freeze)
    return model
