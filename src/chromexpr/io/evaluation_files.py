"""Files of ``chromexpr evaluate``: evaluation tables (written, read) and the planted-links truth.

Tables are tab-separated with a header line, one file per table (``NAME.tsv``), each written
atomically (temporary sibling, then rename: see :mod:`chromexpr.atomic`). Missing numbers are
written ``NaN``; empty strings (e.g. a sample without a group) stay empty. Coordinates are 0-based,
half-open.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.atomic import atomic_path, check_writable
from chromexpr.errors import InputError

__all__ = [
    "STRING_COLUMNS",
    "TRUTH_BEDPE_COLUMNS",
    "TRUTH_LINK_COLUMNS",
    "read_evaluation",
    "read_truth_links",
    "write_evaluation",
]

#: Columns read back as strings whatever they hold (ids and labels that may look like numbers).
STRING_COLUMNS = (
    "gene_id",
    "gene_name",
    "sample",
    "group",
    "split",
    "model",
    "metric",
    "baseline_of",
    "by",
)
#: Columns the truth-links BEDPE must have (by name, in any order).
TRUTH_BEDPE_COLUMNS = [
    "chrom1",
    "start1",
    "end1",
    "chrom2",
    "start2",
    "end2",
    "strand1",
    "strand2",
    "gene_id",
    "gene_name",
    "effect",
]
#: Columns of the frame :func:`read_truth_links` returns.
TRUTH_LINK_COLUMNS = [
    "gene_id",
    "gene_name",
    "enh_chrom",
    "enh_start",
    "enh_end",
    "tss_chrom",
    "tss",
    "strand",
    "effect",
    "distance",
    "score",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUFFIX = ".tsv"
_NA = "NaN"


def _table_path(directory: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise ValueError(
            f"table name {name!r}: use letters, digits, '_', '.', '-' (no path separators)"
        )
    return directory / (name if name.endswith(_SUFFIX) else name + _SUFFIX)


def write_evaluation(
    directory: str | Path,
    tables: Mapping[str, pd.DataFrame],
    *,
    force: bool = False,
    float_format: str = "%.10g",
) -> dict[str, Path]:
    """Write each table to ``directory/NAME.tsv`` atomically.

    Parameters
    ----------
    directory
        Created if missing; other files in it are left alone.
    tables
        Table name (``metrics``, ``per_gene``, ...; letters, digits, ``_.-``) to frame. The index is
        not written.
    force
        Replace existing files. Without it, an existing file is an error raised before anything is
        written.
    float_format
        printf format of floating-point values.

    Returns
    -------
    dict
        Table name to the path written.
    """
    root = Path(directory)
    paths = {name: _table_path(root, name) for name in tables}
    for path in paths.values():
        check_writable(path, force=force)
    root.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        with atomic_path(paths[name], force=force) as tmp:
            frame.to_csv(
                tmp,
                sep="\t",
                index=False,
                na_rep=_NA,
                float_format=float_format,
                lineterminator="\n",
            )
    return paths


def read_evaluation(directory: str | Path) -> dict[str, pd.DataFrame]:
    """Read every ``*.tsv`` table of an evaluation directory, keyed by file name without ``.tsv``.

    Columns named in :data:`STRING_COLUMNS` are read as strings (an empty field is ``""``);
    elsewhere ``NaN`` is a missing number and ``True``/``False`` are booleans.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(
            "not a directory", path=root, fix="give the output directory of chromexpr evaluate"
        )
    out: dict[str, pd.DataFrame] = {}
    for path in sorted(root.glob("*" + _SUFFIX)):
        if path.name.startswith("."):
            continue
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split("\t")
        strings = [c for c in header if c in STRING_COLUMNS]
        na_values: dict[str, list[str]] = {c: [_NA] for c in header if c not in STRING_COLUMNS}
        na_values.update({c: [] for c in strings})
        out[path.name[: -len(_SUFFIX)]] = pd.read_csv(
            path,
            sep="\t",
            dtype={c: str for c in strings},
            keep_default_na=False,
            na_values=na_values,
        )
    return out


