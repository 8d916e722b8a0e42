"""Training rows held on the training device: whether they fit (:func:`plan_residence`) and the
held rows themselves (:class:`ResidentRows`).

When every training row fits in the device's memory the rows are loaded once (through the
streaming :class:`~chromexpr.models.loader.RowLoader`, unshuffled) into one tensor on the device, in
float32 or, where float32 does not fit, float16 (relative rounding at most 2**-11 per value;
``docs/models.md``). Each epoch's batches are the streaming loader's very batches (same order,
computed from the roles alone), gathered on the device: no host work per batch, and the same model
whether the rows were held or streamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from chromexpr.models.loader import RowLoader, default_threads

__all__ = [
    "DEVICE_RESERVE",
    "FLOAT16_MAX",
    "HOST_SHARE",
    "DataOnDevice",
    "Residence",
    "ResidentDtype",
    "ResidentRows",
    "free_memory",
    "plan_residence",
]

DataOnDevice = Literal["auto", "yes", "no"]
ResidentDtype = Literal["auto", "float32", "float16"]
#: Device memory kept free for the network, its optimiser and a batch's activations (bytes), and
#: the share of host memory resident rows may take on a CPU.
DEVICE_RESERVE = 2 * 1024**3
HOST_SHARE = 0.5
#: Largest magnitude float16 holds; rows beyond it stay in float32 or are streamed.
FLOAT16_MAX = 65504.0


@dataclass(frozen=True)
class Residence:
    """Where the training rows live and why (``plan_residence``'s answer).

    Attributes
    ----------
    resident
        Rows held on the device (else streamed from the store).
    dtype
        ``float32`` or ``float16`` (resident rows only).
    needed, available
        Bytes the resident rows take in float32, and the bytes the rule allows on the device.
    reason
        One line for the log.
    """

    resident: bool
    dtype: str
    needed: int
    available: int
    reason: str


def free_memory(device: Any) -> int:
    """Free bytes on ``device`` (a torch device): CUDA's free memory, or the host's available
    memory on a CPU."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def plan_residence(
    choice: DataOnDevice,
    n_rows: int,
    n_features: int,
    device: Any,
    *,
    dtype: ResidentDtype = "auto",
    free: int | None = None,
    distributed: bool = False,
) -> Residence:
    """Decide whether training rows are held on ``device`` and in which precision.

    Rule: the rows (plus targets and groups) are held when they fit in the memory the device can
    spare: on CUDA its free memory less :data:`DEVICE_RESERVE`, on a CPU :data:`HOST_SHARE` of the
    available host memory. float32 when that fits, else float16 (half the bytes), else streamed.
    ``yes`` holds them or fails with the numbers; ``no`` streams; under ``torchrun`` rows are
    always streamed (each rank reads its share).

    Parameters
    ----------
    choice
        ``auto``, ``yes`` or ``no`` (``--data-on-device``).
    n_rows, n_features
        Rows (training and dev together) and bins per row.
    device
        The torch device training runs on.
    dtype
        ``auto`` (as above), or a precision to use when held.
    free
        Free bytes (default: :func:`free_memory`).
    distributed
        Several processes (``torchrun``).
    """
    from chromexpr.errors import InputError

    if choice not in ("auto", "yes", "no"):
        raise InputError(f"--data-on-device must be auto, yes or no, got {choice!r}")
    where = "GPU" if device.type == "cuda" else "host"
    per_row = n_features * 4 + 4 + 8
    needed = n_rows * per_row
    half = n_rows * (n_features * 2 + 4 + 8)
    if choice == "no":
        return Residence(
            False, "float32", needed, 0, "streamed from the store (--data-on-device no)"
        )
    if distributed:
        if choice == "yes":
            raise InputError(
                "--data-on-device yes is not available under torchrun", fix="use auto or no"
            )
        return Residence(False, "float32", needed, 0, "streamed: each rank reads its share")
    free = free_memory(device) if free is None else int(free)
    budget = max(free - DEVICE_RESERVE, 0) if device.type == "cuda" else int(free * HOST_SHARE)
    fits32 = needed <= budget and dtype in ("auto", "float32")
    fits16 = half <= budget and dtype in ("auto", "float16")
    if fits32:
        chosen = "float32"
    elif fits16:
        chosen = "float16"
    else:
        size = needed if dtype == "float32" else half
        text = f"rows need {_size(size)}, {_size(budget)} usable of {_size(free)} free"
        if choice == "yes":
            raise InputError(
                f"--data-on-device yes: the training rows do not fit in {where} memory ({text})",
                fix="use --data-on-device auto or no (streaming)",
            )
        return Residence(False, "float32", needed, budget, f"streamed from the store ({text})")
    size = needed if chosen == "float32" else half
    return Residence(
        True,
        chosen,
        needed,
        budget,
        f"held in {where} memory as {chosen} ({_size(size)} of {_size(budget)} usable)",
    )


