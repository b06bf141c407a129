"""Training throughput: edgecv's device-resident batches against a plain DataLoader pipeline.

Both sides train the same model (same init, AdamW, batch size, epochs) on the same digits images at
32x32 with the same augmentation (random crop, padding 2). The baseline is the usual tutorial pipeline:
a Dataset of PIL images, per-sample torchvision transforms (RandomCrop, ToTensor, Normalize), and a
torch DataLoader. Throughput is training images per second over the timed epochs (the first epoch is
a warm-up and is not counted); edgecv's figure is the one its own trainer records in history.csv.

Usage: python benchmarks/train_throughput.py [--models lenet5,cnn-bn] [--epochs 4] [--workers 0,2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from edgecv.data import load_dataset
from edgecv.models import MODELS, create_model
from edgecv.train import TrainConfig, train

SIZE, PAD, BATCH = 32, 2, 64


class PILDigits(Dataset):
    """The digits training split as PIL images, transformed per sample on access."""

    def __init__(self, x, y, mean, std):
        self.images = [Image.fromarray(img[0]) for img in x]
        self.labels = y.tolist()
        self.transform = transforms.Compose([
            transforms.RandomCrop(SIZE, padding=PAD),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def baseline_images_per_s(model_name: str, epochs: int, workers: int) -> float:
    data = load_dataset("digits", SIZE)
    loader = DataLoader(PILDigits(data.train.x, data.train.y, data.mean, data.std), batch_size=BATCH,
                        shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = create_model(model_name, 1, 10, SIZE)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    rates = []
    for epoch in range(epochs):
        model.train()
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        if epoch:  # epoch 0 is warm-up
            rates.append(seen / (time.perf_counter() - start))
    return statistics.mean(rates)


def edgecv_images_per_s(model_name: str, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainConfig(model=model_name, epochs=epochs, batch_size=BATCH, lr=2e-3,
                                   optimizer="adamw", img_size=SIZE, out=f"{tmp}/run"))
    return statistics.mean(row["images_per_s"] for row in result.history[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet5,cnn-bn")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", default="0,2", help="DataLoader num_workers values to compare against")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, digits {SIZE}x{SIZE}, "
          f"batch {BATCH}, {args.epochs - 1} timed epochs")
    header = f"{'model':<12}{'edgecv img/s':>14}" + "".join(f"{f'DataLoader w={w}':>18}{'ratio':>8}" for w in workers)
    print(header)
    for name in args.models.split(","):
        MODELS.get(name)
        ours = edgecv_images_per_s(name, args.epochs)
        cells = ""
        for w in workers:
            base = baseline_images_per_s(name, args.epochs, w)
            cells += f"{base:>18,.0f}{ours / base:>7.2f}x"
        print(f"{name:<12}{ours:>14,.0f}{cells}", flush=True)


if __name__ == "__main__":
    main()
