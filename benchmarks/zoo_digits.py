"""Every zoo model trained with its defaults on the embedded digits: test accuracy and wall time.

This is the first table in docs/results.md. vgg16-transfer is left out: it needs a pretrained weights file.

Usage: python benchmarks/zoo_digits.py [--models mlp,lenet5] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from edgecv.core.cpu import host_cpu
from edgecv.models import MODELS, create_model
from edgecv.models.summary import summarize
from edgecv.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [n for n, e in MODELS.items() if not e.pretrained]
    parser.add_argument("--models", default=",".join(names))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {host_cpu().describe()}")
    print("| model | input | params | MACs | epochs | test accuracy | macro F1 | train time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        entry = MODELS.get(name)
        size = entry.input_size
        s = summarize(create_model(name, 1, 10, size), (1, size, size))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = train(TrainConfig(model=name, seed=args.seed, out=f"{tmp}/run"))
            seconds = time.perf_counter() - start
        m = result.metrics
        print(f"| {name} | 1x{size}x{size} | {s.total_params:,} | {s.macs / 1e6:.2f}M | {result.epochs_run} | "
              f"{m['accuracy']:.2%} | {m['macro_f1']:.4f} | {seconds:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
