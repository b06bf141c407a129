"""torch eager (from an edgecv checkpoint) and TorchScript files, on the CPU or a CUDA device."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import ModelError
from edgecv.core.facts import SPEC_KEY, Stated, resolve_spec
from edgecv.core.spec import ModelSpec
from edgecv.core.trust import vetted_bytes
from edgecv.runtimes.base import Loaded, RuntimeOptions, settled
from edgecv.runtimes.ort import ProviderError
from edgecv.train.checkpoint import calibrated, load_checkpoint, model_from_checkpoint


def _device(options: RuntimeOptions) -> str:
    import torch

    if options.provider not in ("cpu", "cuda"):
        raise ProviderError(f"torch runs on cpu or cuda, not {options.provider}")
    if options.provider == "cuda" and not torch.cuda.is_available():
        raise ProviderError("torch sees no CUDA device here; available: cpu")
    if options.threads:
        torch.set_num_threads(options.threads)
    return options.provider


def wrap_module(module: Any, fmt: str, path: Path, spec: ModelSpec, device: str) -> Loaded:
    """A torch module as a :class:`Loaded` model on ``device`` (eager or TorchScript)."""
    import torch

    module = module.to(device).eval()

    def prepare(x: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)

    def run_prepared(t: Any) -> Any:
        with torch.inference_mode():
            y = module(t)
        if device == "cuda":
            torch.cuda.synchronize()
        return y

    def fetch(y: Any) -> np.ndarray:
        return y.float().cpu().numpy()

    return Loaded(name="", format=fmt, precision="fp32", provider=device, file=path, spec=spec,
                  prepare=prepare, run_prepared=run_prepared, fetch=fetch, handle=module,
                  details={"torch": torch.__version__})


def load_checkpoint_model(path: Path, options: RuntimeOptions) -> Loaded:
    """The trained torch model of an edgecv checkpoint (loaded with ``weights_only=True``), with its fitted
    temperature applied as the exported files apply it."""

    device = _device(options)
    model, spec, _ = model_from_checkpoint(load_checkpoint(path), path, options.trust_code)
    return wrap_module(calibrated(model, spec), "torch", path, spec, device)


def load_torchscript(path: Path, options: RuntimeOptions, spec: ModelSpec | Stated | None = None) -> Loaded:
    """A TorchScript file and the spec in its ``_extra_files``."""
    import torch


    data = vetted_bytes(path, options.trust_torchscript)
    device = _device(options)
    files = {"edgecv_spec.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream, still our format
            module = torch.jit.load(io.BytesIO(data), map_location=device, _extra_files=files)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"{path} is not a TorchScript file: {str(exc).strip().splitlines()[0]}") from None
    text = files["edgecv_spec.json"]
    resolved = resolve_spec(str(path), {SPEC_KEY: text} if text else {}, None, spec)
    return settled(wrap_module(module, "torchscript", path, resolved.spec, device), resolved)
