"""Gene layout: which genes are simulated, where their windows lie, and their gene models.

Coordinates are 0-based, half-open; a gene's TSS is the 0-based position of its 5' base (``start``
on ``+``, ``end - 1`` on ``-``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from chromexpr.errors import InputError

#: Columns of a layout table (one row per gene).
GENE_COLUMNS = ["chrom", "tss", "strand", "gene_id", "gene_name"]

#: Columns of the gene-model table that :func:`gene_models` returns (one row per GTF feature).
MODEL_COLUMNS = [
    "chrom",
    "start",
    "end",
    "strand",
    "feature",
    "gene_id",
    "transcript_id",
    "gene_name",
    "transcript_name",
    "exon_number",
    "canonical",
]

#: Fewest chromosomes a subset of at least this many genes spans (so chromosome splits are
# possible).
MIN_CHROMS_FOR_SPLITS = 3
SPLIT_GENES = 300


def order_genes(genes: pd.DataFrame, chrom_order: list[str]) -> pd.DataFrame:
    """Sort a layout by chromosome (``chrom_order``), TSS and id; drop other chromosomes."""
    rank = {c: i for i, c in enumerate(chrom_order)}
    out = genes[genes["chrom"].isin(rank)].copy()
    out["_rank"] = out["chrom"].map(rank)
    out = out.sort_values(["_rank", "tss", "gene_id"], kind="mergesort").drop(columns="_rank")
    return out.reset_index(drop=True)


def _quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` proportionally to ``counts`` (largest remainders), capped at ``counts``."""
    share = n * counts / counts.sum()
    quota = np.minimum(np.floor(share).astype(np.int64), counts)
    while quota.sum() < n:
        room = counts - quota
        remainder = np.where(room > 0, share - quota, -np.inf)
        quota[int(np.argmax(remainder))] += 1
    return quota


def select_genes(
    genes: pd.DataFrame,
    n_genes: int,
    *,
    genes_per_segment: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """A realistic subset of ``n_genes`` genes: consecutive genes on a few chromosome segments.

    Parameters
    ----------
    genes
        Layout table (:data:`GENE_COLUMNS`) sorted by chromosome and TSS.
    n_genes
        Genes wanted (at most ``len(genes)``).
    genes_per_segment
        About this many genes per chromosome segment; a subset of at least 300 genes spans at least
        3 chromosomes (when the layout has them), so chromosome-wise splits are possible.
    rng
        Random stream choosing the chromosomes (weighted by their gene counts) and segment offsets.

    Returns
    -------
    pandas.DataFrame
        The chosen rows, in the input order. Each chosen chromosome contributes one run of
        consecutive genes, its length proportional to the chromosome's gene count (whole chromosomes
        when ``n_genes`` approaches the layout size).
    """
    total = len(genes)
    if n_genes > total:
        raise InputError(
            f"--genes {n_genes} exceeds the {total} genes of the layout",
            fix=f"use --genes {total} or fewer",
        )
    if n_genes == total:
        return genes.reset_index(drop=True)
    chroms = list(dict.fromkeys(genes["chrom"]))
    counts = genes.groupby("chrom", sort=False).size().reindex(chroms).to_numpy(dtype=np.int64)
    low = MIN_CHROMS_FOR_SPLITS if n_genes >= SPLIT_GENES else 1
    k = min(max(math.ceil(n_genes / genes_per_segment), low), len(chroms))
    order = rng.choice(len(chroms), size=len(chroms), replace=False, p=counts / counts.sum())
    chosen = list(order[:k])
    for extra in order[k:]:  # too few genes on the chosen chromosomes: add more
        if counts[chosen].sum() >= n_genes:
            break
        chosen.append(extra)
    chosen.sort()
    quota = _quotas(counts[chosen].astype(np.float64), n_genes).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)])
    rows: list[np.ndarray] = []
    for ci, q in zip(chosen, quota, strict=True):
        if q == 0:
            continue
        offset = int(rng.integers(0, counts[ci] - q + 1))
        rows.append(np.arange(first[ci] + offset, first[ci] + offset + q))
    picked = np.concatenate(rows)
    return genes.iloc[picked].reset_index(drop=True)


