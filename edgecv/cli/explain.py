"""`edgecv explain`: Grad-CAM overlays for test images or image files, from a run's torch model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from edgecv.cli.common import DATA_ROOT, TRUST_CODE, out, run_guarded, save_bytes
from edgecv.core.errors import EdgecvError
from edgecv.rundir import RunDir


def explain_cmd(
    source: Path = typer.Argument(..., help="A run directory (its best checkpoint) or a checkpoint file."),
    image: list[Path] = typer.Option(None, "--image", "-i", help="An image to explain (repeatable)."),
    samples: int = typer.Option(6, "--samples", "-n", help="Without --image: this many random test images."),
    layer: str = typer.Option(None, "--layer", help="Layer for Grad-CAM [default: the last convolution]."),
    out_path: Path = typer.Option(None, "--out", "-o", help="Output folder [default: RUN_DIR/explain]."),
    data_root: Path = DATA_ROOT,
    trust_code: bool = TRUST_CODE,
) -> None:
    """Grad-CAM heatmap overlays for the predicted class, and per-layer activation grids, as PNG files.

    Example: edgecv explain runs/demo --samples 8 --layer features.4
    """

    def body() -> None:
        import numpy as np

        from edgecv import explain
        from edgecv.core.imageio import open_image, to_pixels  # numpy and Pillow: not at start-up
        from edgecv.report.figures import png

        if samples < 1:
            raise EdgecvError(f"--samples must be at least 1, got {samples}")
        model, spec, ckpt = explain.load_explainable(source, trust_code)
        explain.pick_layer(model, layer)  # a bad --layer fails before any work
        truth = None
        if image:
            pixels = np.stack([to_pixels(open_image(p, str(p)), spec.color, spec.size, spec.framing, str(p))
                               for p in image])
        else:
            pixels, truth = _test_images(ckpt, spec, samples, str(data_root) if data_root else None)
        folder = out_path or RunDir.of(ckpt).explain
        if folder.exists() and not folder.is_dir():
            raise EdgecvError(f"--out {folder} is a file, not a folder")
        cams = explain.grad_cam(model, spec, pixels, layer)
        written = []
        for i in range(len(pixels)):
            one = explain.Explained(pixels[i:i + 1], cams.cams[i:i + 1], cams.predicted[i:i + 1],
                                    cams.confidence[i:i + 1], cams.layer)
            written.append(save_bytes(folder / f"gradcam_{i:02d}.png",
                                 png(explain.overlay_figure(one, spec.labels, None if truth is None else truth[i:i + 1],
                                                            title=f"Grad-CAM at {cams.layer}"))))
        for name, maps in explain.activations(model, spec, pixels[:1]).items():
            written.append(save_bytes(folder / f"activations_{name.replace('.', '_')}.png",
                                 png(explain.activation_figure(name, maps, pixels[0]))))
        out.print(f"[green]wrote[/] {len(written)} PNG files to {escape(str(folder))}: Grad-CAM at {cams.layer} "
                  f"for {len(pixels)} images, activations of {len(written) - len(pixels)} layers", soft_wrap=True)

    run_guarded(body)


def _test_images(ckpt: Path, spec, count: int, data_root: str | None):
    import numpy as np

    from edgecv.modeldata import data_source, keeps_going, load_bundle

    name, root = data_source(ckpt, spec, None, data_root)
    test = load_bundle(name, root, spec.input_shape, keeps_going(ckpt), framing=spec.framing).test
    pick = np.sort(np.random.default_rng(0).choice(len(test), size=min(count, len(test)), replace=False))
    return test.take(pick), test.y[pick]


