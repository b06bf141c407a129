"""A model file's spec when edgecv did not write it, or when the user corrects it: the facts a user states
(``--labels``, ``--mean``, ``--resize`` …), the conventions other exporters leave in ``metadata_props``
(Ultralytics' ``names``, ``imgsz`` and ``task``), and the graph's own input and output shapes.

Precedence, fact by fact: what the user states, then edgecv's own spec in the file, then another exporter's
metadata, then the graph. A fact nobody supplies is one error naming the flags that supply it. Torch-free.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from edgecv.core.errors import MissingSpecError, ModelError
from edgecv.core.spec import COLORS, ModelSpec

SPEC_KEY = "edgecv.spec"
# the flag that states each fact a spec needs, for the one-line error when it is missing
FLAG_OF = {"labels": "--labels a,b,c (or @classes.txt)", "mean": "--mean", "std": "--std",
           "input_shape": "--input-shape C,H,W (or --crop SIZE)"}
# Ultralytics' classification transform (ultralytics.data.augment.classify_transforms): the shorter side resized
# to imgsz, the centre cropped, pixels scaled to 0..1 and not normalised
ULTRALYTICS = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "interpolation": "bilinear"}


@dataclass(frozen=True)
class Stated:
    """What the user states about a model file; each given fact overrides the file's own. ``crop`` sets H and
    W together; ``output`` names the graph output that holds the class scores; ``outputs`` says whether they
    are logits or probabilities (None: detected on a probe batch for a file edgecv did not write)."""

    labels: Sequence[str] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    scale: float | None = None
    input_shape: Sequence[int] | None = None
    crop: int | None = None
    layout: str | None = None
    resize: int | None = None
    interpolation: str | None = None
    channel_order: str | None = None
    color: str | None = None
    output: str | None = None
    outputs: str | None = None

    def given(self) -> dict[str, Any]:
        """The facts stated, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Graph:
    """A graph's tensors as (name, shape) with None for a dynamic dimension; shapes of unknown rank are ()."""

    inputs: list[tuple[str, tuple[int | None, ...]]]
    outputs: list[tuple[str, tuple[int | None, ...]]]


@dataclass
class Resolved:
    """The spec a file runs with, where its facts came from, and whether its outputs must be probed."""

    spec: ModelSpec
    notes: list[str] = field(default_factory=list)
    probe_outputs: bool = False


def resolve_spec(name: str, meta: dict[str, str], graph: Graph | None,
                 stated: Stated | ModelSpec | None = None) -> Resolved:
    """The spec for the model file ``name`` with metadata ``meta`` and ``graph`` (None: unknown, as for a
    module not yet exported). A whole :class:`ModelSpec` passed as ``stated`` replaces the file's own."""
    if graph is not None and len(graph.inputs) != 1:
        listed = ", ".join(n for n, _ in graph.inputs)
        raise ModelError(f"{name} takes {len(graph.inputs)} inputs ({listed}); edgecv feeds a classifier one "
                         "image tensor")
    if isinstance(stated, ModelSpec):
        return Resolved(_checked(stated, graph, name))
    stated = stated or Stated()
    notes: list[str] = []
    own = meta.get(SPEC_KEY)
    if own is not None:
        facts = ModelSpec.from_json(own).to_dict()
    else:
        facts = _convention(meta, notes)
        _from_graph(facts, graph)
    output = _output(name, graph, stated.output or facts.get("output") or None)
    facts.update(_stated_facts(stated, facts))
    facts["output"] = output
    missing = [k for k in FLAG_OF if facts.get(k) is None]
    if missing:
        raise MissingSpecError(f"{name} has no edgecv spec{_saying(notes)}: pass "
                               f"{', '.join(FLAG_OF[k] for k in missing)}", missing, name)
    spec = _built(facts, name)
    probe = own is None and stated.outputs is None and "outputs" not in facts.get("_from_meta", ())
    return Resolved(_checked(spec, graph, name), notes, probe)


def _saying(notes: list[str]) -> str:
    return f" ({'; '.join(notes)})" if notes else ""


def _built(facts: dict[str, Any], name: str) -> ModelSpec:
    known = {f.name for f in fields(ModelSpec)}
    values = {k: v for k, v in facts.items() if k in known and v is not None}
    channels = values["input_shape"][0]
    for key in ("mean", "std"):  # one value serves every channel
        if len(values[key]) == 1:
            values[key] = list(values[key]) * channels
    try:
        return ModelSpec(**values)
    except ModelError as exc:
        raise ModelError(f"{name}: {exc}") from None


