"""The MODELS registry (classic classifiers for 1- or 3-channel images and any number of classes) and the
architectures of other libraries by name (``torchvision:NAME``, ``timm:NAME``) and a user's own module
(``path/net.py:factory``)."""

from edgecv.models import zoo  # noqa: F401, I001  (registers the models, in this order)
from edgecv.models import transfer  # noqa: F401
from edgecv.models import torchvision_models  # noqa: F401  (torchvision:NAME; torchvision is imported when used)
from edgecv.models import timm_models  # noqa: F401  (timm:NAME; timm is imported when used)
from edgecv.models import user_code  # noqa: F401  (path/net.py:factory, package.module:factory)
from edgecv.models.base import (
    MODELS,
    ModelEntry,
    NativeInput,
    TrainDefaults,
    create_model,
    keep_frozen_norms,
    model_entry,
    param_groups,
    settle_batch_norms,
)
from edgecv.models.summary import summarize

__all__ = ["MODELS", "ModelEntry", "NativeInput", "TrainDefaults", "create_model", "keep_frozen_norms", "model_entry",
           "param_groups", "settle_batch_norms", "summarize"]
