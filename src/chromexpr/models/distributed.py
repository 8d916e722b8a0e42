"""Process-group plumbing for training one network on several processes (``torchrun``).

``torchrun --nproc-per-node N -m chromexpr train ...`` starts N copies of ``chromexpr train``, each
with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``/``MASTER_PORT`` in its
environment. This module reads that environment (without importing torch, so that a plain run and
the non-neural models stay light), opens and closes the process group around the ``fc`` training
loop, and holds the few collectives the loop needs: sums of losses and counts, a decision broadcast
from rank 0, and a gather of the per-rank RNG states for checkpoints.

Outside ``torchrun`` (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) every helper is a no-op that returns
its input, so the training loop reads the same either way.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chromexpr.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DistInfo",
    "all_gather_objects",
    "barrier",
    "broadcast_flags",
    "broadcast_ints",
    "env_info",
    "exchange_rows",
    "is_active",
    "is_main_process",
    "process_group",
    "shard_bounds",
    "sum_across",
    "wrap_model",
]

#: Environment variable: seconds a rank waits for the others (process-group start and every
#: collective) before failing instead of hanging.
TIMEOUT_ENV = "CHROMEXPR_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands among the ``torchrun`` workers.

    Attributes
    ----------
    rank
        Global rank, 0 ... world_size - 1 (0 writes outputs and logs).
    local_rank
        Rank on this node (selects the GPU).
    world_size
        Number of processes training the one model.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from exc


def env_info() -> DistInfo:
    """This process's rank and world size from the ``torchrun`` environment (single process
    without it).

    Examples
    --------
    >>> import os
    >>> env_info() if "WORLD_SIZE" in os.environ else DistInfo()
    DistInfo(rank=0, local_rank=0, world_size=1)
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    if world > 1 and "MASTER_ADDR" not in os.environ:
        raise InputError(
            "WORLD_SIZE > 1 but MASTER_ADDR is not set", fix="start the processes with torchrun"
        )
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def is_main_process() -> bool:
    """Whether this process writes outputs and logs progress (rank 0, or no ``torchrun``)."""
    return env_info().main


def is_active() -> bool:
    """Whether a process group of more than one process is open."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _timeout() -> datetime.timedelta:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError as exc:
        raise InputError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from exc
    return datetime.timedelta(seconds=seconds)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[DistInfo]:
    """Open the default process group for the ``torchrun`` workers, close it on the way out.

    Backend ``nccl`` on CUDA (after selecting ``cuda:LOCAL_RANK``), ``gloo`` on CPU; waiting on the
    other ranks (start and collectives) fails after ``CHROMEXPR_DIST_TIMEOUT`` seconds (default
    1800) rather than hanging. A group that is already open (a caller opened it) is used and left
    open. Without ``torchrun`` nothing is opened.

    Parameters
    ----------
    device
        Device the model trains on (see :func:`chromexpr.models.fc_net.resolve_device`).

    Yields
    ------
    DistInfo
        This process's rank and the world size.
    """
    import torch
    import torch.distributed as dist

    info = env_info()
    if not info.distributed or dist.is_initialized():
        yield info
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend=backend,
        timeout=_timeout(),
        device_id=device if device.type == "cuda" else None,
    )
    try:
        yield info
    finally:
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` when a group is open
    (which also copies rank 0's parameters to every rank), else ``model`` itself."""
    if not is_active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _reduce_device() -> torch.device:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_across(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64), or ``values`` alone.

    Every rank gets the same numbers, so decisions taken from them agree.
    """
    if not is_active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def broadcast_ints(values: Sequence[int]) -> list[int]:
    """Rank 0's ``values`` on every rank, or ``values`` alone."""
    if not is_active():
        return [int(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=_reduce_device())
    dist.broadcast(t, src=0)
    return [int(v) for v in t.cpu()]


def broadcast_flags(flags: Sequence[bool]) -> list[bool]:
    """Rank 0's ``flags`` on every rank (early stopping decides once, for all)."""
    return [bool(v) for v in broadcast_ints([int(bool(f)) for f in flags])]


def barrier() -> None:
    """Wait until every rank gets here (nothing without a group)."""
    if is_active():
        import torch.distributed as dist

        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a group."""
    if not is_active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def exchange_rows(
    blocks: Sequence[np.ndarray], recv_counts: Sequence[int], rows: int
) -> list[np.ndarray]:
    """All-to-all of float32 rows: ``blocks[r]`` goes to rank ``r``; returns what each rank sent
    here (``recv_counts[r]`` rows from rank ``r``), in rank order.

    Every block is padded to ``rows`` rows, which must be the same on every rank (at least the
    largest block any rank sends), and one ``all_to_all_single`` with equal splits moves them (on
    NCCL through this rank's GPU). Equal splits, because gloo's uneven all-to-all can mismatch
    messages (pytorch/gloo#334; seen here on 2 CPU ranks). Every rank must call this at the same
    point.
    """
    import torch
    import torch.distributed as dist

    world = len(blocks)
    width = blocks[0].shape[1]
    if rows == 0:  # nothing to move anywhere (every rank knows it)
        return [np.zeros((0, width), dtype=np.float32) for _ in range(world)]
    send = np.zeros((world * rows, width), dtype=np.float32)
    for r, block in enumerate(blocks):
        send[r * rows : r * rows + block.shape[0]] = block
    device = _reduce_device()
    out = torch.empty((world * rows, width), dtype=torch.float32, device=device)
    dist.all_to_all_single(out, torch.from_numpy(send).to(device))
    got = out.cpu().numpy()
    return [got[r * rows : r * rows + int(n)] for r, n in enumerate(recv_counts)]


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` takes: contiguous, sizes differing by at most one.

    Examples
    --------
    >>> [shard_bounds(5, r, 2) for r in range(2)]
    [(0, 3), (3, 5)]
    >>> [shard_bounds(1, r, 3) for r in range(3)]
    [(0, 1), (1, 1), (1, 1)]
    """
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)
