"""The named studies: sets of zoo models compared together (`edgecv pipeline --model NAME`). Torch-free, so
`edgecv models` lists them without loading a model."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecv.core.registry import Registry


@dataclass(frozen=True)
class Study:
    """The models of a named study, and the epochs of those it trains for fewer than their own default
    (``--epochs`` still sets every model's)."""

    models: tuple[str, ...]
    epochs: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """``mlp (15 epochs), lenet5 (15 epochs), cnn-bn (8 epochs)``."""
        return ", ".join(f"{m} ({self.epochs[m]} epochs)" if m in self.epochs else m for m in self.models)


STUDIES: Registry[Study] = Registry("study")
# three architectures that train in seconds on digits; fewer epochs than their defaults (30, 30, 15) keep the
# study's accuracy-against-latency trade-off (digits test split, 2-core Intel Xeon: mlp 97.8%, lenet5 99.4%,
# cnn-bn 100.0%, against 98.3%, 99.4%, 99.7% at the defaults) in half the training time
STUDIES.add("quick", Study(("mlp", "lenet5", "cnn-bn"), {"mlp": 15, "lenet5": 15, "cnn-bn": 8}))
STUDIES.add("architectures", Study(("mlp", "lenet5", "cnn-bn", "vgg")))  # MLP vs CNN vs CNN+BN vs VGG-style
STUDIES.add("regularisation", Study(("cnn", "cnn-dropout", "cnn-bn")))  # baseline vs Dropout vs BatchNorm
STUDIES.add("edge", Study(("cnn-tiny", "lenet5", "mobilenet-v3-small", "resnet")))  # small and mobile-sized nets