def chrom_sizes_for(
    genes: pd.DataFrame, known: Mapping[str, int], *, window: int, chrom_order: list[str]
) -> dict[str, int]:
    """Sizes of the chromosomes ``genes`` use, in ``chrom_order``.

    A chromosome in ``known`` whose size exceeds its last TSS keeps that size; any other gets
    ``last TSS + window + 1`` (so every window fits), rounded up to a multiple of 1 kb.
    """
    last = genes.groupby("chrom")["tss"].max()
    out: dict[str, int] = {}
    for chrom in chrom_order:
        if chrom not in last.index:
            continue
        top = int(last[chrom])
        size = int(known.get(chrom, 0))
        if size <= top:
            size = int(math.ceil((top + window + 1) / 1000) * 1000)
        out[chrom] = size
    return out


def chrom_offsets(chrom_sizes: Mapping[str, int]) -> dict[str, int]:
    """Offset of each chromosome on one concatenated axis (``global = offset + position``)."""
    out: dict[str, int] = {}
    acc = 0
    for chrom, size in chrom_sizes.items():
        out[chrom] = acc
        acc += int(size)
    return out


def territory(
    genes: pd.DataFrame, chrom_sizes: Mapping[str, int], *, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merged regulatory windows ``[tss - window, tss + window + 1)`` as global ``(starts, ends)``.

    Windows are clipped to their chromosome; the result is sorted and disjoint, on the axis of
    :func:`chrom_offsets`.
    """
    offsets = chrom_offsets(chrom_sizes)
    off = genes["chrom"].map(offsets).to_numpy(dtype=np.int64)
    size = genes["chrom"].map(dict(chrom_sizes)).to_numpy(dtype=np.int64)
    tss = genes["tss"].to_numpy(dtype=np.int64)
    lo = off + np.maximum(tss - window, 0)
    hi = off + np.minimum(tss + window + 1, size)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    run_end = np.maximum.accumulate(hi)
    new = np.concatenate([[True], lo[1:] > run_end[:-1]])
    starts = lo[new]
    last_of_run = np.concatenate([np.flatnonzero(new)[1:] - 1, [len(lo) - 1]])
    ends = run_end[last_of_run]
    return starts, ends


def genes_from_tss_table(tss: pd.DataFrame) -> pd.DataFrame:
    """Layout table from the output of :func:`chromexpr.annotation.tss.load_tss`.

    ``name`` (or ``gene_id`` when present) becomes ``gene_id``; a missing ``gene_name`` falls back
    to the id; a strand other than ``-`` is read as ``+``. Duplicate ids keep their first row.
    """
    ids = tss["gene_id"] if "gene_id" in tss.columns else tss["name"]
    names = tss["gene_name"] if "gene_name" in tss.columns else ids
    out = pd.DataFrame(
        {
            "chrom": tss["chrom"].astype(str).to_numpy(),
            "tss": tss["start"].to_numpy(dtype=np.int64),
            "strand": np.where(tss["strand"].astype(str).to_numpy() == "-", "-", "+"),
            "gene_id": ids.astype(str).to_numpy(),
            "gene_name": names.astype(str).to_numpy(),
        }
    )
    bad_name = out["gene_name"].isin(["", "nan", "None", "."])
    out.loc[bad_name, "gene_name"] = out.loc[bad_name, "gene_id"]
    return out.drop_duplicates("gene_id", keep="first").reset_index(drop=True)


def _exon_structure(
    length: int, rng: np.random.Generator
) -> tuple[list[tuple[int, int]], list[tuple[int, int]] | None]:
    """Exons of a canonical and (sometimes) an alternative transcript, in transcript coordinates.

    Coordinates run from the TSS (0) downstream to ``length``; intervals are half-open. The
    alternative transcript starts at the same TSS, skips one internal exon and ends at an earlier
    exon.
    """
    n_exons = int(min(1 + rng.poisson(min(3.0 + length / 8_000.0, 25.0)), 60))
    n_exons = max(1, min(n_exons, length // 200))
    if n_exons == 1:
        return [(0, length)], None
    slots = length // 100 - 1  # cut points at multiples of 100 bp inside the gene
    cuts = (np.sort(rng.choice(slots, size=n_exons - 1, replace=False, shuffle=False)) + 1) * 100
    bounds = np.concatenate([[0], cuts, [length]])
    exons: list[tuple[int, int]] = []
    for i in range(n_exons):
        seg_lo, seg_hi = int(bounds[i]), int(bounds[i + 1])
        size = int(
            np.clip(rng.lognormal(math.log(150 if 0 < i < n_exons - 1 else 400), 0.5), 50, 3000)
        )
        size = max(1, min(size, (seg_hi - seg_lo) // 2))
        if i == n_exons - 1:  # the last exon ends at the gene's 3' end
            exons.append((seg_hi - size, seg_hi))
        else:
            exons.append((seg_lo, seg_lo + size))
    if n_exons < 4 or rng.random() >= 0.4:
        return exons, None
    skip = int(rng.integers(1, n_exons - 2))
    last = int(rng.integers(skip + 1, n_exons - 1))
    alternative = [e for i, e in enumerate(exons[: last + 1]) if i != skip]
    return exons, alternative


def gene_models(
    genes: pd.DataFrame,
    chrom_sizes: Mapping[str, int],
    *,
    length_median: float,
    length_sigma: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """GENCODE-like gene, transcript and exon features for each gene of the layout.

    Each gene gets a log-normal body length (clipped to its chromosome), one canonical transcript
    spanning the gene (ids ``ENST`` + the gene's number times 10, tagged ``Ensembl_canonical``) and,
    for some multi-exon genes, an alternative transcript from the same TSS. Every transcript starts
    at the layout's TSS, so a TSS derived from the GTF equals the layout's.

    Returns
    -------
    pandas.DataFrame
        :data:`MODEL_COLUMNS`; ``start``/``end`` 0-based, half-open; rows grouped by gene (gene,
        then each transcript followed by its exons in transcript order), genes in layout order.
    """
    records: list[tuple[object, ...]] = []
    for number, row in enumerate(genes.itertuples(index=False)):
        chrom, tss, strand = str(row.chrom), int(row.tss), str(row.strand)
        size = int(chrom_sizes[chrom])
        room = size - tss if strand == "+" else tss + 1
        length = int(
            np.clip(rng.lognormal(math.log(length_median), length_sigma), 1_000, 2_000_000)
        )
        length = max(1, min(length, room))
        canonical, alternative = _exon_structure(length, rng)

        def genomic(lo: int, hi: int, tss: int = tss, strand: str = strand) -> tuple[int, int]:
            return (tss + lo, tss + hi) if strand == "+" else (tss + 1 - hi, tss + 1 - lo)

        gene_id, gene_name = str(row.gene_id), str(row.gene_name)
        digits = "".join(ch for ch in gene_id if ch.isdigit())
        base = (int(digits) if digits else number + 1) * 10
        g_lo, g_hi = genomic(0, length)
        records.append((chrom, g_lo, g_hi, strand, "gene", gene_id, "", gene_name, "", 0, False))
        for k, exons in enumerate([canonical, alternative]):
            if exons is None:
                continue
            tx_id = f"ENST{base + k:011d}"
            tx_name = f"{gene_name}-{201 + k}"
            t_lo, t_hi = genomic(exons[0][0], exons[-1][1])
            is_canonical = k == 0
            records.append(
                (
                    chrom,
                    t_lo,
                    t_hi,
                    strand,
                    "transcript",
                    gene_id,
                    tx_id,
                    gene_name,
                    tx_name,
                    0,
                    is_canonical,
                )
            )
            for e, (lo, hi) in enumerate(exons, start=1):
                e_lo, e_hi = genomic(lo, hi)
                records.append(
                    (
                        chrom,
                        e_lo,
                        e_hi,
                        strand,
                        "exon",
                        gene_id,
                        tx_id,
                        gene_name,
                        tx_name,
                        e,
                        is_canonical,
                    )
                )
    return pd.DataFrame.from_records(records, columns=MODEL_COLUMNS)
