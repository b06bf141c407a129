"""The training loop: one readable ``fit`` with checkpoints after every epoch and exact resume."""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgecv import __version__
from edgecv.core.calibration import at_bound, before_after, fit_temperature
from edgecv.core.errors import CheckpointError, EdgecvError, TrainingDiverged
from edgecv.core.fsutil import remove_stale_temps, write_json
from edgecv.core.history import write_history
from edgecv.core.metrics import classification_metrics, macro_scores
from edgecv.core.spec import ModelSpec
from edgecv.data import DataBundle
from edgecv.data.base import Split
from edgecv.data.batches import DeviceBatches, batches_for
from edgecv.models import create_model, keep_frozen_norms, param_groups, settle_batch_norms
from edgecv.rundir import RunDir, claim_run_dir, default_run_dir
from edgecv.train import distributed
from edgecv.train.checkpoint import config_to_resume, load_checkpoint, model_from_checkpoint, save_checkpoint
from edgecv.train.config import TrainConfig
from edgecv.train.device import amp_dtype, pick_device, set_deterministic
from edgecv.train.optim import build_optimizer, build_scheduler

EVAL_BATCH = 512
NAN_CHECK_EVERY = 20  # batches between non-finite loss checks (each check syncs a GPU)


class Reporter:
    """Progress hooks; the CLI supplies a rich implementation, library use stays silent."""

    def start(self, cfg: TrainConfig, data: DataBundle, run_dir: Path, first_epoch: int) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, loss: torch.Tensor) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...
    def note(self, message: str) -> None: ...
    def checking(self, done: int, total: int) -> None: ...  # a streamed folder's pass before training


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _State:
    """Everything a checkpoint restores."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    stopped_early: bool = False


class _Session:
    """The live objects of a run: model, optimiser, schedule, batches."""

    def __init__(self, cfg: TrainConfig, data: DataBundle, device: torch.device, load_weights: bool) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        set_deterministic(cfg.deterministic, device)
        torch.manual_seed(cfg.seed)
        c, size = data.input_shape[0], data.input_shape[1]
        options = cfg.model_options()
        if not load_weights:
            options.pop("weights", None)
        self.model = create_model(cfg.model, c, len(data.labels), size, **options).to(device)
        channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.dist = distributed.current()
        self.train_forward = distributed.wrap(self.forward, device)  # DistributedDataParallel on several ranks
        self.amp = amp_dtype(cfg.amp, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.train_batches = batches_for(
            data.train, data.mean, data.std, distributed.per_rank_batch(cfg.batch_size, self.dist), device,
            workers=cfg.workers, shuffle=True, shard=(self.dist.rank, self.dist.world),
            crop_pad=0 if data.random_crops or not cfg.augment else max(1, cfg.img_size // 16), pad_mode=data.pad_mode,
            flip=bool(cfg.flip), gen=self.gen, channels_last=channels_last, drop_last=True,
        )
        groups = param_groups(cfg.model, self.model, cfg.lr, options)
        self.optimizer = build_optimizer(groups, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, len(self.train_batches))
        self.spec = ModelSpec(
            labels=data.labels, input_shape=data.input_shape, mean=data.mean, std=data.std, color=data.color,
            resize=data.framing.resize, interpolation=data.framing.interpolation, arch=cfg.model, dataset=data.name,
            edgecv_version=__version__,
        )

    def batches(self, split: Split) -> DeviceBatches:
        d = self.data
        return batches_for(split, d.mean, d.std, EVAL_BATCH, self.device, workers=self.cfg.workers,
                             channels_last=self.train_batches.memory_format == torch.channels_last)

    def autocast(self):
        if self.amp is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "data": self.gen.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def restore(self, ckpt: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint does not fit model {self.cfg.model!r}: "
                                  f"{str(exc).splitlines()[0]}") from None
        rng = ckpt.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "data" in rng:
            self.gen.set_state(rng["data"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])

    def checkpoint(self, state: _State) -> dict[str, Any]:
        return {
            "edgecv_version": __version__,
            "epoch": state.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": self.rng_state(),
            "config": self.cfg.to_dict(),
            "spec": self.spec.to_dict(),
            "history": state.history,
            "best": {"val_loss": state.best_val_loss, "epoch": state.best_epoch},
            "bad_epochs": state.bad_epochs,
            "finished": state.finished, "stopped_early": state.stopped_early,
        }


def _train_epoch(s: _Session, reporter: Reporter) -> dict[str, float]:
    """One pass over the training split: mean loss, accuracy, macro precision/recall/F1 (of the predictions
    made while training, augmented) and images/s."""
    s.model.train()
    keep_frozen_norms(s.model)
    loss_sum = torch.zeros((), device=s.device)
    correct = torch.zeros((), device=s.device, dtype=torch.long)
    preds, labels = [], []
    seen = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(s.train_batches):
        with s.autocast():
            logits = s.train_forward(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=s.cfg.label_smoothing)
        s.optimizer.zero_grad(set_to_none=True)
        if s.scaler is not None:
            s.scaler.scale(loss).backward()
            s.scaler.unscale_(s.optimizer)
        else:
            loss.backward()
        if s.cfg.grad_clip:
            nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.grad_clip)
        if s.scaler is not None:
            s.scaler.step(s.optimizer)
            s.scaler.update()
        else:
            s.optimizer.step()
        if s.scheduler is not None:
            s.scheduler.step()
        loss_sum += loss.detach() * len(y)
        pred = logits.detach().argmax(1)
        correct += (pred == y).sum()
        preds.append(pred)
        labels.append(y)
        seen += len(y)
        reporter.step(loss.detach())
        if (i + 1) % NAN_CHECK_EVERY == 0 or i + 1 == len(s.train_batches):
            if not torch.isfinite(loss_sum):
                raise TrainingDiverged(
                    f"training diverged: the loss became {loss_sum.item()} at batch {i + 1}; "
                    "lower --lr or set --grad-clip. The last good checkpoint is kept"
                )
    if s.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    loss_sum, correct, total = distributed.sum_all(loss_sum, correct, torch.tensor(seen, device=s.device))
    seen = int(total.item())  # over every rank
    y_all, p_all = distributed.gather_all(torch.cat(labels)), distributed.gather_all(torch.cat(preds))
    scores = macro_scores(y_all.cpu().numpy(), p_all.cpu().numpy(), len(s.data.labels))
    return {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen,
            "train_precision": scores["precision"], "train_recall": scores["recall"], "train_f1": scores["f1"],
            "images_per_s": seen / max(seconds, 1e-9)}


@torch.no_grad()
def predict(s: _Session, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of ``split`` in eval mode, as float32 numpy arrays."""
    s.model.eval()
    out, ys = [], []
    for x, y in s.batches(split):
        with s.autocast():
            out.append(s.forward(x).float().cpu())
        ys.append(y.cpu())
    return torch.cat(out).numpy(), torch.cat(ys).numpy()


