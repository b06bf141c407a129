"""Measuring model files: the metrics suite on a split (evaluate), timing rounds, intervals and paired tests
(stats), isolated memory and cold start (memprobe), verdicts and the bench harness. Torch-free for ONNX files.
"""
