"""The report's figures, drawn with matplotlib's Agg backend: each function takes plain data and returns a
Figure with a title, labelled axes and class names."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, FuncFormatter  # noqa: E402
from PIL import Image  # noqa: E402

RIGHT, WRONG = "#1a7f37", "#cf222e"


DPI = 90
PAD_INCHES = 0.1  # savefig's own margin around the tight box


def png(fig) -> bytes:
    """The figure as PNG bytes, cropped to what it draws with savefig's margin, as
    ``savefig(bbox_inches="tight")`` writes it; the figure is closed. It is drawn once and the box cut from that
    drawing, where savefig's tight box draws every figure twice (a report's 14 figures: 2.5 s -> 1.8 s on a
    2-core Intel Xeon). A figure that draws past its own canvas (labels below the axes) goes through savefig,
    which moves the drawing first."""
    fig.set_dpi(DPI)
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    rgba = np.asarray(fig.canvas.buffer_rgba())
    height, width = rgba.shape[:2]
    buf = io.BytesIO()
    if drawn.x0 < 0 or drawn.y0 < 0 or drawn.x1 * DPI > width or drawn.y1 * DPI > height:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD_INCHES)
    else:
        box = drawn.padded(PAD_INCHES)
        left, right = math.floor(box.x0 * DPI), math.ceil(box.x1 * DPI)
        top, bottom = math.floor(height - box.y1 * DPI), math.ceil(height - box.y0 * DPI)
        page = Image.new("RGBA", (right - left, bottom - top), _rgba(fig.get_facecolor()))  # the margin's colour
        page.paste(Image.fromarray(rgba[max(top, 0):bottom, max(left, 0):right]), (max(-left, 0), max(-top, 0)))
        page.save(buf, "PNG")
    plt.close(fig)
    return buf.getvalue()


def _rgba(color) -> tuple[int, ...]:
    return tuple(round(255 * c) for c in matplotlib.colors.to_rgba(color))


def training_curves(history: list[dict[str, float]], title: str):
    """Loss, accuracy, precision and recall per epoch, train against validation."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key, name in zip(axes, ("loss", "acc", "precision", "recall"),
                             ("loss", "accuracy", "macro precision", "macro recall"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r.get(f"{split}_{key}", float("nan")) for r in history]
            ax.plot(epochs, values, style, markersize=3, label="train" if split == "train" else "validation")
        ax.set_title(name.capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_latency(variants: list[dict[str, Any]]):
    """Test accuracy against batch-1 p50 latency per variant, with 95% intervals on both where measured and the
    Pareto front drawn through."""
    def acc_ci(v: dict[str, Any]) -> tuple[float, float] | None:
        ci = v["metrics"].get("accuracy_ci")
        return (100 * ci[0], 100 * ci[1]) if ci else None

    fig, ax = _against_latency(variants, lambda v: 100 * v["metrics"]["accuracy"],
                               lambda v: "#0969da" if v["pareto"] else "#8c959f", (7.5, 4.6), acc_ci)
    front = sorted((v for v in variants if v["pareto"]), key=lambda v: v["latency_ms"]["p50"])
    if front:
        ax.step([v["latency_ms"]["p50"] for v in front], [100 * v["metrics"]["accuracy"] for v in front],
                where="post", color="#0969da", alpha=0.6, label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against latency: what each millisecond buys")
    return fig


def sweep(points: list[dict[str, Any]]):
    """Images/s against the p99 latency of one call for every variant and setting, one line per (variant,
    setting) through its batch sizes, each point labelled with its batch size."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    lines: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        lines.setdefault((p["variant"], p["setting"]), []).append(p)
    for (variant, setting), group in lines.items():
        group.sort(key=lambda p: p["batch"])
        (line,) = ax.plot([p["p99_ms"] for p in group], [p["images_per_s"] for p in group], "-o", markersize=4,
                          label=f"{variant}, {setting}")
        for p in group:
            ax.annotate(f"b{p['batch']}", (p["p99_ms"], p["images_per_s"]), fontsize=7, color=line.get_color(),
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("p99 latency of one batch call (ms, log scale)")
    ax.set_ylabel("images/s (log scale)")
    ax.set_title("Throughput against latency across the sweep")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    return fig


def size_latency(variants: list[dict[str, Any]]):
    """File size against batch-1 p50 latency per variant."""
    fig, ax = _against_latency(variants, lambda v: v["size_bytes"] / 1024, lambda v: "#8250df", (7.5, 4.2))
    ax.set_ylabel("file size (KB)")
    ax.set_title("Size against latency")
    return fig


def _against_latency(variants: list[dict[str, Any]], y_of, color_of, size: tuple[float, float], y_ci_of=None,
                     label_of=None):
    """Each variant as a named point at its p50 latency (log scale) and ``y_of(variant)``, with the 95% interval
    of the p50 (and of y, where ``y_ci_of`` gives one) as error bars; ``label_of`` may leave some unnamed."""
    fig, ax = plt.subplots(figsize=size)
    for k, v in enumerate(sorted(variants, key=lambda v: v["latency_ms"]["p50"])):
        x, y = v["latency_ms"]["p50"], y_of(v)
        ax.scatter(x, y, s=60, color=color_of(v), zorder=3)
        x_ci = v.get("latency_ci_ms", {}).get("p50")
        y_ci = y_ci_of(v) if y_ci_of else None
        if x_ci or y_ci:
            ax.errorbar(x, y, xerr=[[x - x_ci[0]], [x_ci[1] - x]] if x_ci else None,
                        yerr=[[y - y_ci[0]], [y_ci[1] - y]] if y_ci else None, color=color_of(v), alpha=0.5,
                        capsize=3, linewidth=1, zorder=2)
        label = label_of(v) if label_of else v["name"]
        if label:  # names alternately above and below, so that neighbours do not overlap
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 7 if k % 2 == 0 else -13), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    # label the minor ticks at 2x and 5x a power of ten only, so that they never run into each other
    ax.xaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.grid(alpha=0.3, which="both")
    return fig, ax


def f1_change(labels: list[str], names: list[str], change: np.ndarray):
    """Per-class F1 change against fp32 (percentage points), class by variant."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 0.9 + 0.32 * len(labels)))
    limit = max(1.0, float(np.abs(change).max()))
    im = ax.imshow(change, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), v in np.ndenumerate(change):
        ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("variant")
    ax.set_ylabel("class")
    ax.set_title("F1 change against ONNX fp32 (pp)")
    fig.colorbar(im, ax=ax, label="pp")
    return fig


def confusions(labels: list[str], panels: list[tuple[str, np.ndarray]], diff_title: str):
    """Confusion matrices side by side, and the difference of the last against the first."""
    (name_a, a), (name_b, b) = panels[0], panels[-1]
    diff = b - a
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4))
    for ax, (name, cm) in zip(axes[:2], ((name_a, a), (name_b, b)), strict=True):
        im = ax.imshow(cm, cmap="Blues")
        _cells(ax, cm, "{:d}", cm.max() / 2)
        _class_axes(ax, labels, f"{name}: confusion matrix")
        fig.colorbar(im, ax=ax, fraction=0.046, label="images")
    limit = max(1, int(np.abs(diff).max()))
    im = axes[2].imshow(diff, cmap="RdBu", vmin=-limit, vmax=limit)
    _cells(axes[2], diff, "{:+d}", None, skip_zero=True)
    if not diff.any():
        axes[2].text(len(labels) / 2 - 0.5, len(labels) / 2 - 0.5, "no difference", ha="center", va="center",
                     fontsize=12, color="#59636e")
    _class_axes(axes[2], labels, diff_title)
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="images (difference)")
    fig.tight_layout()
    return fig


