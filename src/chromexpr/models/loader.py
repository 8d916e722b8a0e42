"""Rows for the neural networks: (gene, sample) rows of transformed, centred openness, shuffled
and cut into batches, streamed from the dataset or held on the training device.

Streaming (:class:`RowLoader`)
    A read unit is one stored chunk (a gene block x one sample, all bins). An epoch visits the units
    in an order drawn from ``(seed, epoch)``; consecutive units fill a buffer of about
    ``buffer_rows`` rows whose order is a permutation drawn from the same stream, and the buffer is
    cut into batches. So every epoch has a new order over all training rows: across chunks (which
    units share a buffer) and within a buffer (which rows share a batch); a batch of 10,000 rows
    mixes the genes and samples of about ``buffer_rows / chunk_genes`` chunks. The buffer is filled
    by a pool of threads, each decoding a chunk straight from its file into a small per-thread
    array (Blosc releases the GIL) and writing its rows, transformed and centred, into their
    shuffled places in the buffer (:func:`chromexpr.models._loader_kernels.fill_rows`, numba,
    ``nogil``): one pass over each row, no concatenation, no second copy for the shuffle. The next
    buffer is filled while the consumer trains on the current one; batches are views of the
    buffer (with ``recycle``, of a pool of three buffers reused across the epoch).

Rows held on the training device instead: :mod:`chromexpr.models.resident`, which loads them
through this loader and batches them as it does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np

from chromexpr.models.design import BlockSource, prefetch
from chromexpr.models.distributed import shard_bounds

__all__ = ["Batch", "RowLoader", "default_threads"]

#: Buffers a recycling loader keeps: one being consumed, one being filled, one whose last batch may
#: still be in flight to the device.
POOL_BUFFERS = 3
#: Most threads the loader starts.
MAX_THREADS = 8


def default_threads() -> int:
    """Loader threads: usable CPUs (at most ``NUMBA_NUM_THREADS`` or ``OMP_NUM_THREADS``, both set
    by ``--threads``), between 1 and :data:`MAX_THREADS`."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = os.environ.get("NUMBA_NUM_THREADS", "") or os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        n = min(n, int(cap))
    return max(1, min(n, MAX_THREADS))


Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]


