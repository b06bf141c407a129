"""The named studies: sets of zoo models compared together (`edgecv pipeline --model NAME`). Torch-free, so
`edgecv models` lists them without loading a model."""

from __future__ import annotations

from edgecv.core.registry import Registry

STUDIES: Registry[tuple[str, ...]] = Registry("study")
STUDIES.add("quick", ("mlp", "lenet5", "cnn-bn"))  # three architectures that train in seconds on digits
STUDIES.add("architectures", ("mlp", "lenet5", "cnn-bn", "vgg"))  # MLP vs CNN vs CNN+BN vs VGG-style
STUDIES.add("regularisation", ("cnn", "cnn-dropout", "cnn-bn"))  # baseline vs Dropout vs BatchNorm
STUDIES.add("edge", ("cnn-tiny", "lenet5", "mobilenet-v3-small", "resnet"))  # small and mobile-sized nets
