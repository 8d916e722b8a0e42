"""Read GTF and GFF3 annotations (plain or gzipped) through pyranges into one normalised table.

The returned frame has one row per ``gene`` or transcript-like feature, with columns
``chrom, start, end, strand, feature, gene_id, gene_name, gene_type, transcript_id, canonical,
length``. Coordinates are converted by pyranges to **0-based, half-open**.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.io.text import (
    check_gzip_complete,
    first_bad_line,
    open_text,
    require_nonempty,
    strip_compression_suffix,
)

AnnotationFormat = Literal["gtf", "gff3"]

#: Tags that mark the canonical transcript of a gene (Ensembl / GENCODE / MANE).
CANONICAL_TAGS = ("Ensembl_canonical", "MANE_Select", "canonical")

_TRANSCRIPT_FEATURES = {
    "transcript",
    "mRNA",
    "lnc_RNA",
    "lncRNA",
    "ncRNA",
    "miRNA",
    "snRNA",
    "snoRNA",
    "rRNA",
    "pseudogenic_transcript",
    "unconfirmed_transcript",
    "primary_transcript",
    "NMD_transcript_variant",
    "processed_transcript",
    "tRNA",
    "scRNA",
    "V_gene_segment",
    "C_gene_segment",
    "D_gene_segment",
    "J_gene_segment",
}


def annotation_format(path: str | Path) -> AnnotationFormat:
    """GTF or GFF3, from the file name, else from the attribute column of the first data line."""
    name = strip_compression_suffix(Path(path).name).lower()
    if name.endswith(".gtf"):
        return "gtf"
    if name.endswith((".gff3", ".gff")):
        return "gff3"
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 9:
                return "gtf" if re.search(r'\w+ "', fields[8]) else "gff3"
            break
    raise InputError(
        "cannot tell whether this is GTF or GFF3", path=path, fix="name it .gtf, .gff3 (or .gz)"
    )


def _check_gff_fields(fields: list[str]) -> str | None:
    if len(fields) < 9:
        return f"expected 9 tab-separated columns, found {len(fields)}"
    try:
        start, end = int(fields[3]), int(fields[4])
    except ValueError:
        return f"start/end must be integers, got {fields[3]!r} and {fields[4]!r}"
    if start < 1:
        return f"start must be >= 1 (GTF/GFF3 are 1-based), got {start}"
    if end < start:
        return f"end {end} is before start {start}"
    if fields[6] not in {"+", "-", ".", "?"}:
        return f"strand must be +, - or ., got {fields[6]!r}"
    return None


def _locate_problem(path: str | Path, fallback: str) -> InputError:
    bad = first_bad_line(path, _check_gff_fields)
    if bad is not None:
        line, reason = bad
        return InputError(f"malformed annotation line: {reason}", path=path, line=line)
    return InputError(f"could not read annotation: {fallback}", path=path)


def _read_raw(path: str | Path, fmt: AnnotationFormat) -> pd.DataFrame:
    import pyranges as pr

    require_nonempty(path, "annotation")
    check_gzip_complete(path)  # pyranges reads in chunks and stops quietly at a truncated stream
    try:
        if fmt == "gtf":
            frame = pr.read_gtf(str(path), as_df=True, duplicate_attr=True)
        else:
            frame = pr.read_gff3(str(path), as_df=True)
    except Exception as exc:  # pyranges raises assorted pandas/ValueErrors on bad lines
        raise _locate_problem(
            path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ) from exc
    if len(frame) == 0:
        raise InputError("no features found in annotation", path=path)
    starts = pd.to_numeric(frame["Start"], errors="coerce")
    ends = pd.to_numeric(frame["End"], errors="coerce")
    bad = starts.isna() | ends.isna() | (starts < 0) | (ends < starts) | frame["Chromosome"].isna()
    bad |= ~frame["Strand"].astype(str).isin(["+", "-", ".", "?"])
    if bool(bad.any()):
        raise _locate_problem(path, "invalid coordinates or strand")
    return frame


def _column(frame: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` present in ``frame`` (filling gaps from later ones), as strings."""
    out = pd.Series(np.full(len(frame), None, dtype=object), index=frame.index)
    for name in names:
        if name in frame.columns:
            values = frame[name].astype(object)
            values = values.where(values.notna() & (values.astype(str) != "."), None)
            out = out.where(out.notna(), values)
    return out


