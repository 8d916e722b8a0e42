"""Write binned windows in deepTools' ``computeMatrix`` format (gzipped).

The output is what plotHeatmap/plotProfile read.

The file is a ``@``-prefixed JSON header with computeMatrix's parameters, then one line per region:
``chrom start end name score strand`` and the values of every sample's bins, sample after sample.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec


def matrix_header(
    spec: BinSpec, samples: list[str], n_regions: int, group_label: str = "genes"
) -> dict[str, object]:
    """computeMatrix ``reference-point --referencePoint TSS`` parameters for our geometry."""
    n = len(samples)
    return {
        "upstream": [spec.flank] * n,
        "downstream": [spec.flank] * n,
        "body": [0] * n,
        "bin size": [spec.bin_size] * n,
        "ref point": ["TSS"] * n,
        "verbose": False,
        "bin avg type": spec.aggregate,
        "missing data as zero": True,
        "min threshold": None,
        "max threshold": None,
        "scale": 1,
        "skip zeros": False,
        "nan after end": False,
        "proc number": 1,
        "sort regions": "keep",
        "sort using": "mean",
        "unscaled 5 prime": [0] * n,
        "unscaled 3 prime": [0] * n,
        "group_labels": [group_label],
        "group_boundaries": [0, n_regions],
        "sample_labels": list(samples),
        "sample_boundaries": [i * spec.n_bins for i in range(n + 1)],
    }


def write_deeptools_matrix(
    path: str | Path,
    genes: pd.DataFrame,
    blocks: Iterator[tuple[slice, np.ndarray]],
    spec: BinSpec,
    samples: list[str],
) -> None:
    """Write a computeMatrix-format file.

    Parameters
    ----------
    path
        Output (gzip-compressed).
    genes
        ``chrom, tss, strand, gene_id`` per gene (TSS written as the 1-bp region
        ``[tss, tss + 1)``).
    blocks
        ``(gene slice, (genes, samples, bins) array)`` in gene order (e.g.
        ``Dataset.iter_gene_blocks``).
    spec
        Window geometry.
    samples
        Sample labels, in the blocks' sample order.
    """
    header = matrix_header(spec, samples, len(genes))
    with gzip.open(path, "wt", compresslevel=4) as handle:
        handle.write("@" + json.dumps(header, separators=(",", ":")) + "\n")
        chrom = genes["chrom"].to_numpy()
        tss = genes["tss"].to_numpy()
        strand = genes["strand"].to_numpy()
        name = genes["gene_id"].to_numpy()
        for sl, block in blocks:
            flat = block.reshape(block.shape[0], -1)
            for row, g in enumerate(range(sl.start, sl.stop)):
                values = "\t".join(np.char.mod("%f", flat[row]))
                handle.write(
                    f"{chrom[g]}\t{tss[g]}\t{tss[g] + 1}\t{name[g]}\t0\t{strand[g]}\t{values}\n"
                )
