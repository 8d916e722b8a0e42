"""Derive transcription start sites from an annotation table.

A TSS is the 5' end of a feature: ``start`` on the + strand, ``end - 1`` on the - strand, written as
the 1-bp BED interval ``[tss, tss + 1)`` (0-based, half-open).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.naming import is_primary_chrom, natural_key, strip_version
from chromexpr.schemas import TSS_COLUMNS

logger = logging.getLogger("chromexpr")

Level = Literal["gene", "transcript"]
Select = Literal["canonical", "longest", "all"]
IdField = Literal["gene_id", "gene_name"]


@dataclass(frozen=True)
class TssOptions:
    """How TSSs are derived (recorded in the provenance of every output that uses them).

    Attributes
    ----------
    level
        ``"gene"``: the gene feature's 5' end. ``"transcript"``: transcripts' 5' ends, chosen by
        ``select``.
    select
        With ``level="transcript"``: ``"canonical"`` (Ensembl_canonical/MANE tag; genes without one
        fall back to their longest transcript), ``"longest"`` (largest genomic span), ``"all"``
        (every transcript).
    gene_types
        Keep only these ``gene_type``/``gene_biotype`` values (empty: keep all).
    chroms
        ``None``: primary assembly (chr1-22, X, Y with or without ``chr``); ``()``: all;
        otherwise the chromosomes to keep.
    id_field
        Which attribute names the output rows.
    keep_version
        Keep Ensembl version suffixes in ids (default: strip them, ``ENSG...15`` -> ``ENSG...``).
    """

    level: Level = "gene"
    select: Select = "canonical"
    gene_types: tuple[str, ...] = ()
    chroms: tuple[str, ...] | None = None
    id_field: IdField = "gene_id"
    keep_version: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def _five_prime(start: np.ndarray, end: np.ndarray, strand: np.ndarray) -> np.ndarray:
    """0-based position of the 5' base of ``[start, end)`` on ``strand``."""
    return np.where(strand == "-", end - 1, start)


def _filter_chroms(table: pd.DataFrame, chroms: Sequence[str] | None) -> pd.DataFrame:
    if chroms is None:
        mask = table["chrom"].map(is_primary_chrom).astype(bool)
    elif not chroms:  # empty: every chromosome
        return table
    else:
        mask = table["chrom"].isin(list(chroms))
    return table[mask.to_numpy()]


def _choose_transcripts(tx: pd.DataFrame, select: Select) -> pd.DataFrame:
    if select == "all":
        return tx
    order = tx.sort_values(["gene_id", "length", "transcript_id"], ascending=[True, False, True])
    if select == "longest":
        return order.drop_duplicates("gene_id", keep="first")
    canonical = order[order["canonical"].to_numpy(dtype=bool)].drop_duplicates(
        "gene_id", keep="first"
    )
    missing = order[~order["gene_id"].isin(canonical["gene_id"])].drop_duplicates(
        "gene_id", keep="first"
    )
    if len(missing):
        logger.warning(
            "%d gene(s) have no canonical transcript tag; using their longest transcript",
            len(missing),
        )
    return pd.concat([canonical, missing])


def sort_tss(table: pd.DataFrame) -> pd.DataFrame:
    """Sort a TSS table by chromosome (natural order: chr2 before chr10), start, name."""
    chroms = sorted(table["chrom"].unique(), key=natural_key)
    rank = table["chrom"].map({c: i for i, c in enumerate(chroms)}).to_numpy()
    order = np.lexsort((table["name"].astype(str).to_numpy(), table["start"].to_numpy(), rank))
    return table.iloc[order].reset_index(drop=True)


def resolve_duplicates(table: pd.DataFrame, *, what: str = "id") -> pd.DataFrame:
    """Keep the first row (in sorted order) of each duplicated ``name``.

    Warns with a count and examples.
    """
    duplicated = table["name"].duplicated(keep="first")
    if bool(duplicated.any()):
        names = table.loc[duplicated, "name"].unique()
        examples = ", ".join(map(str, names[:5]))
        logger.warning(
            "%d duplicated %s(s) (e.g. %s); kept the first occurrence in chromosome/position order",
            len(names),
            what,
            examples,
        )
    return table[~duplicated.to_numpy()].reset_index(drop=True)


