"""ExecuTorch's runtime for ``.pte`` files (XNNPACK on CPUs), behind the same :class:`Loaded` as every other
runtime, so eval, bench and the report treat a ``.pte`` like any model file. The spec and the quantisation
come from the file's own constant methods (see :mod:`edgecv.exporters.executorch`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.core.errors import ModelError
from edgecv.core.facts import SPEC_KEY, Stated, resolve_spec
from edgecv.core.spec import ModelSpec
from edgecv.runtimes.base import Loaded, RuntimeOptions, settled
from edgecv.runtimes.ort import PRECISION

SPEC_METHOD = "edgecv_spec"
QUANT_METHOD = "edgecv_quantization"
BOUND_METHOD = "edgecv_max_batch"  # the largest batch the program takes (files without it: MAX_BATCH)
MAX_BATCH = 256  # the bound of programs exported before they recorded theirs


def require_executorch() -> Any:
    """The executorch package, or a one-line error naming the extra."""
    try:
        import executorch
    except ImportError:
        raise ModelError("ExecuTorch is not installed: pip install 'edgecv[executorch]'") from None
    return executorch


def load_executorch(path: Path, options: RuntimeOptions | None, spec: ModelSpec | Stated | None = None) -> Loaded:
    """The ``forward`` method of an ExecuTorch program, ready to run numpy batches on the CPU."""
    require_executorch()
    import torch
    from executorch.runtime import Runtime

    options = options or RuntimeOptions()
    if options.provider != "cpu":
        raise ModelError(f"ExecuTorch files run on the cpu (XNNPACK), not {options.provider!r}")
    try:
        program = Runtime.get().load_program(str(path))
        names = set(program.method_names)
        meta = {key: str(program.load_method(key).execute([])[0])
                for key in (SPEC_METHOD, QUANT_METHOD, BOUND_METHOD) if key in names}
        method = program.load_method("forward")
    except Exception as exc:  # the runtime raises RuntimeError/ValueError with its own codes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ExecuTorch cannot load {path}: {first}") from None
    resolved = resolve_spec(str(path), {SPEC_KEY: meta[SPEC_METHOD]} if SPEC_METHOD in meta else {}, None, spec)
    spec = resolved.spec
    quant = json.loads(meta[QUANT_METHOD]) if QUANT_METHOD in meta else {}
    bound = int(meta.get(BOUND_METHOD, MAX_BATCH))

    def prepare(x: np.ndarray) -> Any:
        if len(x) > bound:
            raise ModelError(f"{path.name} takes batches of at most {bound} images (its export bound), "
                             f"not {len(x)}")
        return torch.from_numpy(np.ascontiguousarray(x))

    def run_prepared(x: Any) -> Any:
        return method.execute([x])

    def fetch(outputs: Any) -> np.ndarray:
        return outputs[0].numpy().copy()  # the runtime may reuse its output buffer

    return settled(Loaded(name="", format="executorch", precision=PRECISION.get(quant.get("method"), "fp32"),
                          provider="cpu", file=Path(path), spec=spec, prepare=prepare, run_prepared=run_prepared,
                          fetch=fetch, handle=program, details={"delegate": "XNNPACK", **quant},
                          max_batch=bound), resolved)
