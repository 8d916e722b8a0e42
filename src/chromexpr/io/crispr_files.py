"""Files of ``chromexpr evaluate-links``: CRISPRi perturbation tables in, links in, results out.

Two layouts of the ENCODE EPCrisprBenchmark table are read, told apart by their header:

* the GRCh38 file as shipped (``chrom chromStart chromEnd name EffectSize chrTSS startTSS endTSS
  measuredGeneSymbol measuredGeneEnsemblId ... ValidConnection ... Regulated Dataset ...``);
* the hg19 lift (``dataset reference cell_type gene gene_ensembl chrom chromStart chromEnd tss
  regulated significant effect_size padj valid power_es25``).

Both become :data:`CRISPR_COLUMNS`. Element coordinates are 0-based, half-open (BED); the TSS is
the 0-based position of its base. Plain or gzip-compressed files (pandas reads both).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.errors import InputError

__all__ = [
    "CRISPR_COLUMNS",
    "LINK_SCORE_COLUMNS",
    "read_crispr_table",
    "read_links_bedpe",
    "write_pr_figure",
]

#: Columns of the frame :func:`read_crispr_table` returns.
CRISPR_COLUMNS = [
    "chrom",
    "start",
    "end",
    "gene_name",
    "gene_id",
    "tss",
    "regulated",
    "valid",
    "dataset",
]

# source column of each canonical column, per layout
_LAYOUTS: dict[str, dict[str, str]] = {
    "EPCrisprBenchmark (GRCh38)": {
        "chrom": "chrom",
        "start": "chromStart",
        "end": "chromEnd",
        "gene_name": "measuredGeneSymbol",
        "gene_id": "measuredGeneEnsemblId",
        "tss": "startTSS",
        "regulated": "Regulated",
        "valid": "ValidConnection",
        "dataset": "Dataset",
    },
    "EPCrisprBenchmark (hg19 lift)": {
        "chrom": "chrom",
        "start": "chromStart",
        "end": "chromEnd",
        "gene_name": "gene",
        "gene_id": "gene_ensembl",
        "tss": "tss",
        "regulated": "regulated",
        "valid": "valid",
        "dataset": "dataset",
    },
}
_OPTIONAL = {"gene_id", "valid", "dataset"}

#: Raw-score columns of a links BEDPE, tried in this order before the BEDPE ``score`` column.
LINK_SCORE_COLUMNS = ("raw_score", "link_score", "value")

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}


def _booleans(values: pd.Series, column: str, path: Path, line: np.ndarray) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower()
    ok_true = text.isin(_TRUE).to_numpy()
    ok_false = text.isin(_FALSE).to_numpy()
    bad = ~(ok_true | ok_false)
    if bad.any():
        i = int(bad.argmax())
        raise InputError(
            f"{column} is {values.iloc[i]!r}, not TRUE/FALSE", path=path, line=int(line[i])
        )
    return ok_true


def _integers(values: pd.Series, column: str, path: Path, line: np.ndarray) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers) | (numbers < 0) | (numbers != np.round(numbers))
    if bad.any():
        i = int(bad.argmax())
        raise InputError(
            f"{column} is {values.iloc[i]!r}, not a non-negative integer",
            path=path,
            line=int(line[i]),
        )
    return numbers.astype(np.int64)


def read_crispr_table(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Read an EPCrisprBenchmark CRISPRi table (GRCh38 as shipped, or the hg19 lift).

    Parameters
    ----------
    path
        Tab-separated table with a header line (``.gz`` allowed).

    Returns
    -------
    (pandas.DataFrame, str)
        :data:`CRISPR_COLUMNS` (one row per tested element-gene pair: the element ``chrom, start,
        end``, 0-based half-open; the gene's ``gene_name``, ``gene_id`` (empty when the file has
        none) and ``tss`` (0-based); ``regulated`` and ``valid`` booleans; ``dataset``), and the
        name of the layout recognised.
    """
    p = Path(path)
    try:
        frame = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise InputError(f"cannot read the CRISPRi table ({exc})", path=p) from exc
    layout_name, layout = None, None
    for name, columns in _LAYOUTS.items():
        required = [src for dst, src in columns.items() if dst not in _OPTIONAL]
        if all(c in frame.columns for c in required):
            layout_name, layout = name, columns
            break
    if layout is None or layout_name is None:
        need = ", ".join(v for k, v in _LAYOUTS["EPCrisprBenchmark (GRCh38)"].items())
        raise InputError(
            "not an EPCrisprBenchmark table: the header lacks the expected columns",
            path=p,
            line=1,
            fix=f"give the GRCh38 file as shipped ({need}) or the hg19 lift",
        )
    if frame.empty:
        raise InputError("the CRISPRi table has no rows", path=p)
    line = np.arange(len(frame)) + 2
    start = _integers(frame[layout["start"]], layout["start"], p, line)
    end = _integers(frame[layout["end"]], layout["end"], p, line)
    bad = end <= start
    if bad.any():
        raise InputError("an element has end <= start", path=p, line=int(line[bad.argmax()]))
    tss = _integers(frame[layout["tss"]], layout["tss"], p, line)
    n = len(frame)

    def text(key: str) -> np.ndarray:
        src = layout[key]
        if src in frame.columns:
            return frame[src].astype(str).str.strip().to_numpy(dtype=object)
        return np.full(n, "", dtype=object)

    valid = (
        _booleans(frame[layout["valid"]], layout["valid"], p, line)
        if layout["valid"] in frame.columns
        else np.ones(n, dtype=bool)
    )
    out = pd.DataFrame(
        {
            "chrom": text("chrom"),
            "start": start,
            "end": end,
            "gene_name": text("gene_name"),
            "gene_id": text("gene_id"),
            "tss": tss,
            "regulated": _booleans(frame[layout["regulated"]], layout["regulated"], p, line),
            "valid": valid,
            "dataset": text("dataset"),
        },
        columns=CRISPR_COLUMNS,
    )
    return out, layout_name


