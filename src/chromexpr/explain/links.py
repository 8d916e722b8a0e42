"""Gene-enhancer links: each gene's top bins as BEDPE and UCSC ``interact`` (bed5+13) rows.

A link joins a gene's TSS base ``[tss, tss + 1)`` and one of its window's bins (clipped to the
chromosome); all coordinates are **0-based, half-open**. Its strength is the bin's mean
|attribution| over the attributed samples. ``bin_offset`` is the bin start relative to the TSS in
the gene's orientation (bp, negative = upstream) and ``distance`` the unsigned distance in bp from
the TSS base to the middle of the (clipped) bin.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec
from chromexpr.explain.coordinates import bin_intervals, bin_midpoints
from chromexpr.io.bedpe import BEDPE_STANDARD_COLUMNS, bed_scores

__all__ = [
    "BEDPE_COLUMNS",
    "COMPONENT_COLUMNS",
    "INTERACT_AS",
    "INTERACT_COLUMNS",
    "LINK_COLUMNS",
    "interact_track_line",
    "links_table",
    "to_bedpe",
    "to_interact",
]

#: Columns of :func:`links_table`.
LINK_COLUMNS = [
    "chrom",
    "bin_start",
    "bin_end",
    "tss",
    "strand",
    "gene_id",
    "gene_name",
    "rank",
    "bin",
    "bin_offset",
    "distance",
    "score",
    "mean_attribution",
    "share",
]

#: Per-link components (from :mod:`chromexpr.explain.contact`), the last BEDPE columns: the bin's
#: accessibility in the attributed samples, its contact with the TSS, the model's evidence (0..1)
#: and the mean |attribution|; NaN (``.`` in the file) where the link score did not use them.
COMPONENT_COLUMNS = ["activity", "contact", "evidence", "mean_abs_attribution"]

#: BEDPE: the 10 standard columns (bedtools), then the link's gene and score details.
BEDPE_COLUMNS = [
    *BEDPE_STANDARD_COLUMNS,
    "gene_id",
    "gene_name",
    "tss",
    "strand",
    "bin_offset",
    "distance",
    "rank",
    "raw_score",
    "mean_attribution",
    "share",
    *COMPONENT_COLUMNS,
]

#: UCSC interact (bed5+13) columns, in file order.
INTERACT_COLUMNS = [
    "chrom",
    "chromStart",
    "chromEnd",
    "name",
    "score",
    "value",
    "exp",
    "color",
    "sourceChrom",
    "sourceStart",
    "sourceEnd",
    "sourceName",
    "sourceStrand",
    "targetChrom",
    "targetStart",
    "targetEnd",
    "targetName",
    "targetStrand",
]

#: autoSql of the interact format (for ``bedToBigBed -as=interact.as -type=bed5+13``): UCSC's
#: interact fields, one per line (the package file ``chromexpr/data/interact.as``).
INTERACT_AS = (
    resources.files("chromexpr").joinpath("data", "interact.as").read_text(encoding="utf-8")
)

#: Colours of links whose mean signed attribution is positive / negative (ColorBrewer RdBu ends).
POSITIVE_COLOR = "#b2182b"
NEGATIVE_COLOR = "#2166ac"


def links_table(
    genes: pd.DataFrame,
    top: np.ndarray,
    importance: np.ndarray,
    signed: np.ndarray,
    spec: BinSpec,
    *,
    chrom_size: np.ndarray,
    components: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per (gene, top bin).

    Parameters
    ----------
    genes
        The genes' rows of ``Dataset.genes`` (``gene_id, gene_name, chrom, tss, strand``), shape
        ``(n,)``.
    top
        ``(n, k)`` bin indices from :func:`~chromexpr.explain.summaries.top_bins`; -1 entries are
        skipped.
    importance
        ``(n, n_bins)`` mean |attribution| over samples (the link score).
    signed
        ``(n, n_bins)`` mean signed attribution.
    spec
        Window geometry.
    chrom_size
        ``(n,)`` length of each gene's chromosome.
    components
        Optional ``(n, n_bins)`` arrays named by :data:`COMPONENT_COLUMNS`, added as columns.

    Returns
    -------
    pandas.DataFrame
        :data:`LINK_COLUMNS` (then the ``components`` given); ``share`` is the bin's part of the
        gene's total ``importance``.

    Examples
    --------
    >>> genes = pd.DataFrame({"gene_id": ["G1"], "gene_name": ["A"], "chrom": ["chr1"],
    ...                       "tss": [5000], "strand": ["-"]})
    >>> spec = BinSpec(flank=2000, bin_size=1000)
    >>> imp = np.array([[0.0, 3.0, 1.0, 0.0]])
    >>> t = links_table(genes, np.array([[1]]), imp, imp, spec, chrom_size=np.array([10_000]))
    >>> t[["bin_start", "bin_end", "bin_offset", "distance", "share"]].to_dict("records")
    [{'bin_start': 5001, 'bin_end': 6001, 'bin_offset': -1000, 'distance': 501, 'share': 0.75}]
    """
    n, k = top.shape
    tss = genes["tss"].to_numpy(dtype=np.int64)
    minus = genes["strand"].to_numpy() == "-"
    safe = np.where(top >= 0, top, 0)
    starts, ends = bin_intervals(tss, minus, spec, chrom_size=chrom_size, bins=safe)
    total = importance.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.take_along_axis(importance, safe, axis=1) / total
    keep = (top >= 0) & (ends > starts)
    gene_row = np.broadcast_to(np.arange(n)[:, None], (n, k))[keep]
    bins = safe[keep]
    mid = bin_midpoints(starts[keep], ends[keep])
    table = pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy()[gene_row],
            "bin_start": starts[keep],
            "bin_end": ends[keep],
            "tss": tss[gene_row],
            "strand": genes["strand"].to_numpy()[gene_row],
            "gene_id": genes["gene_id"].to_numpy()[gene_row],
            "gene_name": genes["gene_name"].to_numpy()[gene_row],
            "rank": np.broadcast_to(np.arange(1, k + 1)[None, :], (n, k))[keep],
            "bin": bins,
            "bin_offset": spec.bin_offsets()[bins],
            "distance": np.abs(mid - tss[gene_row]),
            "score": importance[gene_row, bins],
            "mean_attribution": signed[gene_row, bins],
            "share": share[keep],
        }
    )
    given = components or {}
    extra = [c for c in COMPONENT_COLUMNS if c in given]
    for name in extra:
        table[name] = np.asarray(given[name], dtype=np.float64)[gene_row, bins]
    return table[[*LINK_COLUMNS, *extra]]