def _validate(s: _Session) -> dict[str, float]:
    logits, y = predict(s, s.data.val)
    t_logits, t_y = torch.from_numpy(logits), torch.from_numpy(y)
    loss = F.cross_entropy(t_logits, t_y).item()
    pred = logits.argmax(1)
    scores = macro_scores(y, pred, len(s.data.labels))
    return {"val_loss": loss, "val_acc": float((pred == y).mean()), "val_precision": scores["precision"],
            "val_recall": scores["recall"], "val_f1": scores["f1"]}


def _fit(run_dir: Path, s: _Session, state: _State, reporter: Reporter) -> TrainResult:
    cfg, paths = s.cfg, RunDir(run_dir)
    reporter.start(cfg, s.data, run_dir, state.epoch + 1)
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.finished:
            break
        reporter.epoch_start(epoch, cfg.epochs, len(s.train_batches))
        start = time.perf_counter()
        trained = _train_epoch(s, reporter)
        settle_batch_norms(s.model, (x for x, _ in s.batches(s.data.train)))  # statistics behind the weights
        val = _validate(s)
        row = {"epoch": epoch, **trained, **val, "lr": s.optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - start}
        state.epoch, main = epoch, s.dist.main  # every rank validates the same model; rank 0 alone writes
        state.history.append(row)
        if val["val_loss"] < state.best_val_loss:
            state.best_val_loss, state.best_epoch, state.bad_epochs = val["val_loss"], epoch, 0
            if main:
                save_checkpoint(paths.best, s.checkpoint(state))
        else:
            state.bad_epochs += 1
        if cfg.patience and state.bad_epochs >= cfg.patience:
            state.stopped_early = True
        state.finished = state.stopped_early or epoch == cfg.epochs
        if main:
            save_checkpoint(paths.last, s.checkpoint(state))
            write_history(paths.history, state.history)
        reporter.epoch_end(row)
        if state.stopped_early:
            reporter.note(f"early stop: validation loss has not improved for {cfg.patience} epochs")
    distributed.barrier()
    if not s.dist.main:  # rank 0 scores the test split and writes the results alone
        return TrainResult(run_dir, {}, state.best_epoch, state.epoch, state.stopped_early, state.history)
    return _finish(run_dir, s, state, reporter)


