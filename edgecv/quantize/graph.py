"""The ONNX graph side of quantisation: a classifier's single input, the prepared graph (hard-swish as one op
for OpenVINO, unique node names so nodes can be left in float by name), and stamping a quantised file with its
source's metadata and its own settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def prepared_graph(path: Path, tuned_for: str = "onnxruntime") -> Any:
    """Rewrite the prepared file in place for the quantiser: for OpenVINO, hard-swish as one op; every node named
    uniquely (so nodes can be excluded by name); return the model."""
    import onnx

    model = onnx.load(str(path))
    if tuned_for == "openvino":
        fuse_hard_swish(model.graph)
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


def fuse_hard_swish(graph: Any) -> int:
    """Turn each ``x * HardSigmoid(x)`` with HardSigmoid's alpha 1/6 and beta 1/2 (what onnxruntime's
    quant_pre_process makes of a HardSwish op) back into one ``HardSwish(x)`` node; return how many.

    The quantiser leaves HardSwish in float between a dequantise and a quantise step, which OpenVINO fuses into
    the convolution before it, where the pair it replaces became three float steps it could not fuse. Measured on
    torchvision mobilenet_v3_large at 224 (random weights, int8-static U8S8 per-channel, batch 1 p50 / batch 8
    img/s against OpenVINO's fp32 in one interleaved run, 2-core Intel Xeon with AVX-512 VNNI): 0.63x / 0.76x ->
    0.99x / 1.25x. ONNX Runtime runs HardSwish as a float HardSigmoid and Mul (kernel time at batch 8 105 ->
    113 ms), so its files keep the pair, which it turns into a QLinearMul. Its int8 file stays at or below fp32's
    batch-1 speed either way (0.92x / 1.07x in benchmarks/real_size.py on that host): its int8 depthwise
    convolutions run 3-6x slower than fp32's NCHWc ones, and leaving them in float costs more (a layout change
    around each: 0.36x / 0.31x fp32's speed)."""
    import onnx

    nodes = list(graph.node)
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    replaced: dict[int, Any] = {}  # node index -> its replacement, None to drop it
    for mul, gate, x in _gated_muls(nodes, "HardSigmoid"):
        if gate not in replaced and _hard_swish_constants(nodes[gate]) and uses.get(nodes[gate].output[0]) == 1:
            replaced[gate] = None
            replaced[mul] = onnx.helper.make_node("HardSwish", [x], list(nodes[mul].output), name=nodes[mul].name)
    if replaced:
        kept = [_copy(replaced.get(i, node)) for i, node in enumerate(nodes) if replaced.get(i, node) is not None]
        del graph.node[:]
        graph.node.extend(kept)
    return sum(1 for node in replaced.values() if node is not None)


def swish_nodes(graph: Any) -> list[str]:
    """Names of the Sigmoid and Mul nodes of every ``x * Sigmoid(x)`` (SiLU, as torch exports it)."""
    nodes = list(graph.node)
    return [name for mul, gate, _ in _gated_muls(nodes, "Sigmoid") for name in (nodes[gate].name, nodes[mul].name)]


SE_OPS = {"Conv", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Add", "Flatten", "Reshape"}
SE_MAX_NODES = 12  # a squeeze-excite block's pooled branch is a handful of nodes; a classifier head is not one


def squeeze_excite_nodes(graph: Any) -> list[str]:
    """Names of every node of each squeeze-excite block: a GlobalAveragePool of ``x``, the small branch on its
    output (1x1 convolutions and their activations), and the Mul that scales ``x`` by the branch's gate."""
    nodes = list(graph.node)
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    names: list[str] = []
    for pool in nodes:
        if pool.op_type == "GlobalAveragePool":
            names += _excite_branch(pool, consumers)
    return names


def _excite_branch(pool: Any, consumers: dict[str, list[Any]]) -> list[str]:
    """The SE block that starts at ``pool``, pool to gate Mul; [] where what follows the pool is no SE branch
    (a classifier head, an op outside :data:`SE_OPS`, no Mul back onto the pooled tensor)."""
    x = pool.input[0]
    branch, made, frontier, gate = [pool], set(pool.output), [pool], None
    while frontier:
        for node in consumers.get(frontier.pop().output[0], []):
            if node in branch:
                continue
            if node.op_type == "Mul" and x in node.input and set(node.input) - {x} <= made:
                gate = node  # x scaled by the branch: the block ends here
                continue
            if node.op_type not in SE_OPS or len(branch) >= SE_MAX_NODES:
                return []
            branch.append(node)
            made.update(node.output)
            frontier.append(node)
    return [n.name for n in (*branch, gate)] if gate is not None else []


def _gated_muls(nodes: list[Any], gate_op: str) -> Iterator[tuple[int, int, str]]:
    """``(Mul's index, gate's index, x)`` for each ``Mul(x, gate(x))`` in ``nodes`` whose gate is a ``gate_op``."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    for i, node in enumerate(nodes):
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        a, b = node.input
        for x, gate in ((a, b), (b, a)):
            j = producer.get(gate)
            if j is not None and nodes[j].op_type == gate_op and list(nodes[j].input) == [x]:
                yield i, j, x
                break


def _hard_swish_constants(node: Any) -> bool:
    attrs = {a.name: a.f for a in node.attribute}
    return abs(attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(attrs.get("beta", 0.5) - 0.5) < 1e-6


def _copy(node: Any) -> Any:
    """A detached copy of a node, safe to keep while its graph's node list is cleared."""
    copied = type(node)()
    copied.CopyFrom(node)
    return copied


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