def _convention(meta: dict[str, str], notes: list[str]) -> dict[str, Any]:
    """Facts another exporter left in the metadata: Ultralytics' class names, image size and, for its
    classifiers, its preprocessing."""
    facts: dict[str, Any] = {"_from_meta": ()}
    names = _literal(meta.get("names"))
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        facts["labels"] = [str(names[k]) for k in sorted(names)]
    elif isinstance(names, (list, tuple)) and names:
        facts["labels"] = [str(n) for n in names]
    size = _literal(meta.get("imgsz"))
    if isinstance(size, int):
        size = [size, size]
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        facts["_size"] = (int(size[0]), int(size[1]))
    said = [k for k in ("labels", "_size") if k in facts]
    if meta.get("task") == "classify" and "labels" in facts:
        facts.update(ULTRALYTICS, resize=min(facts.get("_size", (0, 0))), outputs="probabilities",
                     color="RGB", _from_meta=("outputs",))
        notes.append("Ultralytics metadata: class names, image size, and its classify transform (resize the "
                     "shorter side, centre crop, pixels 0..1, softmax outputs)")
    elif said:
        notes.append(f"class names{' and image size' if '_size' in facts else ''} from the file's metadata")
    return facts


def _literal(text: str | None) -> Any:
    """A Python literal (dict, list, int) that another exporter wrote with ``str()``, or None."""
    if not text:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _from_graph(facts: dict[str, Any], graph: Graph | None) -> None:
    """Layout, channels and size from the graph's input where its dimensions are fixed."""
    if graph is None:
        return
    shape = graph.inputs[0][1]
    if len(shape) != 4:
        return
    nhwc = shape[3] in (1, 3) and shape[1] not in (1, 3)
    facts.setdefault("layout", "NHWC" if nhwc else "NCHW")
    c, h, w = (shape[3], shape[1], shape[2]) if facts["layout"] == "NHWC" else shape[1:]
    h, w = facts.get("_size", (h, w)) if h is None or w is None else (h, w)
    facts["_graph_chw"] = (c, h, w)


def _stated_facts(stated: Stated, facts: dict[str, Any]) -> dict[str, Any]:
    """The stated facts as spec fields, with the input shape made whole from --crop, --color and the graph."""
    given = stated.given()
    out = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in given.items()
           if k not in ("crop", "input_shape", "output")}
    c0, h0, w0 = facts.get("_graph_chw") or (None, *facts.get("_size", (None, None)))
    if "input_shape" in facts and facts["input_shape"] is not None:
        c0, h0, w0 = facts["input_shape"]
    if stated.input_shape is not None:
        c0, h0, w0 = (int(v) for v in stated.input_shape)
    if stated.crop is not None:
        h0 = w0 = int(stated.crop)
    color = stated.color or (facts.get("color") if stated.input_shape is None else None)
    if c0 is None and color in COLORS:
        c0 = COLORS[color]
    if c0 is not None and h0 is not None and w0 is not None:
        out["input_shape"] = [int(c0), int(h0), int(w0)]
        out["color"] = color if color in COLORS and COLORS[color] == c0 else ("L" if c0 == 1 else "RGB")
        if stated.color and COLORS.get(stated.color) != c0:
            raise ModelError(f"--color {stated.color} does not match the model's {c0} input channels")
    return out


def _output(name: str, graph: Graph | None, wanted: str | None) -> str:
    """The graph output holding the class scores: the one there is, or the one ``--output`` names."""
    if graph is None:
        return wanted or ""
    names = [n for n, _ in graph.outputs]
    if wanted:
        if wanted not in names:
            raise ModelError(f"{name} has no output {wanted!r}; its outputs: {', '.join(names)}")
        return wanted
    if len(names) > 1:
        raise ModelError(f"{name} has {len(names)} outputs ({', '.join(names)}): pass --output NAME for the one "
                         "with the class scores")
    return ""


def _checked(spec: ModelSpec, graph: Graph | None, name: str) -> ModelSpec:
    """The spec against the graph: the input's fixed dimensions and the scores' row length must agree."""
    if graph is None:
        return spec
    shape = graph.inputs[0][1]
    c, h, w = spec.input_shape
    want = (h, w, c) if spec.layout == "NHWC" else (c, h, w)
    if len(shape) == 4 and any(d is not None and d != e for d, e in zip(shape[1:], want, strict=True)):
        graph_dims = "x".join("?" if d is None else str(d) for d in shape[1:])
        raise ModelError(f"{name} takes input {graph_dims} ({spec.layout}) but the spec says "
                         f"{'x'.join(map(str, want))}: check --input-shape, --crop and --layout")
    if len(shape) not in (0, 4):
        raise ModelError(f"{name} takes a {len(shape)}-dimensional input; an image classifier takes N, C, H, W "
                         "(or N, H, W, C)")
    out_shape = dict(graph.outputs).get(spec.output) if spec.output else graph.outputs[0][1]
    if out_shape and (len(out_shape) != 2 or out_shape[1] not in (None, spec.num_classes)):
        dims = "x".join("?" if d is None else str(d) for d in out_shape)
        raise ModelError(f"{name} gives outputs of shape {dims}, not one row of {spec.num_classes} class "
                         f"scores per image ({spec.num_classes} labels)")
    return spec


def with_outputs(spec: ModelSpec, kind: str) -> ModelSpec:
    """``spec`` saying its file's outputs are ``kind`` (logits or probabilities)."""
    return replace(spec, outputs=kind)
