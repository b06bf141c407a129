"""Where training runs and with which numeric settings."""

from __future__ import annotations

import os

import torch

from edgecv.core.errors import EdgecvError


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU; asking for CUDA without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        built = "with" if torch.backends.cuda.is_built() else "without"
        raise EdgecvError(f"--device cuda: no CUDA GPU is visible (torch {torch.__version__} is built {built} "
                          "CUDA); use --device cpu")
    if name not in ("cpu", "cuda"):
        raise EdgecvError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for CUDA: bf16 where the GPU supports it (auto), fp16 on request; None on CPU."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def set_deterministic(enabled: bool, device: torch.device) -> None:
    """Deterministic kernels (and no cuDNN autotuning) when asked; autotuning otherwise on CUDA."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if enabled != torch.are_deterministic_algorithms_enabled() or torch.is_deterministic_algorithms_warn_only_enabled():
        # setting it imports torch's compiler stack (about 4 s of start-up): only when it changes
        torch.use_deterministic_algorithms(enabled, warn_only=False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not enabled
        torch.backends.cudnn.deterministic = enabled
