"""Torch-free basics every layer stands on: the ModelSpec, errors, registries, files, the host CPU, image
decoding and preprocessing, checked ONNX loading, trust, metrics and temperature calibration.
"""
