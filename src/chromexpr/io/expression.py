"""Expression matrices (genes x samples TSV): reading, matching to a dataset, writing predictions.

Two layouts are read, detected from the header:

* plain: ``gene_id`` (any header name) then one numeric column per sample;
* nf-core/rnaseq (``salmon.merged.gene_tpm.tsv``): ``gene_id, gene_name`` then the samples.

Genes are matched to the dataset by id with Ensembl version suffixes ignored
(:func:`chromexpr.naming.strip_version`), then, for dataset genes still unmatched, by gene name
(with a warning); samples are matched by exact name. Missing data is never filled in: an empty or
NaN value is an error that names its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.io.text import open_text
from chromexpr.log import logger
from chromexpr.naming import strip_version

__all__ = [
    "ExpressionTable",
    "MatchedExpression",
    "match_expression",
    "read_expression",
    "require_non_negative",
    "write_expression_table",
    "write_long_table",
]

#: Header names accepted for the optional second (gene name) column.
GENE_NAME_HEADERS = ("gene_name", "gene_symbol", "symbol", "name")


@dataclass(frozen=True)
class ExpressionTable:
    """An expression matrix as read from a file.

    Attributes
    ----------
    path
        Source file.
    gene_ids
        Identifiers as written (``(n_genes,)`` str).
    gene_names
        Gene names (the ids again when the file has no name column).
    samples
        Sample names, in column order.
    values
        ``float64 (n_genes, n_samples)``, untransformed (e.g. TPM).
    layout
        ``"plain"`` or ``"nf-core"``.
    """

    path: Path
    gene_ids: np.ndarray
    gene_names: np.ndarray
    samples: list[str]
    values: np.ndarray
    layout: str


@dataclass(frozen=True)
class MatchedExpression:
    """Expression aligned to a dataset.

    Attributes
    ----------
    gene_index
        ``int64 (n_matched,)``: dataset gene index of each matched gene, increasing (dataset order).
    sample_position
        ``int64 (n_samples,)``: dataset sample position of each matched sample (expression-file
        order).
    samples
        Matched sample names, same order as ``sample_position``.
    values
        ``float64 (n_matched, n_samples)``: untransformed expression.
    n_by_name
        Genes matched by name rather than id.
    unmatched_genes
        Expression-file gene ids that match no dataset gene.
    unmatched_samples
        Expression-file samples absent from the dataset.
    dataset_only_samples
        Dataset samples without expression (they can be predicted, not trained on).
    n_dataset_genes
        Genes in the dataset (so the summary can say how many have no expression).
    """

    gene_index: np.ndarray
    sample_position: np.ndarray
    samples: list[str]
    values: np.ndarray
    n_by_name: int = 0
    unmatched_genes: list[str] = field(default_factory=list)
    unmatched_samples: list[str] = field(default_factory=list)
    dataset_only_samples: list[str] = field(default_factory=list)
    n_dataset_genes: int = 0

    def summary(self) -> str:
        """One paragraph: how many genes and samples matched, and which did not."""
        n_genes, n_samples = self.values.shape
        text = (
            f"expression: {n_genes} of {self.n_dataset_genes} dataset genes matched"
            f" ({self.n_by_name} by name), {len(self.unmatched_genes)} expression genes unmatched"
        )
        if self.unmatched_genes:
            text += f" (e.g. {', '.join(self.unmatched_genes[:3])})"
        text += f"; {n_samples} samples matched"
        if self.unmatched_samples:
            text += (
                f"; {len(self.unmatched_samples)} expression sample(s) not in the dataset "
                f"(ignored): {_short(self.unmatched_samples)}"
            )
        if self.dataset_only_samples:
            text += (
                f"; {len(self.dataset_only_samples)} dataset sample(s) without expression: "
                f"{_short(self.dataset_only_samples)}"
            )
        return text


def _short(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def require_non_negative(table: ExpressionTable, transform: str) -> None:
    """Raise :class:`InputError` naming the file and line of the first negative value when
    ``transform`` takes a logarithm (``log2p1``, ``log1p``); ``none`` accepts any value.

    Examples
    --------
    >>> t = ExpressionTable(Path("e.tsv"), np.array(["g1", "g2"]), np.array(["a", "b"]),
    ...                     ["S1"], np.array([[1.0], [-2.0]]), "plain")
    >>> require_non_negative(t, "none")
    >>> require_non_negative(t, "log2p1")
    Traceback (most recent call last):
    ...
    chromexpr.errors.InputError: e.tsv:3: negative expression value -2 for gene g2 ...
    """
    if transform == "none":
        return
    negative = table.values < 0
    if not negative.any():
        return
    row, col = (int(i[0]) for i in np.nonzero(negative))
    raise InputError(
        f"negative expression value {table.values[row, col]:g} for gene {table.gene_ids[row]} "
        f"in sample {table.samples[col]!r} ({int(negative.sum())} in the file) cannot be "
        f"log-transformed ({transform})",
        path=table.path,
        line=row + 2,
        fix="give TPM or counts, or --expr-transform none for values already on a log scale",
    )


def read_expression(path: str | Path) -> ExpressionTable:
    """Read a genes x samples expression TSV (plain or nf-core/rnaseq layout; gzip allowed).

    Parameters
    ----------
    path
        Tab-separated file with a header line.

    Returns
    -------
    ExpressionTable
        Values untransformed, as float64.

    Raises
    ------
    InputError
        Missing file, no sample column, duplicated sample names, a non-numeric, empty or NaN value
        (the message names the line and sample).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "tpm.tsv"
    >>> _ = p.write_text("gene_id\\tgene_name\\tA\\tB\\nENSG01.3\\tX\\t1.5\\t0\\n")
    >>> t = read_expression(p)
    >>> t.layout, t.samples, t.values.tolist()
    ('nf-core', ['A', 'B'], [[1.5, 0.0]])
    """
    p = Path(path)
    if not p.exists():
        raise InputError("expression file not found", path=p)
    if p.is_dir():
        raise InputError("is a directory, expected an expression TSV", path=p)
    with open_text(p) as handle:
        header = handle.readline().rstrip("\n\r")
    if not header.strip():
        raise InputError("empty expression file (no header line)", path=p)
    columns = header.split("\t")
    try:
        frame = pd.read_csv(
            p,
            sep="\t",
            dtype=str,
            header=None,
            skiprows=1,
            names=list(range(len(columns))),
            keep_default_na=False,
            na_filter=False,
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=list(range(len(columns))))
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"not a tab-separated table ({exc})", path=p) from None
    if len(columns) < 2:
        raise InputError(
            "expression file needs a gene id column and at least one sample column",
            path=p,
            fix="tab-separated: gene_id[, gene_name], sample1, sample2, ...",
        )
    has_names = len(columns) >= 3 and columns[1].strip().lower() in GENE_NAME_HEADERS
    first_sample = 2 if has_names else 1
    samples = [c.strip() for c in columns[first_sample:]]
    seen: set[str] = set()
    for s in samples:
        if s in seen:
            raise InputError(f"sample {s!r} appears twice in the header", path=p, line=1)
        seen.add(s)
    if len(frame) == 0:
        raise InputError("expression file has a header but no genes", path=p)
    ids = frame.iloc[:, 0].str.strip().to_numpy(dtype=object)
    if (ids == "").any():
        row = int(np.flatnonzero(ids == "")[0])
        raise InputError("empty gene id", path=p, line=row + 2)
    names = frame.iloc[:, 1].str.strip().to_numpy(dtype=object) if has_names else ids.copy()
    raw = frame.iloc[:, first_sample:]
    values = np.empty(raw.shape, dtype=np.float64)
    for j, column in enumerate(raw.columns):
        numeric = pd.to_numeric(raw[column].str.strip(), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(numeric)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            text = str(raw[column].iloc[row])
            what = "empty value" if text.strip() == "" else f"value {text!r} is not a finite number"
            raise InputError(
                f"{what} for gene {ids[row]} in sample {samples[j]!r} "
                f"({int(bad.sum())} such value(s) in this column)",
                path=p,
                line=row + 2,
                fix="missing expression is not imputed; remove the gene or sample",
            )
        values[:, j] = numeric
    return ExpressionTable(
        path=p,
        gene_ids=ids.astype(str),
        gene_names=names.astype(str),
        samples=samples,
        values=values,
        layout="nf-core" if has_names else "plain",
    )


def match_expression(
    table: ExpressionTable,
    gene_ids: Sequence[str],
    gene_names: Sequence[str],
    samples: Sequence[str],
) -> MatchedExpression:
    """Align an expression table to a dataset's genes and samples.

    Parameters
    ----------
    table
        From :func:`read_expression`.
    gene_ids, gene_names
        The dataset's genes (store order).
    samples
        The dataset's samples.

    Returns
    -------
    MatchedExpression
        Genes in dataset order; samples in expression-file order.

    Raises
    ------
    InputError
        No gene or no sample in common.

    Notes
    -----
    Ids are compared after :func:`chromexpr.naming.strip_version`. A dataset gene without an id
    match is matched by name when exactly one expression row has that name (rows already used by an
    id match are skipped); names shared by several rows are ambiguous and left unmatched. If an
    expression id occurs twice after stripping versions, the first row is used and a warning is
    logged.

    Examples
    --------
    >>> ids = np.array(["ENSG00000000001.2", "ENSG00000000009"])
    >>> t = ExpressionTable(Path("x"), ids, np.array(["A", "B"]), ["s1"], np.array([[1.0], [2.0]]),
    ...     "nf-core")
    >>> m = match_expression(t, ["ENSG00000000001", "ENSG00000000005"], ["A", "B"], ["s1", "s2"])
    >>> m.gene_index.tolist(), m.values.tolist(), m.n_by_name
    ([0, 1], [[1.0], [2.0]], 1)
    """
    ds_ids = [strip_version(str(g)) for g in gene_ids]
    expr_ids = [strip_version(str(g)) for g in table.gene_ids]
    first_row: dict[str, int] = {}
    duplicated: list[str] = []
    for row, gid in enumerate(expr_ids):
        if gid in first_row:
            duplicated.append(gid)
        else:
            first_row[gid] = row
    if duplicated:
        logger.warning(
            "%s: %d gene id(s) occur more than once after removing version suffixes (e.g. %s); "
            "using the first row of each",
            table.path,
            len(duplicated),
            duplicated[0],
        )
    gene_rows = np.full(len(ds_ids), -1, dtype=np.int64)
    for i, gid in enumerate(ds_ids):
        gene_rows[i] = first_row.get(gid, -1)
    used = set(gene_rows[gene_rows >= 0].tolist())
    name_rows: dict[str, list[int]] = {}
    for row, name in enumerate(table.gene_names):
        if row not in used:
            name_rows.setdefault(str(name), []).append(row)
    n_by_name = 0
    for i in np.flatnonzero(gene_rows < 0).tolist():
        rows = name_rows.get(str(gene_names[i]), [])
        if len(rows) == 1 and rows[0] not in used:
            gene_rows[i] = rows[0]
            used.add(rows[0])
            n_by_name += 1
    if n_by_name:
        logger.warning(
            "%s: %d gene(s) matched by gene name because their ids did not match the dataset's",
            table.path,
            n_by_name,
        )
    matched = np.flatnonzero(gene_rows >= 0)
    if matched.size == 0:
        raise InputError(
            f"no gene of the expression file matches the dataset (file ids e.g. "
            f"{', '.join(map(str, table.gene_ids[:3]))}; dataset ids e.g. {', '.join(ds_ids[:3])})",
            path=table.path,
            fix="use the same annotation (Ensembl gene ids) for both",
        )
    ds_samples = {str(s): i for i, s in enumerate(samples)}
    columns = [j for j, s in enumerate(table.samples) if s in ds_samples]
    if not columns:
        raise InputError(
            "no sample of the expression file is in the dataset "
            f"(file: {_short(table.samples, 3)}; "
            f"dataset: {_short(list(samples), 3)})",
            path=table.path,
            fix="expression columns must be named like the dataset's samples",
        )
    matched_samples = [table.samples[j] for j in columns]
    unmatched_rows = sorted(set(range(len(expr_ids))) - used)
    return MatchedExpression(
        gene_index=matched.astype(np.int64),
        sample_position=np.asarray([ds_samples[s] for s in matched_samples], dtype=np.int64),
        samples=matched_samples,
        values=table.values[np.ix_(gene_rows[matched], np.asarray(columns, dtype=np.int64))],
        n_by_name=n_by_name,
        unmatched_genes=[str(table.gene_ids[r]) for r in unmatched_rows],
        unmatched_samples=[s for s in table.samples if s not in ds_samples],
        dataset_only_samples=[str(s) for s in samples if str(s) not in set(matched_samples)],
        n_dataset_genes=len(ds_ids),
    )


def write_expression_table(
    path: str | Path,
    gene_ids: Sequence[str],
    gene_names: Sequence[str],
    samples: Sequence[str],
    values: np.ndarray,
    *,
    force: bool = False,
) -> Path:
    """Write genes x samples in the nf-core layout (``gene_id, gene_name, <samples>``), atomically.

    Parameters
    ----------
    path
        Output TSV.
    gene_ids, gene_names
        One per row.
    samples
        Column names.
    values
        ``(n_genes, n_samples)``; written with 6 significant digits.
    force
        Replace an existing file.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(gene_ids), len(samples)):
        raise ValueError(f"values shape {values.shape} != ({len(gene_ids)}, {len(samples)})")
    frame = pd.DataFrame(values, columns=list(samples))
    frame.insert(0, "gene_name", list(gene_names))
    frame.insert(0, "gene_id", list(gene_ids))
    return write_long_table(path, frame, force=force)


def write_long_table(path: str | Path, frame: pd.DataFrame, *, force: bool = False) -> Path:
    """Write any frame as a TSV with a header, atomically (6 significant digits for floats).

    ``-`` writes to standard output and a name ending in ``.gz`` is gzip-compressed
    (:func:`chromexpr.io.text.open_output`).
    """
    from chromexpr.io.text import open_output

    final = Path(path)
    with open_output(path, force=force) as handle:
        frame.to_csv(handle, sep="\t", index=False, float_format="%.6g", lineterminator="\n")
    return final


def read_long_table(path: str | Path) -> pd.DataFrame:
    """Read a TSV written by :func:`write_long_table` (string ids kept as strings)."""
    p = Path(path)
    if not p.exists():
        raise InputError("table not found", path=p)
    return pd.read_csv(
        p,
        sep="\t",
        dtype={"gene_id": str, "gene_name": str, "sample": str, "group": str},
        keep_default_na=False,
        na_values=["NaN", "nan"],
    )
