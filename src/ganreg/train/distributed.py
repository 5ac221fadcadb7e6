"""Data-parallel training under ``torchrun``: one process per device, each on its own share of every batch.

Launched as ``torchrun --nproc_per_node N -m ganreg.cli run RECIPE.json``: torchrun sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``, and :func:`from_environment` joins the process group (NCCL on CUDA, gloo on
the CPU). ``train.batch_size`` is per process, as in DF-GAN's DDP code: a step sees ``N * batch_size``
images, each process a disjoint slice (:class:`ganreg.data.SeededRandomSampler`).

Gradients are averaged over the processes after each network's backward (:func:`average_gradients`),
not by wrapping the networks in ``DistributedDataParallel``: the training step calls D's ``features`` and
``logits`` separately and differentiates D twice for gradient penalties, which DDP's forward hooks do not
follow. Every process holds the same weights (the same seed builds them, and rank 0's are broadcast
before the first step), so each G and D step is the same on every process. BatchNorm statistics stay per
process (no SyncBatchNorm). Process 0 alone writes the run directory.
"""

from __future__ import annotations

import atexit
import datetime
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn

from ganreg.errors import UserError

TIMEOUT = datetime.timedelta(hours=2)
"""How long a collective waits: long enough for process 0's evaluation during training or text-encoder
pretraining, while the others wait at their next collective."""


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one, when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Process 0: the one that writes the run directory and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


SINGLE = Processes()


def from_environment(device: str | None) -> Processes:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (once per process); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and (device or "auto") != "cpu"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        atexit.register(_leave)
    return Processes(rank, world, local)


def _leave() -> None:
    """Wait for the other processes, then destroy the process group (at exit, or in :func:`exit_finished`)."""
    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except Exception:  # another process is gone already: nothing left to wait for
        pass
    dist.destroy_process_group()


def exit_finished(code: int) -> NoReturn:
    """End a torchrun process whose command has finished: leave the process group, flush, and exit without
    the interpreter's and C++'s teardown. In that teardown a gloo process aborted now and then ("terminate
    called without an active exception", SIGABRT) after its run had finished and saved, and torchrun then
    reported the whole run as failed."""
    _leave()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def process_device(device: str | None, procs: Processes) -> str | None:
    """Each process's own GPU under torchrun (``cuda:LOCAL_RANK``); the choice as given otherwise."""
    if not procs.distributed or (device or "auto") == "cpu" or not torch.cuda.is_available():
        return device
    if device not in (None, "auto", "cuda"):
        raise UserError(
            f"--device {device} names one GPU, but torchrun starts {procs.world} processes, one per GPU",
            "leave --device out (or give 'cuda'): each process takes cuda:LOCAL_RANK",
        )
    return f"cuda:{procs.local_rank}"


def broadcast_object(value: Any, procs: Processes) -> Any:
    """Process 0's ``value`` on every process."""
    if not procs.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: Any, procs: Processes) -> list[Any]:
    """Every process's ``value``, in rank order."""
    if not procs.distributed:
        return [value]
    out: list[Any] = [None] * procs.world
    dist.all_gather_object(out, value)
    return out


def barrier(procs: Processes) -> None:
    if procs.distributed:
        dist.barrier()


def broadcast_modules(modules: Iterable[nn.Module], procs: Processes) -> None:
    """Process 0's parameters and buffers on every process (the seed builds them alike; this makes sure)."""
    if not procs.distributed:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.Tensor], procs: Processes) -> None:
    """Replace each gradient by its mean over the processes: one all-reduce per dtype, on a flat copy.

    A parameter without a gradient on this process (a term computed only on some steps) takes part with
    zeros, so that every process sends the same tensors; one that no process gave a gradient stays None.
    """
    if not procs.distributed:
        return
    params = [p for p in params if p.requires_grad]
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                       device=params[0].device if params else "cpu")
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    live = [p for p, h in zip(params, has.tolist()) if h]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in live:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat /= procs.world
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


def any_process(flags: tuple[bool, ...], device: torch.device, procs: Processes) -> tuple[bool, ...]:
    """Each flag true on every process when it is true on any (stopping together: Ctrl-C, the time limit);
    one all-reduce for all of them, as the training loop asks on every step."""
    if not procs.distributed:
        return flags
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def mean_over_processes(t: torch.Tensor, procs: Processes) -> torch.Tensor:
    """The elementwise mean of ``t`` over the processes (NaN anywhere stays NaN: divergence is seen by all)."""
    if not procs.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / procs.world
