"""`edgecv train`: train a zoo model on a data set into a run directory (or resume one)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgecv.cli.common import TRUST_CODE, err, out, run_guarded
from edgecv.core.errors import EdgecvError
from edgecv.rundir import RunDir

LOSS_REFRESH = 10  # batches between live-loss updates (each reads the loss back from the device)


class RichReporter:
    """Progress bar per epoch on stderr; one result line per epoch on stdout."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None
        self.steps = 0
        self.best = float("inf")
        self.epochs = 0
        self.run_dir: Path | None = None
        self.epochs_done = 0

    def start(self, cfg, data, run_dir: Path, first_epoch: int) -> None:
        c, h, w = data.input_shape
        self.run_dir, self.best, self.epochs_done = run_dir, float("inf"), first_epoch - 1
        verb = "Resuming" if first_epoch > 1 else "Training"
        out.print(f"[bold]{verb}[/] {cfg.model} on {escape(data.name)} ({c}x{h}x{w}, {len(data.labels)} classes: "
                  f"{len(data.train)} train / {len(data.val)} val / {len(data.test)} test"
                  f"{_streamed(cfg, data) if data.streamed else ''}) "
                  f"for {cfg.epochs} epochs, {cfg.optimizer} lr {cfg.lr:g} {cfg.schedule}, seed {cfg.seed} "
                  f"-> {escape(str(run_dir))}", soft_wrap=True)
        if first_epoch > cfg.epochs:
            out.print("all epochs are done; scoring the best checkpoint")

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs
        self.steps = 0
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=err, transient=True,
            disable=not err.is_terminal,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, loss="...")

    def step(self, loss) -> None:
        self.steps += 1
        fields: dict[str, Any] = {}
        if self.steps % LOSS_REFRESH == 1:
            fields["loss"] = f"{loss.item():.4f}"
        self.progress.update(self.task, advance=1, **fields)

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.epochs_done = row["epoch"]
        mark = ""
        if row["val_loss"] < self.best:
            self.best, mark = row["val_loss"], " [green]*best[/]"
        width = len(str(self.epochs))
        out.print(f"epoch {row['epoch']:>{width}}/{self.epochs}  train loss {row['train_loss']:.4f} "
                  f"acc {row['train_acc']:6.2%}  val loss {row['val_loss']:.4f} acc {row['val_acc']:6.2%} "
                  f"F1 {row['val_f1']:.3f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s "
                  f"{row['images_per_s']:,.0f} img/s{mark}", soft_wrap=True)

    def checking(self, done: int, total: int) -> None:
        """A streamed folder's one decoding pass before training: a bar of images checked."""
        if self.progress is None or self.task is None or done == 0:
            self.progress = Progress(TextColumn("checking images"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal)
            self.progress.start()
            self.task = self.progress.add_task("check", total=total)
        self.progress.update(self.task, completed=done)
        if done >= total:
            self.progress.stop()
            self.progress, self.task = None, None

    def note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.stop()
        out.print(escape(message), soft_wrap=True)

    def interrupt_hint(self) -> str:
        """What a Ctrl-C leaves behind and how to continue."""
        if self.run_dir is None or self.epochs_done == 0:
            return ""
        return f"; epoch {self.epochs_done} is saved, continue with: edgecv train --resume {self.run_dir}"


def _streamed(cfg, data) -> str:
    from edgecv.data.stream import default_workers

    workers = default_workers(cfg.workers)
    how = f", streamed from disk by {workers} DataLoader workers" if workers else ", streamed from disk"
    return how + (", random-resized crops of each whole image" if data.random_crops else "")


def _check_split(batch_size: int, nproc: int) -> None:
    """Refuse a global batch that does not split over the processes before any of them starts."""
    from edgecv.train import distributed

    distributed.per_rank_batch(batch_size, distributed.Dist(world=nproc))


def parse_lrs(text: str) -> list[float]:
    """``"0.1,0.01"`` -> [0.1, 0.01]; every value must be a positive number."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgecvError(f"--lr takes a number or a comma-separated list of numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise EdgecvError(f"--lr values must be positive, got {text!r}")
    if len(set(values)) != len(values):
        raise EdgecvError(f"--lr lists a value twice: {text!r}")
    return values


def _print_metrics(metrics: dict[str, Any]) -> None:
    if not metrics:  # a rank other than 0 of a multi-process run: rank 0 prints
        return
    table = Table(title="test split, per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in metrics["per_class"]:
        table.add_row(escape(row["label"]), f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                      str(row["support"]))
    out.print(table)
    out.print(f"[bold]test accuracy {metrics['accuracy']:.2%}[/], loss {metrics['loss']:.4f}, "
              f"macro F1 {metrics['macro_f1']:.4f} on {metrics['num_samples']} images", soft_wrap=True)


def _print_sweep(rows: list[dict[str, Any]]) -> None:
    table = Table(title="learning-rate sweep (best first, by validation loss)")
    for col in ("lr", "best epoch", "val loss", "val acc", "test acc", "test macro F1", "run"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in rows:
        table.add_row(f"{r['lr']:g}", str(r["best_epoch"]), f"{r['val_loss']:.4f}", f"{r['val_acc']:.2%}",
                      f"{r['test_accuracy']:.2%}", f"{r['test_macro_f1']:.4f}", escape(r["run_dir"]))
    out.print(table)


def train_cmd(
    data: str = typer.Option(None, "--data", "-d",
                             help="Data set (`edgecv datasets`) or folder:PATH [default: digits]."),
    model: str = typer.Option(None, "--model", "-m",
                              help="A built-in model (`edgecv models`), torchvision:NAME, timm:ARCH.TAG, or your own "
                                   "path/net.py:factory or package.module:factory, where factory(num_classes) "
                                   "returns an nn.Module: this imports and runs that code [default: cnn-bn]."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Epochs [default: the model's]."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Batch size [default: the model's]."),
    lr: str = typer.Option(None, "--lr", help="Learning rate, or a comma list (0.1,0.01) for a sweep."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd | adam | adamw [default: the model's]."),
    schedule: str = typer.Option(None, "--schedule", help="constant | cosine | one-cycle [default: the model's]."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="Weight decay (not on biases/norms)."),
    momentum: float = typer.Option(None, "--momentum", help="SGD momentum [default: 0.9]."),
    nesterov: bool = typer.Option(None, "--nesterov/--no-nesterov", help="SGD Nesterov momentum [default: on]."),
    label_smoothing: float = typer.Option(None, "--label-smoothing",
                                          help="Label smoothing [default: the model's, 0.1 for lenet5]."),
    grad_clip: float = typer.Option(None, "--grad-clip", help="Clip the gradient norm to this value."),
    patience: int = typer.Option(None, "--patience", help="Early stop after N epochs without better val loss."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Run directory [default: runs/MODEL-DATA]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    seed: int = typer.Option(None, "--seed", help="Seed for init, shuffling, augmentation [default: 0]."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda [default: auto]."),
    resume_dir: Path = typer.Option(None, "--resume", help="Continue RUN_DIR from its last checkpoint."),
    trust_code: bool = TRUST_CODE,
    img_size: int = typer.Option(None, "--img-size", help="Resize images to S x S [default: the model's]."),
    color: str = typer.Option(None, "--color", help="Convert images to L or RGB [default: the data's]."),
    augment: bool = typer.Option(None, "--augment/--no-augment",
                                 help="Random crops with padding; for a torchvision or timm model on a folder, "
                                      "torchvision's random-resized crops of each whole image [default: on]."),
    flip: bool = typer.Option(None, "--flip/--no-flip", help="Horizontal flips [default: the data set's]."),
    data_root: Path = typer.Option(None, "--data-root", help="Folder of torchvision data sets [default: data]."),
    download: bool = typer.Option(None, "--download", help="Download torchvision data sets if missing."),
    weights: Path = typer.Option(None, "--weights", help="Starting weights: a state dict or checkpoint file, or a "
                                 "torchvision weights name (DEFAULT, IMAGENET1K_V2; downloads) for torchvision:NAME, "
                                 "DEFAULT (the hub) for timm:NAME; vgg16-transfer needs a VGG16 file."),
    freeze: bool = typer.Option(None, "--freeze/--unfreeze", help="Train the head alone, the rest frozen "
                                 "(BatchNorm statistics kept) [default: on for vgg16-transfer, else off]."),
    feature_lr_scale: float = typer.Option(None, "--feature-lr-scale", help="Feature LR = lr x this (unfrozen)."),
    amp: str = typer.Option(None, "--amp", help="CUDA mixed precision: auto | bf16 | fp16 | off."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last", help="[default: on CUDA]"),
    compile_model: bool = typer.Option(None, "--compile", help="torch.compile the model (CUDA)."),
    deterministic: bool = typer.Option(None, "--deterministic", help="Deterministic kernels."),
    keep_going: bool = typer.Option(None, "--keep-going",
                                    help="Leave out a folder's unreadable images (listed) instead of refusing it."),
    stream: bool = typer.Option(None, "--stream/--no-stream",
                                help="Folder data: decode images from disk batch by batch (DataLoader workers) "
                                     "instead of holding them in memory [default: when the folder would take more "
                                     "than EDGECV_RESIDENT_MB, 1024, and always for a torchvision or timm model "
                                     "trained with augmentation]."),
    workers: int = typer.Option(None, "--workers",
                                help="DataLoader processes decoding a streamed folder [default: one per core, "
                                     "at most 4]; 0 decodes in the training process."),
    nproc: int = typer.Option(None, "--nproc",
                              help="Train on N local processes (torch.distributed.run; gloo on CPU, NCCL on CUDA). "
                                   "--batch-size stays the global batch."),
    calibrate: bool = typer.Option(None, "--calibrate/--no-calibrate",
                                   help="Fit a temperature on the validation split so scores read as probabilities; "
                                        "exported files apply it [default: on]."),
) -> None:
    """Train a model; writes checkpoints, history.csv and test metrics into a run directory.

    Example: edgecv train --data digits --model lenet5 --epochs 30
    """
    settings = dict(
        data=data, model=model, epochs=epochs,
        batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule, weight_decay=weight_decay,
        momentum=momentum, nesterov=nesterov, label_smoothing=label_smoothing, grad_clip=grad_clip,
        patience=patience, out=out_dir, seed=seed, img_size=img_size, color=color, augment=augment, flip=flip,
        data_root=data_root, download=download, weights=weights, freeze=freeze,
        feature_lr_scale=feature_lr_scale, amp=amp, channels_last=channels_last, compile=compile_model,
        deterministic=deterministic, calibrate=calibrate, keep_going=keep_going, stream=stream, workers=workers,
    )

    reporter = RichReporter()

    def body() -> None:
        if nproc is not None and nproc < 1:
            raise EdgecvError(f"--nproc must be at least 1, got {nproc}")
        launch = nproc is not None and nproc > 1 and "WORLD_SIZE" not in os.environ  # not yet under torchrun
        if resume_dir is not None:
            _resume(resume_dir, settings, overwrite, nproc if launch else None, device, reporter, trust_code)
        else:
            _new_run(settings, device, overwrite, nproc if launch else None, reporter)

    run_guarded(body, interrupt_hint=reporter.interrupt_hint)


def _resume(resume_dir: Path, settings: dict[str, Any], overwrite: bool, launch_nproc: int | None,
            device: str | None, reporter: RichReporter, trust_code: bool = False) -> None:
    """--resume: the run's own settings (only --device may change), on this process or ``launch_nproc``."""
    from edgecv.train import distributed, resume

    given = sorted("--" + k.replace("_", "-") for k, v in settings.items() if v is not None)
    if overwrite:
        given.append("--overwrite")
    if given:
        raise EdgecvError(f"--resume continues the run with its own settings; drop {', '.join(given)} "
                          "(only --device may change)")
    if launch_nproc:
        try:  # the run's resolved settings, without loading its weights; the ranks check the rest
            batch = json.loads(RunDir(resume_dir).config.read_text())["batch_size"]
        except (OSError, ValueError, KeyError, TypeError):
            batch = None
        if isinstance(batch, int):
            _check_split(batch, launch_nproc)
        distributed.launch(launch_nproc, distributed.strip_nproc(sys.argv[1:]))
        return
    _print_metrics(resume(resume_dir, reporter, device=device, trust_code=trust_code).metrics)


def _new_run(settings: dict[str, Any], device: str | None, overwrite: bool, launch_nproc: int | None,
             reporter: RichReporter) -> None:
    """A new run, a learning-rate sweep (--lr a,b,...), or ``launch_nproc`` ranks of one run."""
    from edgecv.train import TrainConfig, distributed, train
    from edgecv.train.sweep import sweep

    given = {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items() if v is not None}
    given["device"] = device or "auto"
    lrs = parse_lrs(given.pop("lr")) if "lr" in given else None
    cfg = TrainConfig(**given)
    if launch_nproc:
        if lrs and len(lrs) > 1:
            raise EdgecvError("--nproc trains one run; a learning-rate sweep runs its runs one after another")
        _check_split(cfg.resolved().batch_size, launch_nproc)
        distributed.launch(launch_nproc, distributed.strip_nproc(sys.argv[1:]))
        return
    if lrs and len(lrs) > 1:
        _print_sweep(sweep(cfg, lrs, reporter, overwrite=overwrite))
        return
    if lrs:
        cfg.lr = lrs[0]
    _print_metrics(train(cfg, reporter, overwrite=overwrite).metrics)
