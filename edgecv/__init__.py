"""edgecv: train image classifiers, export and quantise them, and measure every variant.

Importing this package never imports torch.
"""

from edgecv.errors import CheckpointError, DataError, EdgecvError, ModelError
from edgecv.spec import ModelSpec

__version__ = "0.1.0"

__all__ = ["CheckpointError", "DataError", "EdgecvError", "ModelError", "ModelSpec", "__version__"]