def _calibrate(s: _Session, reporter: Reporter) -> tuple[float, dict[str, Any]]:
    """Fit the temperature on the validation split (never the test split); 1.0 with --no-calibrate."""

    if not s.cfg.calibrate or len(s.data.val) == 0:
        return 1.0, {"temperature": 1.0, "fitted_on": None}
    logits, y = predict(s, s.data.val)
    temperature = fit_temperature(logits, y)
    val = before_after(logits, y, temperature)
    reporter.note(f"temperature {temperature:.3f} fitted on {len(y)} validation images: NLL "
                  f"{val['before']['nll']:.4f} -> {val['after']['nll']:.4f}, ECE {val['before']['ece']:.4f} -> "
                  f"{val['after']['ece']:.4f}")
    bound = at_bound(temperature)
    if bound:
        mistakes = int((logits.argmax(1) != y).sum())
        reporter.note(f"the temperature stopped at its bound: the validation split has {mistakes} mistakes, too few "
                      "to place it; scores may still be over- or under-confident")
    return temperature, {"temperature": temperature, "fitted_on": "val", "val_images": int(len(y)), "val": val,
                         "at_bound": bound}


def _finish(run_dir: Path, s: _Session, state: _State, reporter: Reporter) -> TrainResult:
    """Fit the temperature on the validation split, score the best checkpoint on the test split with it;
    write metrics.json and spec.json."""

    paths = RunDir(run_dir)
    best = load_checkpoint(paths.best)
    s.model.load_state_dict(best["model"])
    temperature, calib = _calibrate(s, reporter)
    logits, y = predict(s, s.data.test)
    probs = torch.softmax(torch.from_numpy(logits) / temperature, dim=1).numpy()
    metrics = classification_metrics(y, probs, s.data.labels)
    if calib["fitted_on"]:
        calib["test"] = before_after(logits, y, temperature)
    metrics.update(split="test", checkpoint="best", epoch=best["epoch"], calibration=calib)
    s.spec.temperature = temperature
    s.spec.metrics = {"test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
                      "test_macro_f1": metrics["macro_f1"], "best_epoch": best["epoch"],
                      "val_loss": state.best_val_loss, "temperature": temperature}
    best["spec"] = s.spec.to_dict()
    save_checkpoint(paths.best, best)
    write_json(paths.spec, s.spec.to_dict())
    write_json(paths.metrics, metrics)
    reporter.note(f"best epoch {best['epoch']} (lowest validation loss) scored on the test split; "
                  f"run saved in {run_dir}")
    return TrainResult(run_dir, metrics, best["epoch"], state.epoch, state.stopped_early, state.history)


