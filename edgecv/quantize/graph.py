"""The ONNX graph side of quantisation: a classifier's single input, unique node names (so nodes can be left
in float by name), and stamping a quantised file with its source's metadata and its own settings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecv import __version__
from edgecv.core.errors import EdgecvError, ModelError
from edgecv.core.onnxfile import QUANT_KEY, SPEC_KEY, set_metadata
from edgecv.core.spec import ModelSpec


def model_io(model: Any, output: str | None = None) -> tuple[str, list[Any], int]:
    """The single input's name and dims, and its element type; a graph with several outputs is quantised
    with ``output`` (the class scores) as its only one."""
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if output and len(model.graph.output) > 1 and output in [o.name for o in model.graph.output]:
        kept = [o for o in model.graph.output if o.name == output]
        del model.graph.output[:]
        model.graph.output.extend(kept)
    if len(inputs) != 1 or len(model.graph.output) != 1:
        outputs = ", ".join(o.name for o in model.graph.output)
        raise ModelError(f"edgecv quantises single-input classifiers with one output of class scores; this model has "
                         f"{len(inputs)} inputs and {len(model.graph.output)} outputs ({outputs}): pass --output NAME")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return inputs[0].name, dims, tensor.elem_type


def name_nodes(path: Path) -> Any:
    """Give every unnamed node a unique name, so nodes can be excluded by name; return the model."""
    import onnx

    model = onnx.load(str(path))
    seen = {node.name for node in model.graph.node if node.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)
    onnx.save(model, str(path))
    return model


def stamp(tmp: Path, source_props: dict[str, str], spec: ModelSpec | None, info: dict[str, Any],
           doc: str) -> None:
    """Give a quantised file the source's metadata, its own measured accuracy and its settings."""
    import onnx

    model = onnx.load(str(tmp))
    props = {k: v for k, v in source_props.items() if k not in (SPEC_KEY, QUANT_KEY)}
    if spec is not None:
        metrics = {"val_accuracy": info["val_accuracy"], "test_accuracy": info["test_accuracy"]}
        props[SPEC_KEY] = replace(spec, metrics=metrics).to_json()
    props[QUANT_KEY] = json.dumps(info, sort_keys=True)
    set_metadata(model, props)
    model.producer_name, model.producer_version = "edgecv", __version__
    model.doc_string = f"{doc} Quantised by edgecv ({info['method']}): settings in metadata_props['{QUANT_KEY}']."
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise EdgecvError(f"{info['method']} produced an invalid ONNX graph: {str(exc).strip().splitlines()[0]}") \
            from None
    onnx.save(model, str(tmp), save_as_external_data=False)
