"""Reading ONNX model files safely, and the metadata keys edgecv stamps into them.

Needs the ``onnx`` package (``edgecv[train]``); never imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgecv.core.errors import ModelError
from edgecv.core.fsutil import leaves_folder, require_file
from edgecv.core.spec import ModelSpec

SPEC_KEY = "edgecv.spec"
QUANT_KEY = "edgecv.quantization"


def _check_external_data(model: Any, path: Path) -> None:
    """Refuse external-data references that leave the model's own folder (or are absolute)."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    folder = path.parent.resolve()
    for tensor in _graph_tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        if leaves_folder(folder, location):
            raise ModelError(f"{path} refers to external data {location!r} outside its own folder; refusing to "
                             "read it")
        if not (folder / location).is_file():
            raise ModelError(f"{path} needs its external data file {location!r}, which is missing")


def _graph_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph holds: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def load_onnx(path: Path | str) -> Any:
    """Load and check an ONNX model, turning every way a file can be wrong into one :class:`ModelError`."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    require_file(path, "an ONNX file", ModelError)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not an ONNX model (or is truncated): {type(exc).__name__}") from None
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise ModelError(f"{path} is not an ONNX model (or is truncated): it has no graph")
    _check_external_data(model, path)
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} is not a valid ONNX model: {first}") from None
    return model


def metadata(model: Any) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


def set_metadata(model: Any, props: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``props``."""
    import onnx

    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)


def spec_of(model: Any) -> ModelSpec | None:
    """The ModelSpec stored in a loaded model, or None for a foreign model."""
    text = metadata(model).get(SPEC_KEY)
    return ModelSpec.from_json(text) if text is not None else None


def read_spec(path: Path | str) -> ModelSpec | None:
    """The ModelSpec stored in an ONNX file's metadata, or None for a foreign file."""
    return spec_of(load_onnx(path))


def quantization_of(model: Any) -> dict[str, Any] | None:
    """The quantisation settings edgecv recorded in a model, or None for a float model."""
    text = metadata(model).get(QUANT_KEY)
    return json.loads(text) if text is not None else None