def _cells(ax, cm: np.ndarray, fmt: str, dark_above: float | None, skip_zero: bool = False) -> None:
    if cm.shape[0] > 30:
        return
    for (i, j), v in np.ndenumerate(cm):
        if skip_zero and v == 0:
            continue
        color = "white" if dark_above is not None and v > dark_above else "black"
        ax.text(j, i, fmt.format(int(v)), ha="center", va="center", fontsize=7, color=color)


def _class_axes(ax, labels: list[str], title: str) -> None:
    ax.set_xticks(range(len(labels)), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)


def reliability(curves: list[tuple[str, list[dict[str, Any]], float]]):
    """Reliability diagram: accuracy against confidence per bin for each variant, ECE in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    ax.plot([0, 1], [0, 1], "--", color="#8c959f", label="perfect calibration")
    for name, bins, ece in curves:
        used = [b for b in bins if b["count"]]
        ax.plot([b["confidence"] for b in used], [b["accuracy"] for b in used], "-o", markersize=4,
                label=f"{name} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mean confidence in bin")
    ax.set_ylabel("accuracy in bin")
    ax.set_title("Reliability diagram (15 bins, test split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def confidence_histogram(name: str, confidence: np.ndarray, right: np.ndarray):
    """How confident the model is on its right and on its wrong answers."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    bins = np.linspace(0, 1, 21)
    ax.hist(confidence[right], bins=bins, color=RIGHT, alpha=0.7, label=f"right ({int(right.sum())})")
    ax.hist(confidence[~right], bins=bins, color=WRONG, alpha=0.7, label=f"wrong ({int((~right).sum())})")
    ax.set_yscale("log")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("test images (log scale)")
    ax.set_title(f"{name}: confidence on right and wrong answers")
    ax.legend(fontsize=8)
    return fig


def image_grid(pixels: np.ndarray, captions: list[str], right: list[bool], title: str, cols: int = 8):
    """Images with captions, green when the prediction is right and red when wrong."""
    n = len(pixels)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.75 * cols, 2.0 * rows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        img = pixels[k][0] if pixels[k].shape[0] == 1 else pixels[k].transpose(1, 2, 0)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(captions[k], fontsize=8, color=RIGHT if right[k] else WRONG)
        for spine in ax.spines.values():
            spine.set_edgecolor(RIGHT if right[k] else WRONG)
            spine.set_linewidth(2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def layer_times(names: list[str], layers: list[str], us: list[list[float | None]], title: str):
    """Per-layer kernel time (ms per run) of several files side by side, one bar per file for each layer, the
    first layer listed at the top."""
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(layers) * max(1, len(names)) ** 0.5))
    height = 0.8 / max(1, len(names))
    rows = np.arange(len(layers))
    for k, name in enumerate(names):
        ax.barh(rows + k * height, [(row[k] or 0.0) / 1e3 for row in us], height, label=name)
    ax.set_yticks(rows + height * (len(names) - 1) / 2, [_short(layer) for layer in layers], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("kernel time per run (ms)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1):]
