"""Embed edgecv's Predictor in an app: load a model once, classify images, print the answers.

Usage: python examples/embed_predictor.py MODEL.onnx IMAGE [IMAGE ...]
Needs only the base install (numpy, onnxruntime, Pillow): no torch.
"""

import sys

from edgecv import InvalidImageError, Predictor

predictor = Predictor(sys.argv[1], top_k=3)  # reads labels and preprocessing from the model file
print(f"classes: {', '.join(predictor.labels)}")
for path in sys.argv[2:]:
    try:
        result = predictor.predict(path)  # also takes bytes, a PIL image or a uint8 numpy array
    except InvalidImageError as exc:
        print(f"{path}: skipped ({exc})")
        continue
    others = ", ".join(f"{label} {score:.2f}" for label, score in result.topk[1:])
    print(f"{path}: {result.label} ({result.score:.1%}); then {others}")
