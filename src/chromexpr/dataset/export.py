"""Export a dataset to other tools' formats (deepTools ``computeMatrix``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from chromexpr.dataset.store import Dataset

__all__ = ["export_deeptools", "gene_blocks"]


def gene_blocks(
    dataset: Dataset, gene_idx: np.ndarray, positions: np.ndarray
) -> Iterator[tuple[slice, np.ndarray]]:
    """Stream chosen genes (sorted dataset indices) in storage-chunk blocks.

    Yields ``(slice into gene_idx, (genes, samples, bins) float32 array)``; each storage chunk is
    read once.
    """
    chunk = dataset.chunk_genes
    chunks = gene_idx // chunk
    bounds = np.flatnonzero(np.diff(chunks)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [gene_idx.size]])
    for lo, hi in zip(starts.tolist(), stops.tolist(), strict=True):
        first = int(chunks[lo]) * chunk
        block = dataset.read_block(slice(first, min(first + chunk, dataset.n_genes)), positions)
        yield slice(lo, hi), block[gene_idx[lo:hi] - first]


def export_deeptools(
    dataset: Dataset,
    output: str | Path | None,
    *,
    samples: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    window: int | None = None,
    factor: int = 1,
    force: bool = False,
) -> None:
    """Write chosen genes x samples of a dataset as a deepTools matrix (plotHeatmap/plotProfile).

    Parameters
    ----------
    dataset
        The binned dataset.
    output
        File, or ``-``/``None`` for standard output; gzip-compressed whatever the name, as the
        format is (deepTools reads matrices with ``gzip.open`` only).
    samples
        Sample names (default all complete samples), in the order to write.
    genes
        Gene ids, ids without version, or names (default all), written in dataset order.
    window
        Bins within this many bp of the TSS only (default the whole flank).
    factor
        Merge this many neighbouring bins (the dataset's statistic; default 1).
    force
        Replace an existing file.
    """
    from chromexpr.explain.run import select_genes, select_samples
    from chromexpr.io.deeptools_matrix import rebin, window_bins, write_deeptools_matrix
    from chromexpr.io.text import open_output

    positions = select_samples(dataset, samples)
    gene_idx = select_genes(dataset, genes)
    keep = window_bins(dataset.spec, window)  # validate before creating the output
    rebin(np.zeros(keep.stop - keep.start, dtype=np.float32), factor, dataset.spec.aggregate)
    names = [dataset.samples[int(p)] for p in positions]
    table = dataset.genes.iloc[gene_idx].reset_index(drop=True)
    with open_output(output, force=force, compress=True) as handle:
        write_deeptools_matrix(
            handle,
            table,
            gene_blocks(dataset, gene_idx, positions),
            dataset.spec,
            names,
            window=window,
            factor=factor,
        )
