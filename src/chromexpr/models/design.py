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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from chromexpr.dataset.store import Dataset
from chromexpr.models.transforms import FittedOpenness, OpennessConfig, SampleStatistics

__all__ = [
    "BlockSource",
    "Formulation",
    "RawCache",
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