def tss_from_annotation(
    annotation: pd.DataFrame, options: TssOptions | None = None
) -> pd.DataFrame:
    """One TSS row per gene (or transcript) from an annotation table.

    The table is made by :func:`chromexpr.io.annotation.read_annotation`.

    Parameters
    ----------
    annotation
        Gene and transcript rows (0-based, half-open).
    options
        Level, selection, filters and id field.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, start, end, name, score, strand, gene_name, gene_type`` (plus ``gene_id``
        and, with ``level="transcript"``, ``transcript_id``); 1-bp TSS intervals, sorted, unique
        names.

    Examples
    --------
    >>> ann = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [100, 500], "end": [200, 900],
    ...     "strand": ["+", "-"], "feature": ["gene", "gene"], "gene_id": ["ENSG00000000001.3",
    ...     "ENSG00000000002.1"],
    ...     "gene_name": ["A", "B"], "gene_type": ["protein_coding"] * 2,
    ...     "transcript_id": [None, None], "canonical": [False, False], "length": [100, 400]})
    >>> rows = tss_from_annotation(ann)[["chrom", "start", "end", "name", "strand"]].values.tolist()
    >>> rows[0], rows[1]
    (['chr1', 100, 101, 'ENSG00000000001', '+'], ['chr1', 899, 900, 'ENSG00000000002', '-'])
    """
    options = options or TssOptions()
    table = annotation
    if options.gene_types:
        table = table[table["gene_type"].isin(options.gene_types).to_numpy()]
        if table.empty:
            raise InputError(f"no gene of type {', '.join(options.gene_types)} in the annotation")
    table = _filter_chroms(table, options.chroms)
    if table.empty:
        wanted = "chr1-22,X,Y" if options.chroms is None else ",".join(options.chroms) or "all"
        raise InputError(f"no gene on the requested chromosomes ({wanted})", fix="check --chroms")
    if options.level == "gene":
        rows = table[table["feature"] == "gene"]
        if rows.empty:  # GTFs with transcripts only: a gene spans its transcripts
            tx = table[table["feature"] == "transcript"]
            rows = tx.groupby(["gene_id"], as_index=False).agg(
                chrom=("chrom", "first"),
                start=("start", "min"),
                end=("end", "max"),
                strand=("strand", "first"),
                gene_name=("gene_name", "first"),
                gene_type=("gene_type", "first"),
            )
    else:
        tx = table[table["feature"] == "transcript"]
        if tx.empty:
            raise InputError("the annotation has no transcript rows", fix="use --level gene")
        rows = _choose_transcripts(tx, options.select)
    rows = rows[rows["strand"].isin(["+", "-"]).to_numpy()]
    tss = _five_prime(rows["start"].to_numpy(), rows["end"].to_numpy(), rows["strand"].to_numpy())
    gene_ids = rows["gene_id"].astype(str)
    if not options.keep_version:
        gene_ids = gene_ids.map(strip_version)
    out = pd.DataFrame(
        {
            "chrom": rows["chrom"].to_numpy(),
            "start": tss.astype(np.int64),
            "end": tss.astype(np.int64) + 1,
            "name": gene_ids.to_numpy(),
            "score": 0,
            "strand": rows["strand"].to_numpy(),
            "gene_name": rows["gene_name"].astype(str).to_numpy(),
            "gene_type": rows["gene_type"].astype(str).to_numpy(),
            "gene_id": gene_ids.to_numpy(),
        }
    )
    if options.level == "transcript":
        tx_ids = rows["transcript_id"].astype(str)
        if not options.keep_version:
            tx_ids = tx_ids.map(strip_version)
        out["transcript_id"] = tx_ids.to_numpy()
        if options.select == "all":
            out["name"] = out["transcript_id"]
    if options.id_field == "gene_name" and not (
        options.level == "transcript" and options.select == "all"
    ):
        out["name"] = out["gene_name"]
    out = sort_tss(out)
    return resolve_duplicates(
        out,
        what="transcript id"
        if options.select == "all" and options.level == "transcript"
        else options.id_field,
    )


def load_tss(path: str | Path, options: TssOptions | None = None) -> pd.DataFrame:
    """TSS table from either a TSS/gene BED or a GTF/GFF3 annotation.

    A BED is taken as written by ``chromexpr tss`` (1-bp intervals); wider BED intervals are read as
    gene bounds and reduced to their 5' end. An annotation goes through :func:`tss_from_annotation`.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`chromexpr.schemas.TSS_COLUMNS` (plus ``gene_id``), sorted, unique
        names.
    """
    from chromexpr.io.annotation import read_annotation
    from chromexpr.io.text import strip_compression_suffix
    from chromexpr.io.tss_bed import is_bed, looks_like_bed, read_tss_bed

    named = strip_compression_suffix(Path(path).name).lower().endswith((".gtf", ".gff3", ".gff"))
    if is_bed(path) or (not named and looks_like_bed(path)):
        table = read_tss_bed(path)
        tss = _five_prime(
            table["start"].to_numpy(), table["end"].to_numpy(), table["strand"].to_numpy()
        )
        table["start"] = tss
        table["end"] = tss + 1
        if options is not None and options.chroms is not None:
            table = _filter_chroms(table, options.chroms)
        if options is not None and options.gene_types:
            table = table[table["gene_type"].isin(options.gene_types).to_numpy()]
        if table.empty:
            raise InputError("no TSS left after filtering", path=path)
        table = sort_tss(table)
        return resolve_duplicates(table, what="name")
    return tss_from_annotation(read_annotation(path), options)


__all__ = [
    "TSS_COLUMNS",
    "TssOptions",
    "load_tss",
    "resolve_duplicates",
    "sort_tss",
    "tss_from_annotation",
]
