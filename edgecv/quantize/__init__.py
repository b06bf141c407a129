"""ONNX -> ONNX quantisation: int8 static (QDQ, calibrated), int8 dynamic and fp16, with an accuracy budget.

All three call onnxruntime.quantization (or its fp16 converter); edgecv adds the data (calibration from the
model's own training split), the measurement (validation and test accuracy before and after), the choice
of int8 flavour for the host CPU, the accuracy-aware fallback, and files that keep their ModelSpec.

Measured on a 2-core AMD EPYC without VNNI (AVX2), ONNX Runtime 1.32, batch 1 (``python
benchmarks/quantize_flavours.py``): ResNet-20 on digits with U8S8 and full 8-bit weights lost 13 points of
test accuracy to 16-bit saturation; with 7-bit weights (reduce_range) it lost none and ran 1.4x faster than
fp32, while S8S8 ran 1.8x slower than fp32. On a CIFAR-size ResNet-18, U8S8 with reduce_range ran 1.55x
faster than fp32 and S8S8 1.3x slower. Hence the per-CPU defaults in :func:`methods.default_flavour`.
"""

from edgecv.quantize.aware import BudgetError
from edgecv.quantize.run import output_path, quantize
from edgecv.quantize.types import (
           CALIB_METHODS,
           METHODS,
           QTYPES,
           MethodResult,
           QuantizeError,
           QuantizeOptions,
           QuantizeReport,
)

__all__ = ["CALIB_METHODS", "METHODS", "QTYPES", "BudgetError", "MethodResult", "QuantizeError",
           "QuantizeOptions", "QuantizeReport", "output_path", "quantize"]
