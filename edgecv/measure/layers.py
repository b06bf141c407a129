"""Which layer of a model file an engine's kernel belongs to, so per-layer times of an fp32 file and of the int8
file quantised from it line up row by row.

Engines rename what they run: ONNX Runtime names a fused or re-laid-out node after its output tensor with a
suffix (``/features.1/Relu_output_0_nchwc``), a quantised twin after its source node (``…/Conv_token_3``), a
fusion with a prefix (``fused …/Gemm``); OpenVINO appends what it split off (``…/Conv/WithoutBiases``) or
names a node after its output tensor (``logits``). A kernel's name is taken back to a node of the file's own
graph (the node itself, or the producer of the tensor it is named after), and from there to the layer's
anchor: elementwise steps after a convolution or matrix product (its activation, BatchNorm, residual add,
squeeze-excite scale), and quantise/dequantise steps between them, belong to that product, which is what an
engine fuses them into. The layer is the anchor node's name. Without the ``onnx`` package (the torch-free
install), the layer is the kernel's name without those suffixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = re.compile(r"(_quant|_nchwc|_token_\d+)+$", re.IGNORECASE)
PREFIX = "fused "
ANCHORS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "QLinearConv",
                     "QLinearMatMul"})
# steps an engine runs as the epilogue of the product before them, and the quantisation steps between them
EPILOGUE = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish",
                      "LeakyRelu", "PRelu", "Tanh", "Erf", "Gelu", "BatchNormalization", "Identity",
                      "QuantizeLinear", "DequantizeLinear"})
MAX_WALK = 32  # epilogue steps walked back at most


@dataclass
class LayerNamer:
    """The nodes of one file's graph, by name, and the producer of each tensor."""

    ops: dict[str, str] = field(default_factory=dict)  # node name -> op type
    first_input: dict[str, str] = field(default_factory=dict)  # node name -> the tensor it mainly reads
    producer: dict[str, str] = field(default_factory=dict)  # tensor -> the node that writes it

    @classmethod
    def of(cls, path: Path) -> LayerNamer:
        """The namer for the ONNX file ``path``; a names-only one where the onnx package is missing."""
        try:
            import onnx
        except ImportError:
            return cls()
        graph = onnx.load(str(path), load_external_data=False).graph
        namer = cls()
        for i, node in enumerate(graph.node):
            name = node.name or f"{node.op_type}_{i}"
            namer.ops[name] = node.op_type
            namer.first_input[name] = node.input[0] if node.input else ""
            for tensor in node.output:
                namer.producer[tensor] = name
        return namer

    def node_of(self, kernel: str) -> str | None:
        """The graph node a kernel's name comes from: the name, or the tensor it is named after, with the
        engine's suffixes dropped and then trailing path segments one by one."""
        name = SUFFIX.sub("", kernel.removeprefix(PREFIX))
        while name:
            if name in self.ops:
                return name
            if name in self.producer:
                return self.producer[name]
            name = name.rpartition("/")[0]
        return None

    def layer(self, kernel: str) -> str:
        """The layer a kernel belongs to: its node's anchor's name (see the module's docstring)."""
        node = self.node_of(kernel)
        if node is None:
            return SUFFIX.sub("", kernel.removeprefix(PREFIX)) or kernel
        walked = node
        for _ in range(MAX_WALK):
            if self.ops[walked] in ANCHORS:
                return walked
            if self.ops[walked] not in EPILOGUE:
                break
            before = self.producer.get(self.first_input[walked])
            if before is None:
                break
            walked = before
        return node