def to_bedpe(links: pd.DataFrame) -> pd.DataFrame:
    """BEDPE rows (lower coordinate first): the TSS anchor and the bin anchor, ordered by start.

    The TSS anchor carries the gene's strand, the bin anchor ``.``; ``name`` is the gene name,
    ``score`` the link's ``score`` scaled to BED's integer 1-1000 over the table
    (:func:`~chromexpr.io.bedpe.bed_scores`: what IGV and pyGenomeTracks draw arcs by) and
    ``raw_score`` the unscaled ``score`` (the contact-aware link score or the mean |attribution|:
    ``attribution.json`` says which); the :data:`COMPONENT_COLUMNS` come last (NaN where
    ``links`` lacks them).
    """
    tss_first = links["tss"].to_numpy() < links["bin_start"].to_numpy()
    tss_start = links["tss"].to_numpy(dtype=np.int64)
    tss_end = tss_start + 1
    b_start = links["bin_start"].to_numpy(dtype=np.int64)
    b_end = links["bin_end"].to_numpy(dtype=np.int64)
    strand = links["strand"].to_numpy()
    dot = np.full(len(links), ".", dtype=object)
    out = pd.DataFrame(
        {
            "chrom1": links["chrom"].to_numpy(),
            "start1": np.where(tss_first, tss_start, b_start),
            "end1": np.where(tss_first, tss_end, b_end),
            "chrom2": links["chrom"].to_numpy(),
            "start2": np.where(tss_first, b_start, tss_start),
            "end2": np.where(tss_first, b_end, tss_end),
            "name": links["gene_name"].to_numpy(),
            "score": bed_scores(links["score"].to_numpy(dtype=np.float64)),
            "strand1": np.where(tss_first, strand, dot),
            "strand2": np.where(tss_first, dot, strand),
            "gene_id": links["gene_id"].to_numpy(),
            "gene_name": links["gene_name"].to_numpy(),
            "tss": tss_start,
            "strand": strand,
            "bin_offset": links["bin_offset"].to_numpy(dtype=np.int64),
            "distance": links["distance"].to_numpy(dtype=np.int64),
            "rank": links["rank"].to_numpy(dtype=np.int64),
            "raw_score": links["score"].to_numpy(dtype=np.float64),
            "mean_attribution": links["mean_attribution"].to_numpy(dtype=np.float64),
            "share": links["share"].to_numpy(dtype=np.float64),
        }
    )
    for name in COMPONENT_COLUMNS:
        out[name] = links[name].to_numpy(dtype=np.float64) if name in links.columns else np.nan
    return out[BEDPE_COLUMNS]


