"""scikit-learn's bundled handwritten digits: 1,797 real 8×8 images, nothing to download."""

from __future__ import annotations

import numpy as np

from edgecv.data.base import RawData


def load_digits_raw(**_: object) -> RawData:
    """The digits as 8-bit grayscale (0..16 scaled to 0..255), labels "0".."9"."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return RawData(
        train=(images, bunch.target.astype(np.int64)),
        labels=[str(v) for v in range(10)],
        color="L",
    )
