"""What the model libraries offer by name, from their metadata alone (nothing is built or downloaded): the rows
of ``edgecv models --source torchvision|timm``."""

from __future__ import annotations

import math

from edgecv.models.timm_models import require_timm
from edgecv.models.torchvision_models import names, native_input, weights_entry

COLUMNS = ("model", "crop", "resize", "interpolation", "classes", "weights")


def catalogue(source: str) -> list[tuple[str, int, int, str, int, str]]:
    """(name, crop, resize, interpolation, classes, weights entries) of every model ``source`` has by name:
    torchvision's classifiers at their DEFAULT weights, or timm's pretrained tags."""
    if source == "torchvision":
        rows = []
        for arch in names():
            native = native_input(arch)
            entries = ", ".join(w.name for w in type(weights_entry(arch, None)))
            rows.append((f"torchvision:{arch}", native.size, native.resize, native.interpolation, len(native.labels),
                         entries))
        return rows
    timm = require_timm()
    from timm.models import get_pretrained_cfg

    rows = []
    for name in timm.list_models(pretrained=True):
        cfg = get_pretrained_cfg(name)
        size = cfg.input_size[1]
        rows.append((f"timm:{name}", size, math.floor(size / (cfg.crop_pct or 0.875)), str(cfg.interpolation),
                     cfg.num_classes, "the tag's"))
    return rows
