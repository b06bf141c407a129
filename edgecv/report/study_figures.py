"""The study report's figures: every model and format on one chart, curves of every model overlaid, and grids
with one panel or row per model. Plain data in, a matplotlib Figure out (Agg, as in figures.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecv.report.figures import _against_latency, _cells, _class_axes, plt, png  # noqa: F401 (png for callers)

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#57606a", "#9a6700")


def model_colors(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _legend(ax, colors: dict[str, str], extra: list[Any] = ()) -> None:
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=m) for m, c in colors.items()]
    ax.legend(handles=[*handles, *extra], fontsize=8, loc="lower right")


def accuracy_latency(rows: list[dict[str, Any]], colors: dict[str, str]):
    """Test accuracy against batch-1 p50 for every model x format row, coloured by model, with 95% intervals and
    the study-wide Pareto front."""
    def acc_ci(v: dict[str, Any]):
        ci = v["metrics"].get("accuracy_ci")
        return (100 * ci[0], 100 * ci[1]) if ci else None

    timed = [r for r in rows if "p50" in r["latency_ms"]]
    fig, ax = _against_latency(timed, lambda v: 100 * v["metrics"]["accuracy"], lambda v: colors[v["model"]],
                               (9.5, 5.6), acc_ci, lambda v: v["name"] if v["front"] else None)
    front = sorted((r for r in timed if r["front"]), key=lambda r: r["latency_ms"]["p50"])
    extra = []
    if front:
        (line,) = ax.step([r["latency_ms"]["p50"] for r in front], [100 * r["metrics"]["accuracy"] for r in front],
                          where="post", color="#1f2328", alpha=0.5, label="Pareto front (all models)")
        extra.append(line)
    _legend(ax, colors, extra)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against latency, every model and format: what each millisecond buys")
    return fig


def size_latency(rows: list[dict[str, Any]], colors: dict[str, str]):
    """File size against batch-1 p50 for every row, coloured by model."""
    timed = [r for r in rows if "p50" in r["latency_ms"]]
    fig, ax = _against_latency(timed, lambda v: v["size_bytes"] / 1e6, lambda v: colors[v["model"]], (9.5, 4.8),
                               label_of=lambda v: v["name"] if v["front"] else None)
    ax.set_yscale("log")
    ax.set_ylabel("file size (MB, log scale)")
    ax.set_title("Size against latency")
    _legend(ax, colors)
    return fig


def throughput_accuracy(rows: list[dict[str, Any]], colors: dict[str, str], batch: str):
    """Test accuracy against images/s at the largest batch size, coloured by model."""
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for k, r in enumerate(sorted((r for r in rows if batch in r["throughput"]), key=lambda r: r["throughput"][batch])):
        x, y = r["throughput"][batch], 100 * r["metrics"]["accuracy"]
        ax.scatter(x, y, s=60, color=colors[r["model"]], zorder=3)
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 7 if k % 2 == 0 else -13), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.set_xlabel(f"images/s at batch {batch} (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Accuracy against batch-{batch} throughput")
    ax.grid(alpha=0.3, which="both")
    _legend(ax, colors)
    return fig


def training_overlay(histories: dict[str, list[dict[str, float]]], colors: dict[str, str]):
    """Loss, accuracy, macro precision and macro recall per epoch, every model on the same axes: validation
    solid, training dashed."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.0))
    for ax, key, name in zip(axes, ("loss", "acc", "precision", "recall"),
                             ("loss", "accuracy", "macro precision", "macro recall"), strict=True):
        for model, history in histories.items():
            epochs = [r["epoch"] for r in history]
            ax.plot(epochs, [r.get(f"val_{key}", float("nan")) for r in history], "-", color=colors[model],
                    label=f"{model} validation")
            ax.plot(epochs, [r.get(f"train_{key}", float("nan")) for r in history], "--", color=colors[model],
                    alpha=0.6, label=f"{model} train")
        ax.set_title(name.capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if key == "loss":
            ax.set_yscale("log")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Training curves of every model (solid: validation, dashed: training)")
    fig.tight_layout()
    return fig


def f1_grid(models: list[str], labels: list[str], f1: np.ndarray):
    """Per-class F1 (rows: models, columns: classes) of each model's fp32 reference on the test split."""
    fig, ax = plt.subplots(figsize=(1.6 + 0.62 * len(labels), 1.2 + 0.45 * len(models)))
    im = ax.imshow(f1, cmap="viridis", vmin=min(0.5, float(f1.min())), vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(f1):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.8 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right")
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel("class")
    ax.set_title("F1 per class and model (test split)")
    fig.colorbar(im, ax=ax, label="F1")
    fig.tight_layout()
    return fig


def confusion_grid(labels: list[str], panels: list[tuple[str, np.ndarray]]):
    """One confusion matrix per model, side by side (rows: true class)."""
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 5.0 * rows), squeeze=False)
    for ax, (name, cm) in zip(axes.flat, panels, strict=False):
        ax.imshow(cm, cmap="Blues")
        _cells(ax, cm, "{:d}", cm.max() / 2)
        _class_axes(ax, labels, f"{name}: {int(np.trace(cm))}/{int(cm.sum())} right")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