def _join(cfg: TrainConfig, reporter: Reporter | None) -> tuple[torch.device, distributed.Dist, Reporter]:
    """The device, this process's place in a multi-process run, and its reporter (silent but on rank 0)."""
    device, dist = distributed.join(pick_device(cfg.device))
    return device, dist, (reporter or Reporter()) if dist.main else Reporter()


def _run(run_dir: Path, s: _Session, state: _State, reporter: Reporter) -> TrainResult:
    """Fit, turning a collective's failure into one line, and leave the process group."""
    for note in (distributed.describe(s.cfg.batch_size, s.cfg.lr, s.dist) if s.dist.active else None,
                 s.data.skipped_note()):
        if note:
            reporter.note(note)
    try:
        return _fit(run_dir, s, state, reporter)
    except RuntimeError as exc:
        raise distributed.lost(exc) from None
    finally:
        distributed.teardown()


def train(cfg: TrainConfig, reporter: Reporter | None = None, overwrite: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` into a new run directory and score it on the test split."""
    cfg = cfg.resolved()
    device, dist, reporter = _join(cfg, reporter)
    data = cfg.load_data(reporter.checking)
    session = _Session(cfg, data, device, load_weights=True)
    run_dir, problem = Path(cfg.out) if cfg.out else default_run_dir(cfg.model, cfg.data), None
    if dist.main:
        try:
            claim_run_dir(run_dir, overwrite)
        except EdgecvError as exc:
            problem = str(exc)
    run_dir, problem = distributed.share((run_dir, problem))
    if problem:
        raise EdgecvError(problem)
    cfg.out = str(run_dir)
    if dist.main:
        files = RunDir(run_dir)
        write_json(files.config, cfg.to_dict())
        write_json(files.spec, session.spec.to_dict())
    return _run(run_dir, session, _State(), reporter)


def resume(run_dir: Path | str, reporter: Reporter | None = None, device: str | None = None,
           trust_code: bool = False) -> TrainResult:
    """Continue a run from its last complete checkpoint, exactly as an uninterrupted run would go on
    (``trust_code``: although the user's module it was built from has changed since)."""
    reporter = reporter or Reporter()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EdgecvError(f"--resume {run_dir}: no such run directory")
    files = RunDir(run_dir)
    if not (last := files.last).is_file():
        raise CheckpointError(f"{run_dir} has no checkpoints/last.pt yet: nothing to resume")
    ckpt = load_checkpoint(last)
    cfg = config_to_resume(ckpt, last, trust_code)
    if device is not None:
        cfg.device = device
    remove_stale_temps(last.parent)
    remove_stale_temps(run_dir)
    best = ckpt.get("best", {})
    state = _State(epoch=int(ckpt["epoch"]), history=list(ckpt["history"]),
                   best_val_loss=float(best.get("val_loss", math.inf)), best_epoch=int(best.get("epoch", 0)),
                   bad_epochs=int(ckpt.get("bad_epochs", 0)), finished=bool(ckpt.get("finished")),
                   stopped_early=bool(ckpt.get("stopped_early")))
    if state.finished and files.metrics.is_file():  # no data or training session needed
        model_from_checkpoint(ckpt, last, trust_code=True)  # still refuse weights that do not fit the architecture
        reporter.note(f"{run_dir} already finished {state.epoch} epochs; nothing to do")
        metrics = json.loads(files.metrics.read_text())
        return TrainResult(run_dir, metrics, state.best_epoch, state.epoch, state.stopped_early, state.history)
    device, dist, reporter = _join(cfg, reporter)
    session = _Session(cfg, cfg.load_data(reporter.checking), device, load_weights=False)
    session.restore(ckpt)
    if dist.main:
        write_history(files.history, state.history)
    return _run(run_dir, session, state, reporter)