@dataclass
class ResidentRows:
    """Every row of a loader held in one tensor on the training device, batched exactly as the
    loader batches them.

    Epoch ``e``'s batches are the loader's (:meth:`RowLoader.batch_rows`: the same units order, the
    same buffer shuffles, the same cuts), gathered on the device. So a model trained on rows held
    on the device equals one trained on streamed rows (bit for bit on CPU with float32), and
    whether the rows fit in memory never changes the result beyond float16's rounding.

    Attributes
    ----------
    x, y, g
        Rows ``(n, features)`` (float32 or float16) in the loader's unshuffled order, targets
        float32 ``(n,)``, group codes int64 ``(n,)`` or ``None``; all on the device.
    loader
        The loader the rows came from (for the batches' order; it reads nothing more).
    """

    x: Any
    y: Any
    g: Any
    loader: RowLoader

    @classmethod
    def load(cls, loader: RowLoader, device: Any, dtype: str = "float32") -> ResidentRows:
        """Read every row of ``loader`` onto ``device``, in the loader's unshuffled order.

        The loader's threads and kernel fill the rows; on a CPU in float32 straight into the
        held tensor, otherwise into a staging buffer of about ``buffer_rows`` rows (page-locked
        when CUDA is present) copied to the device in turn.

        Raises
        ------
        ValueError
            A value beyond float16's range when ``dtype`` is ``float16``.
        """
        import torch

        n, width = loader.n_rows(), loader.source.n_features
        kind = torch.float16 if dtype == "float16" else torch.float32
        x = torch.empty((n, width), dtype=kind, device=device)
        y = torch.empty(n, dtype=torch.float32, device=device)
        g = None if loader.groups is None else torch.empty(n, dtype=torch.int64, device=device)
        direct = device.type == "cpu" and kind == torch.float32
        units, masks = loader._canonical()
        counts = [int(m.sum()) for m in masks]
        parts: list[list[int]] = [[]]
        rows = 0
        for u, count in enumerate(counts):
            if rows and rows + count > loader.buffer_rows:
                parts.append([])
                rows = 0
            parts[-1].append(u)
            rows += count
        largest = max(sum(counts[u] for u in part) for part in parts)
        staging = None
        if not direct:
            staging = (
                torch.empty((largest, width), dtype=torch.float32, pin_memory=True).numpy()
                if device.type == "cuda"
                else np.empty((largest, width), dtype=np.float32)
            )
        held_x = x.numpy() if direct else None
        loader._transform()
        lo = 0
        with ThreadPoolExecutor(
            max_workers=loader.threads or default_threads(), thread_name_prefix="chromexpr-rows"
        ) as pool:
            for part in parts:
                size = sum(counts[u] for u in part)
                hi = lo + size
                xs = held_x[lo:hi] if held_x is not None else cast(np.ndarray, staging)[:size]
                ys = np.empty(size, dtype=np.float32)
                gs = None if g is None else np.empty(size, dtype=np.int64)
                dest = np.arange(size, dtype=np.int64)
                futures = []
                start = 0
                for u in part:
                    for job in loader._unit_jobs(units[u], masks[u], dest, start, ys, gs):
                        futures.append(pool.submit(loader._fill_chunk, *job, xs))
                    start += counts[u]
                for future in futures:
                    future.result()
                if held_x is None:
                    if kind == torch.float16 and size and float(np.abs(xs).max()) > FLOAT16_MAX:
                        raise ValueError("values beyond float16's range; hold the rows as float32")
                    x[lo:hi].copy_(torch.from_numpy(xs))
                y[lo:hi].copy_(torch.from_numpy(ys))
                if g is not None and gs is not None:
                    g[lo:hi].copy_(torch.from_numpy(gs))
                lo = hi
        return cls(x, y, g, loader)

    @property
    def n_rows(self) -> int:
        """Rows held."""
        return int(self.x.shape[0])

    @property
    def nbytes(self) -> int:
        """Device bytes held."""
        held = [self.x, self.y] + ([] if self.g is None else [self.g])
        return int(sum(t.element_size() * t.numel() for t in held))

    def __call__(self, epoch: int = 0) -> Iterator[tuple[Any, Any, Any]]:
        """The batches of one epoch, as float32 tensors on the device."""
        import torch

        batches = self.loader.batch_rows(epoch)
        if not batches:
            return
        sizes = [b.size for b in batches]
        index = torch.from_numpy(np.concatenate(batches)).to(self.x.device)
        lo = 0
        for size in sizes:
            take = index[lo : lo + size]
            lo += size
            x = self.x[take]
            yield (
                x.float() if x.dtype != torch.float32 else x,
                self.y[take],
                None if self.g is None else self.g[take],
            )


def _size(nbytes: int) -> str:
    """Bytes for a log line, in GiB or, below one, MiB.

    Examples
    --------
    >>> _size(3 * 1024**3), _size(5 * 1024**2)
    ('3.0 GiB', '5.0 MiB')
    """
    if nbytes >= 1024**3:
        return f"{nbytes / 1024**3:.1f} GiB"
    return f"{nbytes / 1024**2:.1f} MiB"
