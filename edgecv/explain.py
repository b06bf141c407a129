"""Why a model answered as it did: Grad-CAM heatmaps and per-layer activations of a trained torch model.

The attributions come from Captum (``LayerGradCam``, ``LayerActivation``); this module picks the layer,
feeds the model exactly the input it was trained on and draws the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.preprocess import to_model_input
from edgecv.core.spec import ModelSpec
from edgecv.rundir import RunDir


@dataclass
class Explained:
    """Grad-CAM for a batch of images: uint8 (N, C, H, W) pixels, heatmaps in [0, 1] at the image size,
    and what the model predicted."""

    pixels: np.ndarray
    cams: np.ndarray  # (N, H, W)
    predicted: np.ndarray  # (N,) class indices
    confidence: np.ndarray  # (N,) probability of the predicted class
    layer: str


def load_explainable(path: Path, trust_code: bool = False) -> tuple[Any, ModelSpec, Path]:
    """The torch model, spec and checkpoint path of a run directory (its best checkpoint) or a checkpoint
    (``trust_code``: rebuild a user's module that changed since the run began)."""
    from edgecv.train.checkpoint import load_checkpoint, model_from_checkpoint

    path = Path(path)
    ckpt = RunDir(path).best if path.is_dir() else path
    if not ckpt.is_file():
        raise EdgecvError(f"{path}: no such checkpoint or run directory with checkpoints/best.pt "
                          "(Grad-CAM needs the trained torch model)")
    model, spec, _ = model_from_checkpoint(load_checkpoint(ckpt), ckpt, trust_code)
    return model.eval(), spec, ckpt


def conv_layers(model: Any) -> list[str]:
    """Names of the model's 2-D convolutions, in forward order."""
    import torch.nn as nn

    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def pick_layer(model: Any, name: str | None) -> str:
    """``name``, or the last convolution: the layer Grad-CAM reads by default."""
    convs = conv_layers(model)
    if name is None:
        if not convs:
            raise ModelError("this model has no convolution layers; Grad-CAM and feature maps need one")
        return convs[-1]
    names = dict(model.named_modules())
    if name not in names or not name:
        raise EdgecvError(f"--layer {name!r} is not a layer of this model; its convolutions are: "
                          f"{', '.join(convs) or 'none'}")
    return name


def _input(pixels: np.ndarray, spec: ModelSpec) -> Any:
    import torch


    x = to_model_input(pixels, spec)
    if spec.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def grad_cam(model: Any, spec: ModelSpec, pixels: np.ndarray, layer: str | None = None) -> Explained:
    """Grad-CAM of the predicted class at ``layer`` (the last convolution by default) for uint8
    (N, C, H, W) pixels, upsampled to the image size and scaled to [0, 1] per image."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    name = pick_layer(model, layer)
    module = dict(model.named_modules())[name]
    x = _input(pixels, spec)
    with torch.no_grad():
        probs = torch.softmax(model(x).float(), dim=1)
    predicted = probs.argmax(1)
    cam = LayerGradCam(model, module).attribute(x, target=predicted, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0]
    cam = cam.detach().float().numpy()
    top = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    cam = np.where(top > 0, cam / np.where(top > 0, top, 1), 0.0)
    return Explained(pixels=pixels, cams=np.clip(cam, 0, 1), predicted=predicted.numpy(),
                     confidence=probs.max(1).values.numpy(), layer=name)


def activations(model: Any, spec: ModelSpec, pixels: np.ndarray, layers: list[str] | None = None
                ) -> dict[str, np.ndarray]:
    """Each layer's output (C, h, w) for one uint8 (1, C, H, W) image: every convolution by default."""
    from captum.attr import LayerActivation

    names = layers or conv_layers(model)
    if not names:
        raise ModelError("this model has no convolution layers; feature maps need one")
    modules = dict(model.named_modules())
    x = _input(pixels[:1], spec)
    outs = LayerActivation(model, [modules[n] for n in names]).attribute(x)
    return {n: o[0].detach().float().numpy() for n, o in zip(names, outs, strict=True)}


def overlay_figure(explained: Explained, labels: list[str], truth: np.ndarray | None = None,
                   title: str | None = None):
    """Each image above its Grad-CAM overlay, titled with the prediction (and the truth when known)."""
    import matplotlib.pyplot as plt

    n = len(explained.pixels)
    fig, axes = plt.subplots(2, n, figsize=(max(2.0 * n, 4.0), 4.6), squeeze=False)
    for i in range(n):
        img = _show(explained.pixels[i])
        pred = labels[int(explained.predicted[i])]
        head = f"pred {pred} ({explained.confidence[i]:.0%})"
        color = "black"
        if truth is not None:
            head = f"true {labels[int(truth[i])]}\n{head}"
            color = "green" if int(truth[i]) == int(explained.predicted[i]) else "red"
        axes[0, i].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        axes[0, i].set_title(head, fontsize=9, color=color)
        axes[1, i].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        heat = axes[1, i].imshow(explained.cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[1, i].set_title(f"Grad-CAM of '{pred}'", fontsize=8)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel(f"Grad-CAM at {explained.layer}")
    fig.colorbar(heat, ax=axes[1, :].tolist(), fraction=0.02, label="relevance (0 to 1)")
    fig.suptitle(title or f"Grad-CAM at layer {explained.layer}: where the predicted class's evidence lies")
    return fig


def activation_figure(name: str, maps: np.ndarray, image: np.ndarray, limit: int = 15):
    """The first ``limit`` channels of one layer's output for one image, beside the image."""
    import matplotlib.pyplot as plt

    shown = maps[:limit]
    cols = min(8, len(shown) + 1)
    rows = int(np.ceil((len(shown) + 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows + 0.6), squeeze=False)
    img = _show(image)
    axes[0, 0].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=8)
    for k, ax in enumerate(axes.flat[1:]):
        if k < len(shown):
            ax.imshow(shown[k], cmap="viridis")
            ax.set_title(f"channel {k}", fontsize=8)
        else:
            ax.axis("off")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Feature maps of {name}: {len(shown)} of {maps.shape[0]} channels, {maps.shape[1]}x{maps.shape[2]}")
    return fig


def _show(pixels: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 -> what imshow takes: (H, W) gray or (H, W, 3)."""
    return pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
