"""The design a model sees: transformed openness streamed from the dataset in bounded memory.

Reads are chunk-aligned (the store keeps ``chunk_genes`` genes x 1 sample x all bins per chunk), so
a block is one gene chunk x a batch of samples. Nothing here holds the whole dataset: the largest
array is one block, ``chunk_genes x sample_batch x n_bins`` float32 (with the defaults 256 x 32 x
2000, 65 MB), or, for models that need all of a gene's training samples at once, ``chunk_genes x
n_train x n_kept_bins``.

Formulations (``docs/models.md``):

``deviation``
    Each gene's target is its deviation from its training mean, and its inputs are its bins'
    deviations from their training means (per-gene centring over training samples): only the
    within-gene signal, which is what a new cell type adds, is modelled. Needs the same training
    samples for every gene (``--split sample``).
``raw``
    Targets and transformed openness as they are (the original recipe); needed to predict genes that
    have no training samples (chromosome splits).

Coordinates: bin ``k`` covers ``[offset_k, offset_k + bin_size)`` relative to the TSS in the gene's
orientation (negative = upstream); its distance to the TSS is that of its centre.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import numpy as np

from chromexpr.dataset.store import Dataset
from chromexpr.models.distributed import shard_bounds
from chromexpr.models.transforms import FittedOpenness, OpennessConfig, SampleStatistics

__all__ = [
    "BlockSource",
    "Formulation",
    "RawCache",
    "RowLoader",
    "bin_distances",
    "prefetch",
    "sample_statistics",
    "stats_gene_slices",
    "window_bins",
]

Formulation = Literal["deviation", "raw"]
FORMULATIONS: tuple[str, ...] = ("deviation", "raw")

#: Samples read per block: bounds a block to chunk_genes x SAMPLE_BATCH x n_bins float32.
SAMPLE_BATCH = 32
#: Genes whose openness the per-sample statistics (depth, quantiles) are computed on, at most.
STATS_GENES = 4096
#: Values per sample kept for its quantiles, at most (an evenly strided subset).
QUANTILE_VALUES = 2_000_000

T = TypeVar("T")


def bin_distances(offsets: np.ndarray, bin_size: int) -> np.ndarray:
    """Distance (bp, >= 0) from the TSS to each bin's centre.

    Examples
    --------
    >>> bin_distances(np.array([-2000, -1000, 0, 1000]), 1000).tolist()
    [1500.0, 500.0, 500.0, 1500.0]
    """
    return np.abs(np.asarray(offsets, dtype=np.float64) + bin_size / 2.0)


def window_bins(offsets: np.ndarray, bin_size: int, window: int | None) -> np.ndarray:
    """Indices of the bins whose centre lies within ``window`` bp of the TSS (all bins for
    ``None``).

    Examples
    --------
    >>> window_bins(np.arange(-5, 5) * 1000, 1000, 2000).tolist()
    [3, 4, 5, 6]
    """
    d = bin_distances(offsets, bin_size)
    if window is None:
        return np.arange(d.shape[0], dtype=np.int64)
    keep = np.flatnonzero(d <= window)
    if keep.size == 0:
        keep = np.asarray([int(np.argmin(d))], dtype=np.int64)
    return keep.astype(np.int64)


def stats_gene_slices(n_genes: int, chunk: int, max_genes: int = STATS_GENES) -> list[slice]:
    """Evenly spaced, chunk-aligned gene blocks totalling at most ``max_genes`` genes (at least
    one).

    Examples
    --------
    >>> stats_gene_slices(1000, 100, 300)
    [slice(0, 100, None), slice(400, 500, None), slice(900, 1000, None)]
    """
    n_chunks = -(-n_genes // chunk)
    take = max(1, min(n_chunks, max_genes // max(chunk, 1)))
    chosen = np.unique(np.linspace(0, n_chunks - 1, take).round().astype(np.int64))
    return [slice(int(c) * chunk, min((int(c) + 1) * chunk, n_genes)) for c in chosen]


def sample_statistics(
    dataset: Dataset,
    positions: np.ndarray,
    config: OpennessConfig,
    *,
    max_genes: int = STATS_GENES,
    progress: Callable[[int], None] | None = None,
) -> SampleStatistics:
    """Each sample's own openness statistics (total, quantiles) over a fixed set of statistics
    genes.

    Parameters
    ----------
    dataset
        The dataset.
    positions
        Sample positions (in ``dataset.samples``).
    config
        Quantiles are computed only when ``config.quantile``.
    max_genes
        Statistics genes (evenly spaced chunks, :func:`stats_gene_slices`); the same genes for every
        sample, so totals are comparable.
    progress
        Called with the number of samples finished.
    """
    positions = np.asarray(positions, dtype=np.int64)
    slices = stats_gene_slices(dataset.n_genes, dataset.chunk_genes, max_genes)
    totals = np.zeros(positions.size)
    quantiles = np.zeros((positions.size, config.n_quantiles)) if config.quantile else None
    levels = np.linspace(0.0, 1.0, config.n_quantiles)
    n_values = sum(sl.stop - sl.start for sl in slices) * dataset.n_bins
    stride = max(1, n_values // QUANTILE_VALUES)
    for lo in range(0, positions.size, SAMPLE_BATCH):
        batch = positions[lo : lo + SAMPLE_BATCH]
        kept: list[list[np.ndarray]] = [[] for _ in range(batch.size)]
        for sl in slices:  # one chunk-aligned block at a time: bounded memory
            block = dataset.read_block(sl, batch)
            totals[lo : lo + batch.size] += block.sum(axis=(0, 2), dtype=np.float64)
            if quantiles is not None:
                for j in range(batch.size):
                    kept[j].append(block[:, j, :].ravel()[::stride].astype(np.float64))
        if quantiles is not None:
            for j in range(batch.size):
                quantiles[lo + j] = np.quantile(np.concatenate(kept[j]), levels)
        if progress is not None:
            progress(int(batch.size))
    names = tuple(dataset.samples[int(p)] for p in positions)
    return SampleStatistics(names, totals, quantiles)


#: Largest raw cache :meth:`RawCache.build` makes (bytes): above it, fits stream from the store.
RAW_CACHE_BYTES = 1_500_000_000


@dataclass(frozen=True, eq=False)
class RawCache:
    """Untransformed openness of some genes x samples x bins, held in memory.

    Fits that read the same bins many times (the folds of ``--folds``, inner cross-validation,
    the baselines ``evaluate`` refits) read the store once through this; the openness transform,
    which differs between folds, is still applied on every read.

    Attributes
    ----------
    gene_index, positions, bins
        Increasing dataset gene indices, dataset sample positions, increasing bin indices.
    values
        ``float32 (genes, positions, bins)``.
    """

    gene_index: np.ndarray
    positions: np.ndarray
    bins: np.ndarray
    values: np.ndarray

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        gene_index: np.ndarray,
        positions: np.ndarray,
        bins: np.ndarray | None,
        *,
        max_bytes: int = RAW_CACHE_BYTES,
    ) -> RawCache | None:
        """Read the values (chunk by chunk); ``None`` when they would exceed ``max_bytes``."""
        genes = np.asarray(gene_index, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        kept = np.arange(dataset.n_bins) if bins is None else np.asarray(bins, dtype=np.int64)
        if genes.size * positions.size * kept.size * 4 > max_bytes or genes.size == 0:
            return None
        values = np.empty((genes.size, positions.size, kept.size), dtype=np.float32)
        chunk = dataset.chunk_genes
        which = genes // chunk
        for c in np.unique(which):
            local = np.flatnonzero(which == c)
            sl = slice(int(c) * chunk, min((int(c) + 1) * chunk, dataset.n_genes))
            for lo in range(0, positions.size, SAMPLE_BATCH):
                part = positions[lo : lo + SAMPLE_BATCH]
                block = dataset.read_block(sl, part)[genes[local] - sl.start]
                values[local, lo : lo + part.size] = block[:, :, kept]
        return cls(genes, positions, kept, values)

    def take(
        self, genes: np.ndarray, positions: np.ndarray, bins: np.ndarray | None
    ) -> np.ndarray | None:
        """Values of these dataset genes x positions x bins, or ``None`` if not all are held."""
        kept = np.arange(self.bins.size) if bins is None else np.asarray(bins, dtype=np.int64)
        if bins is None and self.bins.size != self.bins[-1] + 1:
            return None
        rows = np.searchsorted(self.gene_index, genes)
        cols = np.searchsorted(self.bins, kept)
        if (
            (rows >= self.gene_index.size).any()
            or (cols >= self.bins.size).any()
            or not np.array_equal(
                self.gene_index[np.minimum(rows, self.gene_index.size - 1)], genes
            )
            or not np.array_equal(self.bins[np.minimum(cols, self.bins.size - 1)], kept)
        ):
            return None
        lookup = {int(p): i for i, p in enumerate(self.positions)}
        if any(int(p) not in lookup for p in positions):
            return None
        pos = np.asarray([lookup[int(p)] for p in positions], dtype=np.int64)
        return self.values[rows][:, pos][:, :, cols]


@dataclass
class BlockSource:
    """Transformed openness of some genes x some samples, streamed in chunk-aligned blocks.

    Attributes
    ----------
    dataset
        The dataset.
    gene_index
        ``int64 (n_genes,)`` increasing dataset gene indices (the modelled genes; local gene ``i``
        is ``gene_index[i]``).
    sample_position
        ``int64 (n_samples,)`` dataset sample positions (local sample ``j``).
    stats
        The samples' own statistics, same order as ``sample_position``.
    openness
        Fitted openness transform.
    bins
        ``int64`` bins kept, in order (``None``: all).
    cache
        Raw values held in memory (:class:`RawCache`); reads it covers skip the store.
    """

    dataset: Dataset
    gene_index: np.ndarray
    sample_position: np.ndarray
    stats: SampleStatistics
    openness: FittedOpenness
    bins: np.ndarray | None = None
    cache: RawCache | None = None

    @property
    def n_features(self) -> int:
        """Bins per row."""
        return self.dataset.n_bins if self.bins is None else int(self.bins.size)

    def chunks(self) -> list[tuple[slice, np.ndarray]]:
        """``(dataset gene slice, local gene indices in it)`` of every chunk holding modelled
        genes."""
        chunk = self.dataset.chunk_genes
        ids = np.asarray(self.gene_index, dtype=np.int64)
        out: list[tuple[slice, np.ndarray]] = []
        if ids.size == 0:
            return out
        which = ids // chunk
        starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
        ends = np.r_[starts[1:], ids.size]
        for s, e in zip(starts, ends, strict=True):
            c = int(which[s])
            out.append(
                (
                    slice(c * chunk, min((c + 1) * chunk, self.dataset.n_genes)),
                    np.arange(s, e, dtype=np.int64),
                )
            )
        return out

    def read(self, genes: slice, local_genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Transformed ``(len(local_genes), len(samples), n_features)`` float32 for one chunk."""
        samples = np.asarray(samples, dtype=np.int64)
        out = np.empty((local_genes.size, samples.size, self.n_features), dtype=np.float32)
        rows = self.gene_index[local_genes] - genes.start
        for lo in range(0, samples.size, SAMPLE_BATCH):
            cols = samples[lo : lo + SAMPLE_BATCH]
            raw = None
            if self.cache is not None:
                raw = self.cache.take(
                    self.gene_index[local_genes], self.sample_position[cols], self.bins
                )
            if raw is None:
                raw = self.dataset.read_block(genes, self.sample_position[cols])[rows]
                if self.bins is not None:
                    raw = raw[:, :, self.bins]
            names = [self.stats.samples[int(c)] for c in cols]
            out[:, lo : lo + cols.size] = self.openness.apply(raw, self.stats.subset(names))
        return out

    def iter_blocks(
        self, samples: np.ndarray | None = None, *, whole_chunk_samples: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(local genes, local samples, x)`` blocks covering genes x ``samples``.

        Parameters
        ----------
        samples
            Local sample indices (default: all).
        whole_chunk_samples
            One block per gene chunk with every requested sample (for models that need all of a
            gene's samples at once); otherwise one block per chunk and sample batch of
            :data:`SAMPLE_BATCH`.
        """
        cols = (
            np.arange(self.sample_position.size)
            if samples is None
            else np.asarray(samples, np.int64)
        )
        for genes, local in self.chunks():
            if whole_chunk_samples:
                yield local, cols, self.read(genes, local, cols)
            else:
                for lo in range(0, cols.size, SAMPLE_BATCH):
                    part = cols[lo : lo + SAMPLE_BATCH]
                    yield local, part, self.read(genes, local, part)

    def gene_means(
        self, samples: np.ndarray, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Per-gene mean over ``samples`` of each transformed bin: float32 ``(n_genes,
        n_features)``."""
        cols = np.asarray(samples, dtype=np.int64)
        out = np.zeros((self.gene_index.size, self.n_features), dtype=np.float64)
        for local, _, x in self.iter_blocks(cols, whole_chunk_samples=False):
            out[local] += x.sum(axis=1, dtype=np.float64)
            if progress is not None:
                progress(int(local.size * x.shape[1]))
        return (out / max(cols.size, 1)).astype(np.float32)


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` items ahead (order preserved).

    Reading and decompressing chunks releases the GIL, so this overlaps I/O with the consumer's
    work. Exceptions in the producer are re-raised in the consumer; closing the consumer stops the
    producer.
    """
    q: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((0, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((1, None))
        except BaseException as exc:  # re-raised in the consumer
            q.put((2, exc))

    thread = threading.Thread(target=produce, daemon=True, name="chromexpr-prefetch")
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == 1:
                return
            if kind == 2:
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]


@dataclass
class RowLoader:
    """(gene, sample) rows for a neural network: chunk-aligned reads, shuffled within a bounded
    buffer.

    An epoch visits every (gene chunk, sample batch) unit of the chosen rows once, in an order drawn
    from ``(seed, epoch)``; rows of consecutive units fill a buffer of at most ``buffer_rows`` rows,
    which is shuffled and cut into batches. The same seed and epoch give the same batches, so an
    interrupted run resumes exactly.

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
        Samples per read unit (smaller units mix the buffer better).
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
    unit_samples: int = 8
    rank: int = 0
    world_size: int = 1
    shard_by: Literal["batch", "unit"] = "batch"

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {self.rank}, {self.world_size}")
        if self.shard_by not in ("batch", "unit"):
            raise ValueError(f"shard_by must be batch or unit, got {self.shard_by!r}")

    def units(self, epoch: int) -> list[tuple[slice, np.ndarray, np.ndarray]]:
        """The epoch's read units ``(gene slice, local genes, local samples)``, in visiting
        order."""
        out = []
        cols = np.asarray(self.samples, dtype=np.int64)
        for genes, local in self.source.chunks():
            sub = self.roles[np.ix_(local, cols)] == self.role
            keep_cols = cols[sub.any(axis=0)]
            for lo in range(0, keep_cols.size, self.unit_samples):
                out.append((genes, local, keep_cols[lo : lo + self.unit_samples]))
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, 1])
            out = [out[i] for i in rng.permutation(len(out))]
        if self.shard_by == "unit" and self.world_size > 1:
            out = out[self.rank :: self.world_size]
        return out

    def _rows(self, unit: tuple[slice, np.ndarray, np.ndarray]) -> Batch:
        genes, local, cols = unit
        x = self.source.read(genes, local, cols)
        if self.x_centre is not None:
            x -= self.x_centre[local][:, None, :]
        y = self.y[np.ix_(local, cols)].astype(np.float32)
        if self.y_centre is not None:
            y = y - self.y_centre[local][:, None].astype(np.float32)
        mask = self.roles[np.ix_(local, cols)] == self.role
        g = None
        if self.groups is not None:
            g = np.broadcast_to(self.groups[cols][None, :], mask.shape)[mask].astype(np.int64)
        return x[mask], y[mask], g

    def n_rows(self) -> int:
        """Rows per epoch (all ranks together)."""
        return int((self.roles[:, np.asarray(self.samples, dtype=np.int64)] == self.role).sum())

    def __call__(self, epoch: int = 0) -> Iterator[Batch]:
        """The batches of one epoch: ``(x float32 (B, p), y float32 (B,), group int64 (B,) or
        None)``."""
        if self.world_size > 1 and self.shard_by == "batch":
            yield from self._exchanged(epoch)
            return
        rng = np.random.default_rng([self.seed, epoch, 2])
        pending: list[Batch] = []
        n_pending = 0
        for part in prefetch((self._rows(u) for u in self.units(epoch)), depth=2):
            if part[0].shape[0] == 0:
                continue
            pending.append(part)
            n_pending += part[0].shape[0]
            if n_pending >= self.buffer_rows:
                rest = yield from self._emit(pending, rng, final=False)
                pending, n_pending = ([rest], rest[0].shape[0]) if rest is not None else ([], 0)
        if pending:
            yield from self._emit(pending, rng, final=True)

    def _emit(
        self, parts: list[Batch], rng: np.random.Generator, *, final: bool
    ) -> Generator[Batch, None, Batch | None]:
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        groups = [p[2] for p in parts if p[2] is not None]
        g = np.concatenate(groups) if groups else None
        if self.shuffle:
            order = rng.permutation(x.shape[0])
            x, y = x[order], y[order]
            g = None if g is None else g[order]
        n_full = x.shape[0] if final else (x.shape[0] // self.batch_size) * self.batch_size
        for lo in range(0, n_full, self.batch_size):
            hi = min(lo + self.batch_size, n_full)
            yield x[lo:hi], y[lo:hi], None if g is None else g[lo:hi]
        if n_full < x.shape[0]:
            return x[n_full:], y[n_full:], None if g is None else g[n_full:]
        return None

    # --------------------------------------------------------------------------------------------
    # Several processes: sharded reads, single-process batches
    # --------------------------------------------------------------------------------------------

    def _cut(
        self, ids: np.ndarray, rng: np.random.Generator, *, final: bool
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """:meth:`_emit` on row numbers: the buffer's batches and the rows carried over."""
        if self.shuffle:
            ids = ids[rng.permutation(ids.size)]
        n_full = ids.size if final else (ids.size // self.batch_size) * self.batch_size
        batches = [
            ids[lo : min(lo + self.batch_size, n_full)] for lo in range(0, n_full, self.batch_size)
        ]
        return batches, ids[n_full:]

    def _plan(self, units: list[tuple[slice, np.ndarray, np.ndarray]], epoch: int) -> _Plan:
        """The single-process epoch as row numbers (rows numbered unit after unit, each unit's in
        :meth:`_rows` order), computed from the roles alone: nothing is read."""
        counts = np.array(
            [int((self.roles[np.ix_(local, cols)] == self.role).sum()) for _, local, cols in units],
            dtype=np.int64,
        )
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
