"""The three quantisation methods, each a thin call into onnxruntime.quantization or its fp16 converter.

Every method turns a float model file into a quantised one and can leave named nodes in float, which is
what the accuracy-aware mode uses.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgecv.core.cpu import CpuInfo
from edgecv.core.errors import EdgecvError

METHODS = ("int8-static", "int8-dynamic", "fp16")
SUFFIX = {"int8-static": ".int8.onnx", "int8-dynamic": ".int8-dynamic.onnx", "fp16": ".fp16.onnx"}
CALIB_METHODS = ("minmax", "entropy", "percentile")
QTYPES = ("uint8", "int8")
CALIB_BATCH = 32
DYNAMIC_OPS = ("Conv", "MatMul", "Gemm")  # what quantize_dynamic replaces with integer kernels
TUNED_FOR = ("onnxruntime", "openvino")  # the engines an int8-static file can be shaped for (int8_static's docs)


@dataclass
class Int8Flavour:
    """Activation and weight types for int8 kernels, and why they were chosen."""

    activation_type: str
    weight_type: str
    reduce_range: bool
    reason: str


def default_flavour(cpu: CpuInfo) -> Int8Flavour:
    """The int8 flavour that runs fastest on ``cpu`` without losing accuracy (see the module docs)."""
    if cpu.x86 and cpu.vnni:
        return Int8Flavour("uint8", "int8", False, "x86 with VNNI: uint8 x int8 (U8S8) kernels, no saturation")
    if cpu.x86:
        return Int8Flavour("uint8", "int8", True,
                           "x86 without VNNI: U8S8 with 7-bit weights (reduce_range) to avoid 16-bit saturation")
    if cpu.arm:
        return Int8Flavour("int8", "int8", False, "ARM: symmetric int8 x int8 (S8S8) dot-product kernels")
    return Int8Flavour("int8", "int8", False, "unknown CPU: ONNX Runtime's default S8S8")


@dataclass
class Int8Settings:
    """Everything that decides an int8 model, recorded in its metadata."""

    activation_type: str
    weight_type: str
    reduce_range: bool
    per_channel: bool
    calib_method: str
    calib_size: int
    format: str = "QDQ"
    tuned_for: str = "onnxruntime"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    if name not in QTYPES:
        raise EdgecvError(f"quantisation type must be one of {', '.join(QTYPES)}, got {name!r}")
    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    """Keep onnxruntime.quantization's info and warning logs (and its tqdm bars) off the terminal."""
    names = ("onnxruntime", "onnxruntime.quantization", "root", "")
    loggers = [logging.getLogger(n) if n else logging.getLogger() for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class ArrayReader(CalibrationDataReader):
    """An onnxruntime.quantization calibration reader over prepared inputs, ``batch`` images at a time."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int = CALIB_BATCH) -> None:
        self.input_name, self.x, self.batch = input_name, x, batch
        self.pos = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.x):
            return None
        chunk = self.x[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return {self.input_name: chunk}

    def rewind(self) -> None:
        self.pos = 0

    def __len__(self) -> int:
        return len(self.x)


def calibration_reader(input_name: str, x: np.ndarray, fixed_batch: int | None) -> ArrayReader:
    """A reader that feeds ``x`` in batches the model accepts (its fixed batch size, if it has one)."""
    batch = fixed_batch or CALIB_BATCH
    usable = len(x) - len(x) % batch if fixed_batch else len(x)
    if usable == 0:
        raise EdgecvError(f"the model takes batches of exactly {batch}; pass --calib-size {batch} or more")
    return ArrayReader(input_name, x[:usable], batch)


def int8_static(prepared: Path, out: Path, settings: Int8Settings, reader: ArrayReader, cache: Path,
                exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> None:
    """QDQ int8 with calibrated activation ranges. Where onnxruntime can cache calibration (1.26 and newer),
    the ranges are computed once and kept in ``cache``, which makes the accuracy-aware search cheap.

    The settings are the winners of levers measured as int8/fp32 speed ratios in one run (resnet, random
    weights, 2-core AMD EPYC with AVX-512 VNNI, onnxruntime 1.32; host limit 3.74x, see
    benchmarks/int8_limit.py): batch 1 / batch 64 with these defaults 1.60x / 2.49x; QOperator instead of QDQ
    1.54x / 2.45x (no gain); per-tensor weights 1.63x / 2.47x (no gain, per-channel keeps accuracy); quantising
    only Conv/Gemm/MatMul, leaving residual Adds in float, 1.36x / 2.00x (worse: each float Add costs a Q/DQ
    pair); S8S8 with symmetric activations 0.50x / 0.76x (no VNNI path); skipping quant_pre_process 0.45x /
    0.75x. On mobilenet-v2, leaving the 17 depthwise convolutions in float fell from 1.26x / 1.89x to 0.21x /
    0.38x. With one intra-op thread for both files the batch-1 ratios rise (resnet 2.00x, vgg 2.56x,
    mobilenet-v2 1.69x): small int8 convolutions gain less from a second thread than fp32 ones.

    Per layer (ONNX Runtime's profiler, batch 64, same host and run): the int8 kernel of a convolution with one
    input channel (the first layer of every grayscale preset) is 2-3x slower than its fp32 kernel, since it
    misses the VNNI direct-convolution path (that needs input channels in multiples of 4). Leaving that one
    layer in float still does not pay: the quantise step it then needs on its full-size output costs as much
    (batch 1 / batch 64: resnet 1.64x / 2.02x -> 1.60x / 1.82x, mobilenet-v2 1.24x / 2.27x -> 1.25x / 2.31x,
    vgg 2.17x / 2.57x -> 2.21x / 2.59x, lenet5 0.73x / 0.28x -> 0.82x / 0.33x, still slower than fp32). So no
    layer is left in float for speed; where the whole file is slower, quantize says so (quantize/speed.py).
    The remaining gap to the host's limit sits in the QLinearConv kernels themselves: their time against the
    fp32 Conv kernels' reaches 56-62% of the limit on resnet, vgg and mobilenet-v2 (benchmarks/int8_limit.py),
    and whole models land near that figure.

    ``tuned_for="openvino"`` shapes the file for OpenVINO, whose convolutions take a float activation and a
    requantisation as fused post-ops: convolution outputs are left unquantised, and the x * Sigmoid(x) (SiLU) gates
    and every squeeze-excite block (pool, 1x1 convolutions, gate, scale) stay in float (quantize keeps them), and
    hard-swish is one op again (graph.fuse_hard_swish). Measured on torchvision models at 224 (random weights,
    batch 1 p50 / batch 8 img/s against OpenVINO's fp32 in one interleaved run, 2-core Intel Xeon with AVX-512
    VNNI): mobilenet_v3_large 0.63x / 0.76x as ONNX Runtime's file -> 1.18x / 1.44x with the convolution outputs,
    hard-swish and SiLU so -> 1.45x / 1.83x (against 1.35x / 1.73x in that run) with the SE blocks too;
    efficientnet_b0 0.70x / 0.68x -> 0.91x / 1.07x -> 1.49x / 1.41x (against 1.12x / 1.09x); resnet18 4.99x /
    6.11x -> 4.67x / 5.51x (plain ReLU nets gain nothing, and have no SE block). On ONNX Runtime the same file is
    slower than its own (mobilenet_v3_large 0.41x fp32's speed): its integer convolutions need a quantised output
    to fuse, so the two engines get different files."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.calib_method]
    reader.rewind()
    extra: dict[str, Any] = {}
    if settings.tuned_for == "openvino":  # its SiLU gates and SE blocks come in ``exclude`` (run._float_gates)
        extra["extra_options"] = {"OpTypesToExcludeOutputQuantization": ["Conv"]}
    cached: dict[str, Any] = {}
    if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        cached["calibration_cache_path"] = str(cache)
    with quiet_quantizer():
        quantize_static(
            str(prepared), str(out), None if cached and cache.is_file() else reader,
            quant_format=QuantFormat.QDQ, per_channel=settings.per_channel, reduce_range=settings.reduce_range,
            activation_type=_qtype(settings.activation_type), weight_type=_qtype(settings.weight_type),
            nodes_to_exclude=list(exclude), nodes_to_quantize=list(only) if only is not None else None,
            calibrate_method=method, **cached, **extra,
        )


def int8_dynamic(prepared: Path, out: Path, settings: Int8Settings, exclude: Sequence[str] = (),
                 only: Sequence[str] | None = None) -> None:
    """int8 weights, activations quantised at run time (uint8, as ONNX Runtime's integer kernels take)."""
    from onnxruntime.quantization import quantize_dynamic

    with quiet_quantizer():
        quantize_dynamic(
            str(prepared), str(out), per_channel=settings.per_channel, reduce_range=settings.reduce_range,
            weight_type=_qtype(settings.weight_type), nodes_to_exclude=list(exclude),
            nodes_to_quantize=list(only) if only is not None else None,
        )


def fp16(source: Path, out: Path, exclude: Sequence[str] = ()) -> None:
    """float16 weights and compute; inputs and outputs stay float32 so callers feed the same arrays.

    The converter's block list keeps the ops that must stay float32 (TopK, Range, Resize scales, ...);
    ONNX Runtime's CPU provider casts around any op it lacks an fp16 kernel for, so the file runs there too
    (every zoo model is tested on it)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(source))
    with quiet_quantizer():
        converted = convert_float_to_float16(
            model, keep_io_types=True, node_block_list=list(exclude) or None,
        )
        OnnxModel(converted).topological_sort()  # the converter appends its input casts at the end
    onnx.save(converted, str(out))


def quantized_nodes(method: str, prepared: Any, quantized: Any) -> list[str]:
    """Names of the float model's nodes that ``method`` turned into quantised computation: the candidates
    the accuracy-aware mode may return to float."""
    by_name = {node.name: node for node in quantized.graph.node}
    producer = {out: node.op_type for node in quantized.graph.node for out in node.output}
    names = []
    for node in prepared.graph.node:
        q = by_name.get(node.name)
        if method == "int8-static":
            if q is not None and q.op_type not in ("QuantizeLinear", "DequantizeLinear") and any(
                    producer.get(i) == "DequantizeLinear" for i in q.input):
                names.append(node.name)
        elif method == "int8-dynamic":
            if q is None and node.op_type in DYNAMIC_OPS:
                names.append(node.name)
    return names

