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
from typing import Literal, TypeVar

import numpy as np

from chromexpr.dataset.store import Dataset
from chromexpr.models.transforms import FittedOpenness, OpennessConfig, SampleStatistics

__all__ = [
    "BlockSource",
    "Formulation",
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
    """

    dataset: Dataset
    gene_index: np.ndarray
    sample_position: np.ndarray
    stats: SampleStatistics
    openness: FittedOpenness
    bins: np.ndarray | None = None

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
        """Rows per epoch."""
        return int((self.roles[:, np.asarray(self.samples, dtype=np.int64)] == self.role).sum())

    def __call__(self, epoch: int = 0) -> Iterator[Batch]:
        """The batches of one epoch: ``(x float32 (B, p), y float32 (B,), group int64 (B,) or
        None)``."""
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
