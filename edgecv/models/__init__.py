"""The MODELS registry: classic classifiers for 1- or 3-channel images and any number of classes."""

from edgecv.models import zoo  # noqa: F401, I001  (registers the models, in this order)
from edgecv.models import transfer  # noqa: F401
from edgecv.models.base import MODELS, ModelEntry, TrainDefaults, create_model, param_groups

__all__ = ["MODELS", "ModelEntry", "TrainDefaults", "create_model", "param_groups"]
