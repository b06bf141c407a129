"""Training on several processes with PyTorch's own engine: torch.distributed.run (torchrun) starts them,
DistributedDataParallel averages their gradients, gloo (CPU) or NCCL (CUDA) carries the messages.

Every rank draws the same seeded permutation each epoch and takes every WORLD-th image of it, so global batch
``i`` holds exactly the images a single process would put in batch ``i``; ``--batch-size`` stays the global
batch (each rank gets ``batch_size / world``) and the learning rate therefore stays the single-process one.
Metrics are all-reduced; only rank 0 writes history, checkpoints, metrics and reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from edgecv.core.errors import EdgecvError

TIMEOUT_S = int(os.environ.get("EDGECV_DIST_TIMEOUT", "300"))  # a lost rank fails the others after this long


class PeerLost(EdgecvError):
    """Another rank stopped answering (it crashed, was killed, or its node went away)."""

    exit_code = 3

    @property
    def quiet(self) -> bool:
        """Under ``edgecv train --nproc`` the launcher reports the failed rank in one line instead."""
        return os.environ.get("EDGECV_LAUNCHER") == "1"


_PEER_SIGNS = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "timed out", "timeout")


def lost(exc: BaseException) -> BaseException:
    """A collective's failure as :class:`PeerLost`; any other error unchanged."""
    text = str(exc).strip()
    if _current.active and any(sign in text.lower() for sign in _PEER_SIGNS):
        first = text.splitlines()[0] if text else type(exc).__name__
        return PeerLost(f"rank {_current.rank} lost contact with the other ranks ({first[:200]}); the last "
                        "complete checkpoint is kept: resume with --resume")
    return exc


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size and local rank (one GPU per local rank)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0


_current = Dist()


def current() -> Dist:
    return _current


def setup(device_type: str) -> Dist:
    """Join the process group torchrun set up (WORLD_SIZE > 1 in the environment); a no-op otherwise."""
    global _current
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        _current = Dist()
        return _current
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    _current = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return _current


def teardown() -> None:
    global _current
    if _current.active:
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except RuntimeError:
                pass  # a peer is gone already; the process is ending anyway
    _current = Dist()


def per_rank_batch(batch_size: int, d: Dist) -> int:
    """Each rank's share of the global batch; the global batch must split evenly."""
    if batch_size % d.world:
        raise EdgecvError(f"--batch-size {batch_size} does not split evenly over {d.world} processes; pass a "
                          f"multiple of {d.world}")
    return batch_size // d.world


def sum_all(*values: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor summed over all ranks (unchanged in a single process)."""
    if not _current.active:
        return list(values)
    import torch.distributed as dist

    out = []
    for v in values:
        t = v.detach().clone()
        dist.all_reduce(t)
        out.append(t)
    return out


def gather_all(t: torch.Tensor) -> torch.Tensor:
    """Equal-length tensors from every rank, concatenated in rank order."""
    if not _current.active:
        return t
    import torch.distributed as dist

    parts = [torch.empty_like(t) for _ in range(_current.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def share(value: Any) -> Any:
    """Rank 0's value, on every rank."""
    if not _current.active:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _current.active:
        import torch.distributed as dist

        dist.barrier()


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module DistributedDataParallel-wrapped when this is a multi-process run."""
    if not _current.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def join(device: torch.device) -> tuple[torch.device, Dist]:
    """Join the run (see :func:`setup`); the device this rank trains on (one GPU per local rank)."""
    d = setup(device.type)
    if device.type == "cuda" and d.active:
        torch.cuda.set_device(d.local_rank)
        device = torch.device("cuda", d.local_rank)
    return device, d


def describe(batch_size: int, lr: float, d: Dist) -> str:
    """How the batch is split and why the learning rate stays, for the run's log."""
    return (f"{d.world} processes: global batch {batch_size} = {d.world} x {per_rank_batch(batch_size, d)} per "
            f"rank; lr {lr:g} as for one process, since the global batch is unchanged")


def launch(nproc: int, argv: list[str]) -> None:
    """Run ``edgecv ARGV`` on ``nproc`` local processes through torch.distributed.run, showing rank 0's
    output; a failed rank stops the others and becomes one error line."""
    if nproc < 1:
        raise EdgecvError(f"--nproc must be at least 1, got {nproc}")
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    for name in list(logging.root.manager.loggerDict):  # the launcher's own reports become our one line
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    args = get_args_parser().parse_args(["--standalone", "--nproc-per-node", str(nproc), "--max-restarts", "0",
                                         "--local-ranks-filter", "0", "--module", "edgecv", *argv])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    os.environ["EDGECV_LAUNCHER"] = "1"  # the ranks leave reporting a lost peer to this launcher
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code == EdgecvError.exit_code:  # a user error every rank meets alike: rank 0 has printed its line
            raise SystemExit(code) from None
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        raise EdgecvError(f"training stopped: rank {rank} failed ({how}); the other ranks were stopped and the "
                          "last complete checkpoint is kept") from None


def strip_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` (what each launched rank runs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out