def read_links_bedpe(path: str | Path, *, score_column: str | None = None) -> pd.DataFrame:
    """Read chromexpr links (``links.bedpe`` of ``chromexpr attribute``) as gene-bin scores.

    The file has a ``#`` header line naming its columns: the 10 standard BEDPE columns, then at
    least ``gene_id``, ``gene_name``, ``tss``. The gene's end is the 1-bp anchor at ``tss``; the
    other end is the linked bin. The score is ``score_column`` when given, else the first of
    :data:`LINK_SCORE_COLUMNS` present, else the BEDPE ``score`` column.

    Returns
    -------
    pandas.DataFrame
        ``gene_id, gene_name, chrom, tss, bin_start, bin_end, score`` (0-based, half-open), with
        the name of the score column used in ``attrs["score_column"]``.
    """
    p = Path(path)
    try:
        with p.open(encoding="utf-8") as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the links ({exc})", path=p) from exc
    if not header.startswith("#"):
        raise InputError(
            "no '#' header line naming the columns",
            path=p,
            line=1,
            fix="give the links.bedpe that 'chromexpr attribute' writes",
        )
    names = header[1:].rstrip("\r\n").split("\t")
    need = ["chrom1", "start1", "end1", "chrom2", "start2", "end2", "gene_id", "gene_name", "tss"]
    missing = [c for c in need if c not in names]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=p, line=1)
    if score_column is None:
        score_column = next((c for c in LINK_SCORE_COLUMNS if c in names), "score")
    if score_column not in names:
        raise InputError(
            f"no score column {score_column!r}",
            path=p,
            line=1,
            fix=f"use one of: {', '.join(names[6:])}",
        )
    frame = pd.read_csv(
        p,
        sep="\t",
        skiprows=1,
        header=None,
        names=names,
        dtype={c: str for c in ("chrom1", "chrom2", "gene_id", "gene_name", "name")},
        keep_default_na=False,
        na_values={score_column: ["NaN", "nan", "NA", "."]},
    )
    line = np.arange(len(frame)) + 2
    coords = {c: _integers(frame[c], c, p, line) for c in ("start1", "end1", "start2", "end2")}
    tss = _integers(frame["tss"], "tss", p, line)
    first_is_tss = (coords["start1"] == tss) & (coords["end1"] == tss + 1)
    second_is_tss = (coords["start2"] == tss) & (coords["end2"] == tss + 1)
    bad = ~(first_is_tss | second_is_tss)
    if bad.any():
        raise InputError(
            "neither end is the gene's 1-bp TSS anchor", path=p, line=int(line[bad.argmax()])
        )
    # when both ends are the TSS base (a 1-bp bin at the TSS) either choice is the same
    bin_first = ~first_is_tss
    score = pd.to_numeric(frame[score_column], errors="coerce").to_numpy(np.float64)
    if np.isnan(score).any():
        raise InputError(
            f"{score_column} is not a number", path=p, line=int(line[np.isnan(score).argmax()])
        )
    out = pd.DataFrame(
        {
            "gene_id": frame["gene_id"].to_numpy(dtype=object),
            "gene_name": frame["gene_name"].to_numpy(dtype=object),
            "chrom": np.where(bin_first, frame["chrom1"], frame["chrom2"]),
            "tss": tss,
            "bin_start": np.where(bin_first, coords["start1"], coords["start2"]),
            "bin_end": np.where(bin_first, coords["end1"], coords["end2"]),
            "score": score,
        }
    )
    out.attrs["score_column"] = score_column
    return out


def write_pr_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    *,
    labels: Mapping[str, str],
    prevalence: float,
    title: str,
) -> None:
    """Precision-recall curves, one step line per predictor, as a PNG (Agg, no pyplot state).

    ``curves`` maps a predictor to its ``(recall, precision)`` arrays; ``labels`` to its legend
    text. A dotted line marks the positive rate (a random ranking).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#b2182b", "#4d4d4d", "#2166ac", "#1b7837", "#762a83", "#e08214"]
    for i, (name, (recall, precision)) in enumerate(curves.items()):
        ax.step(
            recall,
            precision,
            where="post",
            color=colors[i % len(colors)],
            lw=1.6,
            label=labels.get(name, name),
        )
    ax.axhline(prevalence, color="#999999", ls=":", lw=1, label=f"random ({prevalence:.3f})")
    ax.axvline(0.7, color="#cccccc", ls="--", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