def _strip_prefix(values: pd.Series) -> pd.Series:
    """GFF3 ids like ``gene:ENSG...`` / ``transcript:ENST...`` -> the bare id."""
    return values.astype(object).where(
        values.isna(), values.astype(str).str.replace(r"^[A-Za-z]+:", "", regex=True)
    )


def read_annotation(path: str | Path) -> pd.DataFrame:
    """Read a GTF/GFF3 (plain or .gz) into gene and transcript rows.

    Parameters
    ----------
    path
        GTF (GENCODE/Ensembl style, ``gene_id "..."`` attributes) or GFF3 (``ID=...;Parent=...``).

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, start, end, strand, feature ("gene" | "transcript"), gene_id, gene_name,
        gene_type, transcript_id, canonical (bool), length``; 0-based half-open coordinates. Gene
        ids keep their version suffix here (see :func:`chromexpr.naming.strip_version`).

    Raises
    ------
    InputError
        Missing/empty file, or a malformed line (reported with its line number).
    """
    fmt = annotation_format(path)
    raw = _read_raw(path, fmt)
    feature = raw["Feature"].astype(str)
    if fmt == "gtf":
        gene_id = _column(raw, "gene_id")
        transcript_id = _column(raw, "transcript_id")
        is_gene = feature == "gene"
        is_tx = feature.isin(_TRANSCRIPT_FEATURES) & transcript_id.notna()
    else:
        ids = _strip_prefix(_column(raw, "ID"))
        parent = _strip_prefix(
            _column(raw, "Parent")
            .astype(object)
            .map(lambda v: v.split(",")[0] if isinstance(v, str) else v)
        )
        explicit_gene = _column(raw, "gene_id")
        is_gene = feature.isin(["gene", "ncRNA_gene", "pseudogene"]) & ids.notna()
        is_tx = feature.isin(_TRANSCRIPT_FEATURES) & parent.notna()
        gene_id = explicit_gene.where(explicit_gene.notna(), ids.where(is_gene, parent))
        transcript_id = _column(raw, "transcript_id")
        transcript_id = transcript_id.where(transcript_id.notna(), ids.where(is_tx, None))
    gene_name = _column(raw, "gene_name", "Name", "gene")
    gene_type = _column(raw, "gene_type", "gene_biotype", "biotype")
    tags = _column(raw, "tag").fillna("").astype(str)
    canonical = tags.str.contains("|".join(CANONICAL_TAGS), regex=True)
    if "Ensembl_canonical" in raw.columns:  # GFF3 flag attributes
        canonical |= raw["Ensembl_canonical"].notna()
    keep = (is_gene | is_tx) & gene_id.notna()
    table = pd.DataFrame(
        {
            "chrom": raw["Chromosome"].astype(str),
            "start": pd.to_numeric(raw["Start"]).astype(np.int64),
            "end": pd.to_numeric(raw["End"]).astype(np.int64),
            "strand": raw["Strand"].astype(str),
            "feature": np.where(is_gene, "gene", "transcript"),
            "gene_id": gene_id,
            "gene_name": gene_name,
            "gene_type": gene_type,
            "transcript_id": transcript_id.where(is_tx, None),
            "canonical": canonical & is_tx,
        }
    )[keep.to_numpy()]
    if table.empty:
        raise InputError("no gene or transcript features with a gene id", path=path)
    # GTFs without gene rows (some UCSC exports): gene name/type from any row of the gene
    for column in ("gene_name", "gene_type"):
        fill = table.groupby("gene_id")[column].transform("first")
        table[column] = table[column].where(table[column].notna(), fill)
    table["gene_name"] = table["gene_name"].where(table["gene_name"].notna(), table["gene_id"])
    table["gene_type"] = table["gene_type"].fillna("unknown")
    table["length"] = table["end"] - table["start"]
    return table.reset_index(drop=True)