def to_interact(links: pd.DataFrame, *, experiment: str = ".") -> pd.DataFrame:
    """UCSC ``interact`` rows, directional from the bin (source) to the gene's TSS (target).

    ``score`` is the link's mean |attribution| scaled to 0-1000 by the largest in the table,
    ``value`` the unscaled mean |attribution|, ``color`` red for a positive mean signed attribution
    and blue for a negative one; ``name`` is ``gene_id/gene_name``, ``sourceName`` the bin offset
    (``+2000``) and ``targetName`` the gene name.
    """
    value = links["score"].to_numpy(dtype=np.float64)
    top = float(value.max()) if value.size else 0.0
    scaled = np.zeros_like(value) if top <= 0 else np.round(1000.0 * value / top)
    b_start = links["bin_start"].to_numpy(dtype=np.int64)
    b_end = links["bin_end"].to_numpy(dtype=np.int64)
    t_start = links["tss"].to_numpy(dtype=np.int64)
    t_end = t_start + 1
    chrom = links["chrom"].to_numpy()
    exp = experiment.replace("\t", " ").replace(" ", "_") or "."
    out = pd.DataFrame(
        {
            "chrom": chrom,
            "chromStart": np.minimum(b_start, t_start),
            "chromEnd": np.maximum(b_end, t_end),
            "name": (
                links["gene_id"].astype(str) + "/" + links["gene_name"].astype(str)
            ).to_numpy(),
            "score": np.clip(scaled, 0, 1000).astype(np.int64),
            "value": value,
            "exp": exp,
            "color": np.where(
                links["mean_attribution"].to_numpy() >= 0, POSITIVE_COLOR, NEGATIVE_COLOR
            ),
            "sourceChrom": chrom,
            "sourceStart": b_start,
            "sourceEnd": b_end,
            "sourceName": [f"{int(o):+d}" for o in links["bin_offset"].to_numpy()],
            "sourceStrand": ".",
            "targetChrom": chrom,
            "targetStart": t_start,
            "targetEnd": t_end,
            "targetName": links["gene_name"].astype(str).to_numpy(),
            "targetStrand": links["strand"].to_numpy(),
        }
    )
    return out[INTERACT_COLUMNS]


def interact_track_line(name: str, description: str) -> str:
    """The ``track`` line that makes a UCSC custom track of interact text (directional arcs)."""
    clean = [s.replace('"', "'") for s in (name, description)]
    return (
        f'track type=interact name="{clean[0]}" description="{clean[1]}" '
        "interactDirectional=true maxHeightPixels=200:100:50 visibility=full"
    )