@dataclass
class RowLoader:
    """(gene, sample) rows for a neural network: chunk-aligned reads, shuffled within a bounded
    buffer (the module docstring has the scheme).

    An epoch visits every (gene chunk, sample batch) unit of the chosen rows once, in an order drawn
    from ``(seed, epoch)``; rows of consecutive units fill a buffer of at least ``buffer_rows``
    rows, which is shuffled and cut into batches (rows short of a whole batch are carried into the
    next buffer). The same seed and epoch give the same batches, so an interrupted run resumes
    exactly.
    Memory: one buffer, ``(buffer_rows + batch_size + chunk_genes) x n_features`` float32, per
    buffer in flight (three with ``recycle``), and one decoded chunk per thread.

    Attributes
    ----------
    source
        Transformed openness.
    y
        ``(n_genes, n_samples)`` targets (model scale).
    roles
        ``int8 (n_genes, n_samples)`` role of each pair; rows with role ``role`` are used.
    role
        Which rows (``TRAIN`` or ``DEV``).
    samples
        Local samples to visit.
    x_centre, y_centre
        Per-gene training means subtracted from inputs ``(n_genes, n_features)`` and targets
        ``(n_genes,)`` (the deviation formulation), or ``None``.
    groups
        ``int64 (n_samples,)`` group code per sample, or ``None``.
    batch_size, buffer_rows, seed, shuffle
        Batching.
    unit_samples
        Samples per read unit (1: a unit is one stored chunk; smaller units mix the buffer
        better).
    threads
        Threads decoding and transforming chunks (``None``: :func:`default_threads`).
    recycle
        Reuse a pool of :data:`POOL_BUFFERS` buffers through the epoch: a batch's arrays are then
        valid only until the loader has moved two buffers on (a training step that uses each batch
        before asking for the next, as :func:`chromexpr.models.fc_net.train_mlp` does). Without it
        each buffer is new and batches stay valid.
    pin_memory
        Allocate the buffers in page-locked memory (CUDA present) so that copies to the device
        are asynchronous; a buffer is reused only after the copies from it have completed.
    rank, world_size, shard_by
        Sharding among ``world_size`` processes (``torchrun``, with the process group open).
        Either way rank ``r`` reads only the read units ``r, r + world_size, ...`` of the epoch's
        visiting order. ``"batch"``: every rank plans the single-process epoch from the roles
        alone (which rows each unit holds, the buffer's shuffles and the cuts into batches, as row
        numbers), then, at each buffer, the ranks exchange rows
        (:func:`chromexpr.models.distributed.exchange_rows`) so that each yields its contiguous
        part of every batch (:func:`chromexpr.models.distributed.shard_bounds`: sizes differ by at
        most one row; a rank may get an empty part of a tiny last batch). The ranks' parts
        together are exactly the single-process batches. ``"unit"``: each rank batches its own
        units' rows, no exchange; each row is seen by exactly one rank but the batches differ from
        a single process's (for sums such as a dev loss).
    """

    source: BlockSource
    y: np.ndarray
    roles: np.ndarray
    role: int
    samples: np.ndarray
    x_centre: np.ndarray | None = None
    y_centre: np.ndarray | None = None
    groups: np.ndarray | None = None
    batch_size: int = 10_000
    buffer_rows: int = 65_536
    seed: int = 0
    shuffle: bool = True
    unit_samples: int = 1
    rank: int = 0
    world_size: int = 1
    shard_by: Literal["batch", "unit"] = "batch"
    threads: int | None = None
    recycle: bool = False
    pin_memory: bool = False
    _pool: list[tuple[np.ndarray, np.ndarray, np.ndarray, Any]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    _transform_cache: tuple[np.ndarray, bool, bool, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _canonical_cache: tuple[list[tuple[slice, np.ndarray, np.ndarray]], list[np.ndarray]] | None = (
        field(default=None, init=False, repr=False, compare=False)
    )

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {self.rank}, {self.world_size}")
        if self.shard_by not in ("batch", "unit"):
            raise ValueError(f"shard_by must be batch or unit, got {self.shard_by!r}")

    def units(self, epoch: int) -> list[tuple[slice, np.ndarray, np.ndarray]]:
        """The epoch's read units ``(gene slice, local genes, local samples)``, in visiting
        order."""
        out = self._canonical_units()
        out = [out[i] for i in self._unit_order(epoch, len(out))]
        if self.shard_by == "unit" and self.world_size > 1:
            out = out[self.rank :: self.world_size]
        return out

    def _canonical(self) -> tuple[list[tuple[slice, np.ndarray, np.ndarray]], list[np.ndarray]]:
        """The read units in store order (gene chunks, then samples) and their masks (which pairs
        are rows of this loader); computed once per loader from the roles."""
        if self._canonical_cache is None:
            units: list[tuple[slice, np.ndarray, np.ndarray]] = []
            masks: list[np.ndarray] = []
            cols = np.asarray(self.samples, dtype=np.int64)
            for genes, local in self.source.chunks():
                sub = self.roles[np.ix_(local, cols)] == self.role
                kept = np.flatnonzero(sub.any(axis=0))
                for lo in range(0, kept.size, self.unit_samples):
                    part = kept[lo : lo + self.unit_samples]
                    units.append((genes, local, cols[part]))
                    masks.append(sub[:, part])
            self._canonical_cache = (units, masks)
        return self._canonical_cache

    def _canonical_units(self) -> list[tuple[slice, np.ndarray, np.ndarray]]:
        """The read units in store order (gene chunks, then samples)."""
        return self._canonical()[0]

    def _unit_order(self, epoch: int, n_units: int) -> np.ndarray:
        """Epoch ``epoch``'s visiting order of the canonical units."""
        if not self.shuffle:
            return np.arange(n_units, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch, 1]).permutation(n_units)

    def batch_rows(self, epoch: int) -> list[np.ndarray]:
        """The single-process batches of ``epoch`` as row numbers in the unshuffled order (the
        rows of the canonical units one after another, each unit's in (gene, sample) order): what
        :class:`ResidentRows` gathers, so that rows held on the device give the very batches the
        streaming loader gives. Nothing is read."""
        canonical, masks = self._canonical()
        counts = np.array([int(m.sum()) for m in masks], dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(counts)])
        order = self._unit_order(epoch, len(canonical))
        plan = self._plan([canonical[i] for i in order], epoch, counts[order])
        out = []
        for _, batches in plan.buffers:
            for ids in batches:
                unit = plan.unit_of(ids)
                out.append(first[order[unit]] + ids - plan.starts[unit])
        return out

    def _masks(self, units: list[tuple[slice, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Which pairs of each unit (local genes x local samples) are rows of this loader."""
        return [self.roles[np.ix_(local, cols)] == self.role for _, local, cols in units]

    def _rows(self, unit: tuple[slice, np.ndarray, np.ndarray]) -> Batch:
        """One unit's rows, in (gene, sample) order: the batches' content before shuffling."""
        (mask,) = self._masks([unit])
        n = int(mask.sum())
        x = np.empty((n, self.source.n_features), dtype=np.float32)
        y = np.empty(n, dtype=np.float32)
        g = None if self.groups is None else np.empty(n, dtype=np.int64)
        for job in self._unit_jobs(unit, mask, np.arange(n, dtype=np.int64), 0, y, g):
            self._fill_chunk(*job, x)
        return x, y, g

    def _unit_jobs(
        self,
        unit: tuple[slice, np.ndarray, np.ndarray],
        mask: np.ndarray,
        dest: np.ndarray,
        start: int,
        y_out: np.ndarray,
        g_out: np.ndarray | None,
    ) -> list[tuple[slice, np.ndarray, int, np.ndarray]]:
        """Write a unit's targets (and groups) to their places ``dest[start + i]`` (``i``: the
        row's rank in (gene, sample) order) and return its chunks' jobs for :meth:`_fill_chunk`."""
        genes, local, cols = unit
        if cols.size == 1:  # one stored chunk (the default units): no 2-D bookkeeping
            col = int(cols[0])
            keep = mask[:, 0]
            rows = local if keep.all() else local[keep]
            places = dest[start : start + rows.size]
            y_unit = self.y[rows, col].astype(np.float32)
            if self.y_centre is not None:
                y_unit -= self.y_centre[rows].astype(np.float32)
            y_out[places] = y_unit
            if g_out is not None and self.groups is not None:
                g_out[places] = self.groups[col]
            return [(genes, rows, col, places)] if rows.size else []
        number = (np.cumsum(mask.ravel()) - 1).reshape(mask.shape) + start
        places = dest[number[mask]]
        y = self.y[np.ix_(local, cols)].astype(np.float32)
        if self.y_centre is not None:
            y = y - self.y_centre[local][:, None].astype(np.float32)
        y_out[places] = y[mask]
        if g_out is not None and self.groups is not None:
            g_out[places] = np.broadcast_to(self.groups[cols][None, :], mask.shape)[mask]
        jobs = []
        for j, col in enumerate(cols):
            keep = mask[:, j]
            if keep.any():
                jobs.append((genes, local[keep], int(col), dest[number[keep, j]]))
        return jobs

    def _transform(self) -> tuple[np.ndarray, bool, bool, np.ndarray]:
        """Per-sample float32 depth factors, whether to take log1p, whether the kernel applies the
        transform itself (not with quantile normalisation), and the float32 centre (no rows:
        none). Computed once per loader."""
        if self._transform_cache is None:
            openness = self.source.openness
            factors = openness.scale_factors(self.source.stats.totals).astype(np.float32)
            centre = (
                np.zeros((0, self.source.n_features), dtype=np.float32)
                if self.x_centre is None
                else np.ascontiguousarray(self.x_centre, dtype=np.float32)
            )
            self._transform_cache = (
                factors,
                bool(openness.config.log1p),
                not openness.config.quantile,
                centre,
            )
        return self._transform_cache

    def _fill_chunk(
        self, genes: slice, local: np.ndarray, col: int, dest: np.ndarray, out: np.ndarray
    ) -> None:
        """Rows of the local genes ``local`` (all in the chunk ``genes``) and local sample ``col``,
        transformed and centred, into ``out[dest]`` (runs in the loader's threads)."""
        from chromexpr.models._loader_kernels import fill_rows

        source = self.source
        factors, log1p, fused, centre = self._transform()
        scratch = _thread_array("scratch", (4, source.n_features))  # row 3 stays zero
        factor, take_log = np.float32(factors[col]), log1p
        raw: np.ndarray | None = None
        src = np.arange(local.size, dtype=np.int64)
        if fused and source.cache is not None:
            held = source.cache.take(
                source.gene_index[local], source.sample_position[[col]], source.bins
            )
            if held is not None:
                raw = np.ascontiguousarray(held[:, 0, :])
        if raw is None and fused:
            dataset = source.dataset
            stage = _thread_array("chunk", (dataset.chunk_genes, dataset.n_bins))
            chunk = dataset.read_chunk(
                genes.start // dataset.chunk_genes, int(source.sample_position[col]), stage
            )
            rows = (source.gene_index[local] - genes.start).astype(np.int64)
            if source.bins is None:
                raw, src = chunk, rows
            else:
                raw = np.ascontiguousarray(chunk[np.ix_(rows, source.bins)])
        if raw is None:  # quantile normalisation: FittedOpenness transforms, the kernel centres
            raw = np.ascontiguousarray(source.read(genes, local, np.asarray([col]))[:, 0, :])
            factor, take_log = np.float32(1.0), False
        fill_rows(raw, src, dest, factor, take_log, centre, local, out, scratch)

    def gene_means(self) -> np.ndarray:
        """Per-gene mean of each transformed bin over this loader's rows (the training means
        ``x_centre`` is made of): float32 ``(n_genes, n_features)``, 0 for genes without rows.

        One unshuffled pass through the threads and the kernel: the same values as
        :meth:`chromexpr.models.design.BlockSource.gene_means` over the same rows, up to the
        kernel's logarithm (3 units in the last place), many times faster.
        """
        from chromexpr.models._loader_kernels import add_rows

        plain = replace(
            self,
            shuffle=False,
            x_centre=None,
            y_centre=None,
            groups=None,
            batch_size=max(int(self.buffer_rows), 1),
            recycle=True,
            pin_memory=False,
            world_size=1,
            rank=0,
        )
        units, masks = plain._canonical()  # unshuffled: the order the rows come in
        gene_of_row = np.concatenate(
            [np.zeros(0, np.int64)]
            + [
                np.broadcast_to(local[:, None], mask.shape)[mask]
                for (_, local, _), mask in zip(units, masks, strict=True)
            ]
        ).astype(np.int64)
        sums = np.zeros((self.source.gene_index.size, self.source.n_features), dtype=np.float64)
        lo = 0
        for x, _, _ in plain(0):
            add_rows(x, gene_of_row[lo : lo + x.shape[0]], sums)
            lo += x.shape[0]
        counts = np.bincount(gene_of_row, minlength=sums.shape[0])
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)

    def n_rows(self) -> int:
        """Rows per epoch (all ranks together)."""
        return int((self.roles[:, np.asarray(self.samples, dtype=np.int64)] == self.role).sum())

    def __call__(self, epoch: int = 0) -> Iterator[Batch]:
        """The batches of one epoch: ``(x float32 (B, p), y float32 (B,), group int64 (B,) or
        None)``."""
        if self.world_size > 1 and self.shard_by == "batch":
            yield from self._exchanged(epoch)
            return
        yield from self._stream(epoch)

    def _layout(self, counts: np.ndarray) -> list[tuple[list[int], int, int, bool]]:
        """The epoch's buffers from the units' row counts: ``(units, rows carried in, rows,
        final)``. A buffer closes once it holds ``buffer_rows`` rows and passes the rows short of
        a whole batch on to the next."""
        out: list[tuple[list[int], int, int, bool]] = []
        units: list[int] = []
        carried = pending = 0
        for u, count in enumerate(counts.tolist()):
            if count == 0:
                continue
            units.append(u)
            pending += count
            if pending >= self.buffer_rows:
                out.append((units, carried, pending, False))
                carried = pending % self.batch_size
                units, pending = [], carried
        if pending:
            out.append((units, carried, pending, True))
        return out

    def _buffer(self, slot: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """Arrays ``(x, y, g)`` for at least ``rows`` rows, and the CUDA event that must complete
        before they are written again (or ``None``): the pool's ``slot`` with ``recycle``, else
        new arrays."""
        if self.recycle and slot < len(self._pool) and self._pool[slot][0].shape[0] >= rows:
            return self._pool[slot]
        width = self.source.n_features
        if self.pin_memory:
            import torch

            x = torch.empty((rows, width), dtype=torch.float32, pin_memory=True).numpy()
        else:
            x = np.empty((rows, width), dtype=np.float32)
        arrays = (x, np.empty(rows, dtype=np.float32), np.empty(rows, dtype=np.int64), None)
        if self.recycle:
            while len(self._pool) <= slot:
                self._pool.append(arrays)
            self._pool[slot] = arrays
        return arrays

    def _stream(self, epoch: int) -> Iterator[Batch]:
        """One process's epoch: buffers filled by the thread pool, one ahead of the consumer."""
        canonical, canonical_masks = self._canonical()
        order = self._unit_order(epoch, len(canonical))
        units = [canonical[i] for i in order]
        masks = [canonical_masks[i] for i in order]
        counts = np.array([int(m.sum()) for m in masks], dtype=np.int64)
        layout = self._layout(counts)
        if not layout:
            return
        self._transform()
        rng = np.random.default_rng([self.seed, epoch, 2])
        capacity = max(rows for _, _, rows, _ in layout)
        has_groups = self.groups is not None
        pool = ThreadPoolExecutor(
            max_workers=self.threads or default_threads(), thread_name_prefix="chromexpr-rows"
        )

        def fill(
            b: int, carry: tuple[np.ndarray, np.ndarray, np.ndarray] | None
        ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, Any], list[Future[None]]]:
            ids, carried, rows, _ = layout[b]
            arrays = self._buffer(b % POOL_BUFFERS, capacity)
            if arrays[3] is not None:  # copies to the device from this buffer must be done
                arrays[3].synchronize()
            x, y, g, _ = arrays
            if self.shuffle:
                dest = np.empty(rows, dtype=np.int64)
                dest[rng.permutation(rows)] = np.arange(rows, dtype=np.int64)
            else:
                dest = np.arange(rows, dtype=np.int64)
            if carried and carry is not None:
                x[dest[:carried]] = carry[0]
                y[dest[:carried]] = carry[1]
                g[dest[:carried]] = carry[2]
            start = carried
            futures: list[Future[None]] = []
            for u in ids:
                jobs = self._unit_jobs(
                    units[u], masks[u], dest, start, y, g if has_groups else None
                )
                futures.extend(pool.submit(self._fill_chunk, *job, x) for job in jobs)
                start += int(counts[u])
            return arrays, futures

        try:
            current, futures = fill(0, None)
            for b in range(len(layout)):
                for future in futures:
                    future.result()
                x, y, g, _ = current
                _, _, rows, final = layout[b]
                n_full = rows if final else (rows // self.batch_size) * self.batch_size
                if b + 1 < len(layout):
                    carry = (x[n_full:rows], y[n_full:rows], g[n_full:rows])
                    current, futures = fill(b + 1, carry)
                for lo in range(0, n_full, self.batch_size):
                    hi = min(lo + self.batch_size, n_full)
                    yield x[lo:hi], y[lo:hi], g[lo:hi] if has_groups else None
                if self.pin_memory and self.recycle:
                    self._mark_copied(b % POOL_BUFFERS)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _mark_copied(self, slot: int) -> None:
        """Record on the current CUDA stream that the copies from buffer ``slot`` are queued."""
        import torch

        if torch.cuda.is_available():
            event = torch.cuda.Event()
            event.record()
            x, y, g, _ = self._pool[slot]
            self._pool[slot] = (x, y, g, event)

    # --------------------------------------------------------------------------------------------
    # Several processes: sharded reads, single-process batches
    # --------------------------------------------------------------------------------------------

    def _cut(
        self, ids: np.ndarray, rng: np.random.Generator, *, final: bool
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """:meth:`_stream`'s shuffle and cuts, on row numbers: the buffer's batches and the rows
        carried over."""
        if self.shuffle:
            ids = ids[rng.permutation(ids.size)]
        n_full = ids.size if final else (ids.size // self.batch_size) * self.batch_size
        batches = [
            ids[lo : min(lo + self.batch_size, n_full)] for lo in range(0, n_full, self.batch_size)
        ]
        return batches, ids[n_full:]

    def _plan(
        self,
        units: list[tuple[slice, np.ndarray, np.ndarray]],
        epoch: int,
        counts: np.ndarray | None = None,
    ) -> _Plan:
        """The single-process epoch as row numbers (rows numbered unit after unit, each unit's in
        :meth:`_rows` order), computed from the roles alone (or the units' row ``counts``):
        nothing is read."""
        if counts is None:
            counts = np.array([int(m.sum()) for m in self._masks(units)], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])
        rng = np.random.default_rng([self.seed, epoch, 2])
        buffers: list[tuple[int, list[np.ndarray]]] = []
        pending: list[np.ndarray] = []
        n_pending = 0
        for u, count in enumerate(counts):
            if count == 0:
                continue
            pending.append(np.arange(starts[u], starts[u + 1]))
            n_pending += int(count)
            if n_pending >= self.buffer_rows:
                batches, rest = self._cut(np.concatenate(pending), rng, final=False)
                buffers.append((u + 1, batches))
                pending, n_pending = ([rest], rest.size) if rest.size else ([], 0)
        if pending:
            buffers.append((len(units), self._cut(np.concatenate(pending), rng, final=True)[0]))
        return _Plan(counts=counts, starts=starts, buffers=buffers)

    def _exchanged(self, epoch: int) -> Iterator[Batch]:
        """This rank's part of each single-process batch, from its own units and the other ranks'
        rows (one exchange per buffer; every rank must iterate, in step)."""
        units = self.units(epoch)
        plan = self._plan(units, epoch)
        world, rank = self.world_size, self.rank
        mine = [u for u in range(rank, len(units), world) if plan.counts[u] > 0]
        reader = cast(Generator[Batch, None, None], prefetch(self._rows(units[u]) for u in mine))
        held: dict[int, np.ndarray] = {}
        remaining = plan.counts.copy()
        n_read = 0
        try:
            for n_units, batches in plan.buffers:
                while n_read < len(mine) and mine[n_read] < n_units:
                    held[mine[n_read]] = _pack(next(reader))
                    n_read += 1
                parts = [
                    [b[slice(*shard_bounds(b.size, r, world))] for b in batches]
                    for r in range(world)
                ]
                rows = self._swap(
                    plan, held, [np.concatenate(p) if p else np.zeros(0, np.int64) for p in parts]
                )
                used = plan.unit_of(np.concatenate(batches)) if batches else np.zeros(0, np.int64)
                remaining -= np.bincount(used, minlength=remaining.size)
                for u in [u for u in held if remaining[u] == 0]:
                    del held[u]
                lo = 0
                for part in parts[rank]:
                    yield _unpack(rows[lo : lo + part.size], self.groups is not None)
                    lo += part.size
        finally:
            reader.close()

    def _swap(self, plan: _Plan, held: dict[int, np.ndarray], need: list[np.ndarray]) -> np.ndarray:
        """Send every rank the held rows it needs; the rows ``need[rank]`` names, in its order."""
        from chromexpr.models.distributed import exchange_rows

        world, rank = self.world_size, self.rank
        width = next(iter(held.values())).shape[1] if held else self._width()
        owners = [plan.unit_of(ids) % world for ids in need]
        # rows rank s sends rank d, known to every rank from the plan: the padding is agreed
        counts = np.stack([np.bincount(o, minlength=world) for o in owners], axis=1)
        sends = []
        for ids, owner in zip(need, owners, strict=True):
            ids = ids[owner == rank]
            out = np.empty((ids.size, width), dtype=np.float32)
            units = plan.unit_of(ids)
            for u in np.unique(units):
                sel = units == u
                out[sel] = held[int(u)][ids[sel] - plan.starts[u]]
            sends.append(out)
        received = exchange_rows(sends, counts[:, rank].tolist(), int(counts.max()))
        rows = np.empty((need[rank].size, width), dtype=np.float32)
        for src in range(world):
            rows[owners[rank] == src] = received[src]
        return rows

    def _width(self) -> int:
        """Columns of a packed row: the features, the target, the group code (if any)."""
        return int(self.source.n_features) + 1 + (self.groups is not None)


@dataclass(frozen=True)
class _Plan:
    """An epoch as row numbers: rows per unit, each unit's first row number, and per buffer the
    units read so far and its batches."""

    counts: np.ndarray
    starts: np.ndarray
    buffers: list[tuple[int, list[np.ndarray]]]

    def unit_of(self, ids: np.ndarray) -> np.ndarray:
        """The unit holding each row number."""
        return np.searchsorted(self.starts, ids, side="right") - 1


def _pack(batch: Batch) -> np.ndarray:
    """``x``, ``y`` and the group codes (exact in float32 below 2**24) as one float32 matrix."""
    x, y, g = batch
    cols = [x, y[:, None]] + ([] if g is None else [g[:, None].astype(np.float32)])
    return np.concatenate(cols, axis=1, dtype=np.float32)


def _unpack(rows: np.ndarray, has_groups: bool) -> Batch:
    """:func:`_pack`'s inverse."""
    if has_groups:
        return rows[:, :-2], rows[:, -2].copy(), rows[:, -1].astype(np.int64)
    return rows[:, :-1], rows[:, -1].copy(), None


_LOCAL = threading.local()


def _thread_array(name: str, shape: tuple[int, int]) -> np.ndarray:
    """A float32 work array of this thread (zeros when made), reused between calls with the same
    shape."""
    arrays: dict[str, np.ndarray] = _LOCAL.__dict__.setdefault("arrays", {})
    array = arrays.get(name)
    if array is None or array.shape != shape:
        array = arrays[name] = np.zeros(shape, dtype=np.float32)
    return array
