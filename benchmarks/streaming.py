"""Memory and speed of folder data sets held in memory against streamed from disk.

Generates two image folders (5,000 and 50,000 small RGB PNGs, 10 classes, default 48x48) and, for each,
runs in fresh processes:

- ``edgecv train --model lenet5`` with ``--stream`` and with ``--no-stream``, for the same number of training
  steps on every folder (10 epochs of 5,000 images, 1 of 50,000), so that only the number of images differs;
- ``edgecv eval model.onnx`` (the torch-free path) on the test split, streamed and held in memory.

For every run it prints the peak resident memory of the command's own process (``wait4``'s ``ru_maxrss``)
and the peak of the summed proportional set size (PSS) of the whole process tree, DataLoader workers
included, sampled every 50 ms. Streaming memory should stay flat from 5,000 to 50,000 images; held in memory
it grows with the folder. Then, in this process, the images/s of the training loaders alone over one epoch
of the larger folder's training split (no model): edgecv's device-resident batches against the streamed
DataLoader batches, with the resident loader's up-front decoding time shown apart; and the training
images/s each run recorded in its history.csv.

Usage: python benchmarks/streaming.py [--counts 5000,50000] [--size 48] [--root DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgecv.core.cpu import host_cpu

MODEL = "lenet5"


def make_folder(root: Path, count: int, size: int) -> Path:
    """``count`` learnable RGB images: each class a colour and a stripe direction, with noise."""
    folder = root / f"images-{count}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    rng = np.random.default_rng(count)
    palette = rng.integers(40, 216, (10, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        label = i % 10
        stripes = np.sin((xx * np.cos(label) + yy * np.sin(label)) * 0.6)[..., None]
        img = palette[label] + 40 * stripes + rng.normal(0, 25, (size, size, 3))
        path = folder / f"class{label}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    done.touch()
    return folder


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split())
        except OSError:
            continue
    return found


def _pss(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def measured(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``cmd``; its peak RSS (largest process) and peak summed PSS of its process tree, and seconds."""
    start = time.perf_counter()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _pss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    sampler.join()
    log.seek(0)
    err = log.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return {"rss": usage.ru_maxrss * 1024, "pss": peak[0], "seconds": time.perf_counter() - start}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def loader_rates(folder: Path, size: int, workers: int) -> dict[str, float]:
    """Images/s of one epoch of each training loader over the folder's training split, no model."""
    import torch

    from edgecv.data import load_dataset
    from edgecv.data.batches import DeviceBatches, StreamBatches

    device = torch.device("cpu")
    start = time.perf_counter()
    resident = load_dataset(f"folder:{folder}", size, stream=False)
    decode_s = time.perf_counter() - start
    streamed = load_dataset(f"folder:{folder}", size, stream=True, check=False)
    rates = {"decode_s": decode_s, "images": len(resident.train)}
    mean, std = resident.mean, resident.std
    for name, batches in (
        ("resident", DeviceBatches(resident.train, mean, std, 128, device, shuffle=True, crop_pad=3, flip=True)),
        ("streamed", StreamBatches(streamed.train, mean, std, 128, device, shuffle=True, crop_pad=3, flip=True,
                                   workers=workers)),
    ):
        for _ in batches:  # warm-up epoch (starts the workers)
            break
        start, seen = time.perf_counter(), 0
        for x, _y in batches:
            seen += len(x)
        rates[name] = seen / (time.perf_counter() - start)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="5000,50000")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--root", type=Path, default=None, help="Keep the generated folders here.")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers [default: edgecv's].")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    root = args.root or Path(tempfile.mkdtemp(prefix="edgecv-stream-"))
    env = dict(os.environ, EDGECV_TRUST_FILE=str(root / "trusted.txt"))
    if args.workers is not None:
        env["EDGECV_WORKERS"] = str(args.workers)
    edgecv = [sys.executable, "-m", "edgecv"]
    cpu = host_cpu()
    print(f"{cpu.describe()}, {os.cpu_count()} cores; {args.size}x{args.size} RGB PNGs, {MODEL}, batch 128, the "
          f"same number of steps per folder; workers {env.get('EDGECV_WORKERS', 'default')}")
    # load torch, torchvision and onnxruntime from disk once, so the first measured run is not a cold start
    subprocess.run([sys.executable, "-c", "import torch, torchvision, onnxruntime"], check=True)
    rows, history = [], {}
    try:
        for count in counts:
            t = time.perf_counter()
            folder = make_folder(root, count, args.size)
            print(f"folder of {count:,} images ready ({time.perf_counter() - t:.0f} s)", flush=True)
            for mode in ("stream", "no-stream"):
                run = root / f"run-{count}-{mode}"
                shutil.rmtree(run, ignore_errors=True)
                epochs = max(1, round(counts[-1] / count))
                train = measured([*edgecv, "train", "--data", f"folder:{folder}", "--model", MODEL,
                                  "--epochs", str(epochs), "--img-size", str(args.size), "--color", "RGB",
                                  "--batch-size", "128",
                                  f"--{mode}", "--out", str(run), "--no-calibrate"], env)
                with open(run / "history.csv") as f:
                    history[(count, mode)] = float(list(csv.DictReader(f))[-1]["images_per_s"])  # last epoch
                rows.append((count, mode, "train", train))
                print(f"  train --{mode}, {epochs} epochs: {train['seconds']:.0f} s", flush=True)
                if mode == "stream":
                    subprocess.run([*edgecv, "export", str(run), "--format", "onnx"], env=env, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                onnx_file = root / f"run-{count}-stream" / "model.onnx"
                evaluated = measured([*edgecv, "eval", str(onnx_file), "--data", f"folder:{folder}", f"--{mode}"],
                                     env)
                rows.append((count, mode, "eval", evaluated))
        print(f"\n{'images':>8} {'command':<16} {'peak RSS':>10} {'peak PSS tree':>14} {'seconds':>8}")
        for count, mode, what, m in rows:
            print(f"{count:>8,} {what + ' --' + mode:<16} {_mib(m['rss']):>10} {_mib(m['pss']):>14} "
                  f"{m['seconds']:>8.1f}")
        print("\ngrowth from the smallest to the largest folder (peak RSS / peak PSS of the tree):")
        for what in ("train", "eval"):
            for mode in ("stream", "no-stream"):
                sel = [m for c, md, w, m in rows if md == mode and w == what]
                first, last = sel[0], sel[-1]
                print(f"  {what} --{mode}: {last['rss'] / first['rss']:.2f}x / {last['pss'] / first['pss']:.2f}x")
        print("\ntraining images/s of the last epoch, from history.csv (stream / held in memory):")
        for count in counts:
            s, r = history[(count, "stream")], history[(count, "no-stream")]
            print(f"  {count:>7,} images: {s:,.0f} / {r:,.0f} img/s = {s / r:.2f}x")
        rates = loader_rates(root / f"images-{counts[-1]}", args.size,
                             int(env.get("EDGECV_WORKERS", 0)) if "EDGECV_WORKERS" in env else _default_workers())
        print(f"\nloaders alone, one epoch of {rates['images']:,} training images (crop + flip, batch 128):")
        print(f"  resident {rates['resident']:,.0f} img/s (after {rates['decode_s']:.1f} s decoding the whole folder "
              f"up front), streamed {rates['streamed']:,.0f} img/s = {rates['streamed'] / rates['resident']:.2f}x")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


def _default_workers() -> int:
    from edgecv.data.stream import default_workers

    return default_workers()


if __name__ == "__main__":
    main()