def read_truth_links(path: str | Path, *, genes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read the planted enhancer-gene links of ``chromexpr simulate`` (``truth/links.bedpe``).

    BEDPE with a ``#``-prefixed header line naming the columns; at least :data:`TRUTH_BEDPE_COLUMNS`
    (``name``, ``score``, ``distance`` are read when present). The lower coordinate comes first, so
    the enhancer may be either end: it is the end that is **not** the 1-bp TSS. Which end is the TSS
    is decided per row by width (exactly one end 1 bp wide); if that is ambiguous, by strand (the
    TSS end carries the gene's strand, the enhancer end ``.``); if still ambiguous and ``genes``
    (``gene_id, chrom, tss``) is given, by the gene's TSS position. A row still ambiguous is an
    error naming its line.

    Returns
    -------
    pandas.DataFrame
        :data:`TRUTH_LINK_COLUMNS`: the enhancer as ``enh_chrom, enh_start, enh_end`` (0-based,
        half-open), the TSS as ``tss_chrom, tss`` (0-based position), the gene's ``strand``,
        ``effect``, and ``distance`` and ``score`` (NaN when the file lacks them).
    """
    p = Path(path)
    try:
        if p.name.endswith(".gz"):
            with gzip.open(p, "rt", encoding="utf-8") as handle:
                header = handle.readline()
        else:
            with p.open(encoding="utf-8") as handle:
                header = handle.readline()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path=p) from exc
    if not header.startswith("#"):
        raise InputError(
            "no '#' header line naming the columns",
            path=p,
            line=1,
            fix="write the BEDPE with chromexpr simulate",
        )
    names = header[1:].rstrip("\r\n").split("\t")
    missing = [c for c in TRUTH_BEDPE_COLUMNS if c not in names]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=p, line=1)
    text_cols = ["chrom1", "chrom2", "strand1", "strand2", "gene_id", "gene_name", "name"]
    frame = pd.read_csv(
        p,
        sep="\t",
        comment=None,
        skiprows=1,
        header=None,
        names=names,
        dtype={c: str for c in text_cols if c in names},
        keep_default_na=False,
        na_values={
            c: ["NaN", "nan", "NA", ""] for c in ("effect", "distance", "score") if c in names
        },
    )
    n = len(frame)
    line = np.arange(n) + 2
    coords = {}
    for col in ("start1", "end1", "start2", "end2"):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
        if bad.any():
            raise InputError(
                f"{col} is not a non-negative integer", path=p, line=int(line[bad.argmax()])
            )
        coords[col] = values.astype(np.int64)
    w1 = coords["end1"] - coords["start1"]
    w2 = coords["end2"] - coords["start2"]
    bad = (w1 <= 0) | (w2 <= 0)
    if bad.any():
        raise InputError("an interval has end <= start", path=p, line=int(line[bad.argmax()]))
    s1 = frame["strand1"].to_numpy(dtype=str)
    s2 = frame["strand2"].to_numpy(dtype=str)
    stranded1 = np.isin(s1, ["+", "-"])
    stranded2 = np.isin(s2, ["+", "-"])
    tss_first = (w1 == 1) & (w2 != 1)
    decided = (w1 == 1) != (w2 == 1)
    by_strand = ~decided & (stranded1 != stranded2)
    tss_first = np.where(by_strand, stranded1, tss_first)
    decided |= by_strand
    if not decided.all() and genes is not None:
        table = genes.drop_duplicates("gene_id")
        table = table.set_index(table["gene_id"].astype(str))
        gid = frame["gene_id"].to_numpy(dtype=str)
        known = pd.Index(gid).isin(table.index)
        gene_tss = np.full(n, -1, dtype=np.int64)
        gene_tss[known] = table.loc[gid[known], "tss"].to_numpy(np.int64)
        at1 = (coords["start1"] == gene_tss) & (w1 == 1)
        at2 = (coords["start2"] == gene_tss) & (w2 == 1)
        by_gene = ~decided & known & (at1 != at2)
        tss_first = np.where(by_gene, at1, tss_first)
        decided |= by_gene
    if not decided.all():
        raise InputError(
            "cannot tell which end is the TSS (neither exactly one 1-bp end nor one stranded end)",
            path=p,
            line=int(line[(~decided).argmax()]),
            fix="pass the genes table (gene_id, chrom, tss)",
        )
    c1 = frame["chrom1"].to_numpy(dtype=object)
    c2 = frame["chrom2"].to_numpy(dtype=object)

    def pick(first: np.ndarray, second: np.ndarray, tss_end: bool) -> np.ndarray:
        return np.where(tss_first == tss_end, first, second)

    def number(col: str) -> np.ndarray:
        if col not in frame.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(frame[col], errors="coerce").to_numpy(np.float64)

    effect = number("effect")
    if np.isnan(effect).any():
        raise InputError(
            "effect is not a number", path=p, line=int(line[np.isnan(effect).argmax()])
        )
    return pd.DataFrame(
        {
            "gene_id": frame["gene_id"].to_numpy(dtype=object),
            "gene_name": frame["gene_name"].to_numpy(dtype=object),
            "enh_chrom": pick(c1, c2, False),
            "enh_start": pick(coords["start1"], coords["start2"], False),
            "enh_end": pick(coords["end1"], coords["end2"], False),
            "tss_chrom": pick(c1, c2, True),
            "tss": pick(coords["start1"], coords["start2"], True),
            "strand": pick(s1, s2, True),
            "effect": effect,
            "distance": number("distance"),
            "score": number("score"),
        },
        columns=TRUTH_LINK_COLUMNS,
    )
