"""edgecv: train image classifiers, export and quantise them, and measure every variant.

Importing this package never imports torch.
"""

from edgecv.core.errors import CheckpointError, DataError, EdgecvError, InvalidImageError, ModelError
from edgecv.core.spec import ModelSpec

__version__ = "0.1.0"


def __getattr__(name: str):
    """``edgecv.Predictor``, ``edgecv.Prediction`` and ``edgecv.IsolatedPredictor`` load onnxruntime only when
    first used; ``edgecv.export_module`` loads torch."""
    if name in ("Predictor", "Prediction"):
        from edgecv.serve import predictor

        return getattr(predictor, name)
    if name in ("IsolatedPredictor", "RuntimeFault", "check_model"):
        from edgecv.serve import isolated

        return getattr(isolated, name)
    if name == "export_module":  # torch: only when a notebook asks for it
        from edgecv.exporters.module import export_module

        return export_module
    raise AttributeError(f"module 'edgecv' has no attribute {name!r}")


__all__ = ["CheckpointError", "DataError", "EdgecvError", "InvalidImageError", "IsolatedPredictor", "ModelError",
           "ModelSpec", "Prediction", "Predictor", "RuntimeFault", "__version__", "check_model", "export_module"]
