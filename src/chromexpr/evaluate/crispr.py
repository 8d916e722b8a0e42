"""Links scored against CRISPRi perturbations (the ENCODE EPCrisprBenchmark convention).

Each tested element-gene pair of a CRISPRi table is one candidate; it is **positive** when the
perturbation ``Regulated`` the gene (significant with a negative effect). The convention (ABC,
ENCODE-rE2G, EngreitzLab's CRISPR_comparison):

1. keep the *valid* pairs whose element centre ``(start + end) / 2`` lies within ``max_distance``
   of the gene's TSS (the predictor's range; 1 Mb for chromexpr's default window), and whose gene
   the links cover (it appears in the main links);
2. a pair's score is the largest score of the gene's links whose bin overlaps the element (at least
   one shared base, 0-based half-open coordinates); ``fill`` (0) where no bin does;
3. rank all kept pairs together: AUPRC (average precision, no interpolation, as scikit-learn's
   ``average_precision_score``), precision at 70 % recall, and the same for the distance-only
   baseline ``-|element centre - TSS|`` on exactly the same pairs, with a percentile bootstrap
   interval over pairs of the AUPRC difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.evaluate.links import average_precision, roc_auc
from chromexpr.naming import strip_version

__all__ = [
    "DISTANCE",
    "PAIR_COLUMNS",
    "CrisprEvaluation",
    "bootstrap_difference",
    "evaluate_links",
    "evaluate_links_files",
    "pr_curve",
    "precision_at_recall",
    "score_pairs",
]

#: Name of the distance-only baseline predictor.
DISTANCE = "distance"

#: Leading columns of the per-pair table (one score column per predictor follows).
PAIR_COLUMNS = [
    "chrom",
    "start",
    "end",
    "gene_name",
    "gene_id",
    "tss",
    "distance",
    "regulated",
    "dataset",
]


def _chrom_key(chrom: pd.Series | np.ndarray) -> np.ndarray:
    """Chromosome names without a leading ``chr`` (so ``chr1`` and ``1`` match)."""
    return (
        pd.Series(np.asarray(chrom, dtype=object))
        .astype(str)
        .str.replace(r"^chr", "", regex=True)
        .to_numpy(dtype=object)
    )


def pr_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at each distinct score threshold, highest score first.

    Tied scores enter together (one point per distinct score). Returns ``(recall, precision)``,
    each of length ``n_thresholds``, recall non-decreasing.

    Examples
    --------
    >>> r, p = pr_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    >>> r.tolist(), p.round(3).tolist()
    ([0.5, 0.5, 1.0, 1.0], [1.0, 0.5, 0.667, 0.5])
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(y_score, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.shape[0] - 1]
    n_pos = max(int(y.sum()), 1)
    tps = tp[last].astype(np.float64)
    return tps / n_pos, tps / (last + 1)


def precision_at_recall(y_true: np.ndarray, y_score: np.ndarray, recall: float = 0.7) -> float:
    """Precision at the highest score threshold whose recall reaches ``recall``.

    Examples
    --------
    >>> precision_at_recall(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]), 0.7)
    0.6666666666666666
    """
    y = np.asarray(y_true, dtype=bool)
    if not y.any():
        return float("nan")
    r, p = pr_curve(y, y_score)
    return float(p[int(np.argmax(r >= recall - 1e-12))])


def bootstrap_difference(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval (over pairs) of ``AUPRC(score_a) - AUPRC(score_b)``.

    Both scores are evaluated on the same resampled pairs each time, so the interval reflects
    their paired difference. Returns ``(difference, low, high)``; the difference is that of the
    full sample.

    Examples
    --------
    >>> y = np.array([1, 0, 1, 0, 0, 1, 0, 0])
    >>> d, lo, hi = bootstrap_difference(y, y * 1.0, -np.arange(8.0), n_boot=200, seed=1)
    >>> bool(lo <= d <= hi), round(d, 3)
    (True, 0.278)
    """
    y = np.asarray(y_true, dtype=bool)
    a = np.asarray(score_a, dtype=np.float64)
    b = np.asarray(score_b, dtype=np.float64)
    diff = average_precision(y, a) - average_precision(y, b)
    if n_boot < 1:
        return diff, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    out = np.full(n_boot, np.nan)
    for i in range(n_boot):
        idx = rng.integers(0, n, size=n)
        if not y[idx].any():
            continue
        out[i] = average_precision(y[idx], a[idx]) - average_precision(y[idx], b[idx])
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.nanpercentile(out, [tail, 100.0 - tail])
    return diff, float(lo), float(hi)


def _gene_keys(
    pairs: pd.DataFrame, links: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer gene keys shared by pairs and links; -1 for pairs whose gene the links lack.

    A pair matches a link gene by Ensembl id (versions dropped) when both have one, otherwise by
    gene name. Returns ``(pair_key, link_key, matched_by_id)``.
    """
    link_ids = links["gene_id"].astype(str).map(strip_version).to_numpy(dtype=object)
    link_names = links["gene_name"].astype(str).to_numpy(dtype=object)
    id_code: dict[str, int] = {}
    name_code: dict[str, int] = {}
    link_key = np.empty(len(links), dtype=np.int64)
    for i, (gid, name) in enumerate(zip(link_ids, link_names, strict=True)):
        key = id_code.get(gid)
        if key is None:
            key = name_code.get(name) if name and name not in (".", "nan") else None
        if key is None:
            key = len(id_code) + len(name_code)
        id_code.setdefault(gid, key)
        if name and name not in (".", "nan"):
            name_code.setdefault(name, key)
        link_key[i] = key
    pair_ids = pairs["gene_id"].astype(str).map(strip_version).to_numpy(dtype=object)
    pair_names = pairs["gene_name"].astype(str).to_numpy(dtype=object)
    pair_key = np.full(len(pairs), -1, dtype=np.int64)
    by_id = np.zeros(len(pairs), dtype=bool)
    for i, (gid, name) in enumerate(zip(pair_ids, pair_names, strict=True)):
        if gid and gid in id_code:
            pair_key[i] = id_code[gid]
            by_id[i] = True
        elif name in name_code:
            pair_key[i] = name_code[name]
    return pair_key, link_key, by_id


def _max_overlapping(
    q_key: np.ndarray,
    q_chrom: np.ndarray,
    q_start: np.ndarray,
    q_end: np.ndarray,
    links: pd.DataFrame,
    link_key: np.ndarray,
    *,
    fill: float,
) -> np.ndarray:
    """For each query (gene key, element), the largest score of that gene's overlapping bins."""
    out = np.full(q_key.shape[0], fill, dtype=np.float64)
    if len(links) == 0:
        return out
    l_chrom = _chrom_key(links["chrom"])
    codes, uniques = pd.factorize(pd.Series(np.r_[l_chrom, q_chrom]))
    lc, qc = codes[: len(links)].astype(np.int64), codes[len(links) :].astype(np.int64)
    n_chrom = max(len(uniques), 1)
    ls = links["bin_start"].to_numpy(np.int64)
    le = links["bin_end"].to_numpy(np.int64)
    score = links["score"].to_numpy(np.float64)
    span = int(max(le.max(), q_end.max() if q_end.size else 0)) + 2
    group = link_key * n_chrom + lc
    order = np.lexsort((ls, group))
    g_sorted, s_sorted, e_sorted, v_sorted = group[order], ls[order], le[order], score[order]
    width = int((le - ls).max())
    combined = g_sorted.astype(np.float64) * span + s_sorted
    q_group = q_key * n_chrom + qc
    base = q_group.astype(np.float64) * span
    hi = np.searchsorted(combined, base + q_end, side="left")
    lo = np.searchsorted(combined, base + q_start - width, side="left")
    for i in np.flatnonzero((q_key >= 0) & (hi > lo)):
        sl = slice(lo[i], hi[i])
        hit = (g_sorted[sl] == q_group[i]) & (e_sorted[sl] > q_start[i])
        if hit.any():
            out[i] = max(fill, float(v_sorted[sl][hit].max()))
    return out


def score_pairs(
    pairs: pd.DataFrame,
    predictors: Mapping[str, pd.DataFrame],
    *,
    max_distance: int = 1_000_000,
    fill: float = 0.0,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The per-pair table: every kept CRISPRi pair with each predictor's score and the distance.

    Parameters
    ----------
    pairs
        CRISPRi pairs, :data:`~chromexpr.io.crispr_files.CRISPR_COLUMNS`.
    predictors
        Name -> links (``gene_id, gene_name, chrom, bin_start, bin_end, score``; higher = stronger
        link). The first decides which genes are covered; the others score 0 where they lack a
        gene. The name ``distance`` is reserved for the baseline.
    max_distance
        Largest distance (bp) from the TSS to the element centre of a kept pair.
    fill
        Score of a pair no bin of its gene overlaps (the convention's 0). Must not exceed any link
        score, so that a missing link never outranks a scored one.

    Returns
    -------
    (pandas.DataFrame, dict)
        :data:`PAIR_COLUMNS`, then one score column per predictor and ``distance_score`` (``-
        distance``); and the counts: ``n_rows``, ``n_valid``, ``n_in_range``, ``n_gene_scored``
        (kept), ``n_matched_by_id``.
    """
    if not predictors:
        raise InputError("no links to score")
    if DISTANCE in predictors:
        raise InputError(f"the predictor name {DISTANCE!r} is reserved for the baseline")
    for name, links in predictors.items():
        if len(links) and float(links["score"].min()) < fill:
            raise InputError(
                f"links {name!r} have scores below the fill value {fill} (min "
                f"{float(links['score'].min()):.4g})",
                fix="give scores where higher means a stronger link and none is negative",
            )
    centre = (pairs["start"].to_numpy(np.float64) + pairs["end"].to_numpy(np.float64)) / 2.0
    distance = np.abs(centre - (pairs["tss"].to_numpy(np.float64) + 0.5))
    valid = pairs["valid"].to_numpy(dtype=bool)
    in_range = valid & (distance <= max_distance)
    first = next(iter(predictors.values()))
    key, _, by_id = _gene_keys(pairs, first)
    keep = in_range & (key >= 0)
    counts = {
        "n_rows": len(pairs),
        "n_valid": int(valid.sum()),
        "n_in_range": int(in_range.sum()),
        "n_gene_scored": int(keep.sum()),
        "n_matched_by_id": int((keep & by_id).sum()),
    }
    kept = pairs.loc[keep].reset_index(drop=True)
    table = pd.DataFrame(
        {
            "chrom": kept["chrom"].to_numpy(dtype=object),
            "start": kept["start"].to_numpy(np.int64),
            "end": kept["end"].to_numpy(np.int64),
            "gene_name": kept["gene_name"].to_numpy(dtype=object),
            "gene_id": kept["gene_id"].to_numpy(dtype=object),
            "tss": kept["tss"].to_numpy(np.int64),
            "distance": distance[keep],
            "regulated": kept["regulated"].to_numpy(dtype=bool),
            "dataset": kept["dataset"].to_numpy(dtype=object),
        }
    )
    q_chrom = _chrom_key(kept["chrom"])
    q_start = kept["start"].to_numpy(np.int64)
    q_end = kept["end"].to_numpy(np.int64)
    for name, links in predictors.items():
        p_key, l_key, _ = _gene_keys(kept, links)
        table[name] = _max_overlapping(p_key, q_chrom, q_start, q_end, links, l_key, fill=fill)
    table["distance_score"] = -table["distance"]
    return table, counts


@dataclass(frozen=True)
class CrisprEvaluation:
    """What :func:`evaluate_links` measured."""

    metrics: pd.DataFrame
    pairs: pd.DataFrame
    counts: dict[str, int]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The metrics as ``{predictor: {metric: value}}`` (for JSON)."""
        rows = self.metrics.set_index("predictor").to_dict(orient="index")
        return {str(k): {str(m): v for m, v in row.items()} for k, row in rows.items()}


def evaluate_links(
    pairs: pd.DataFrame,
    predictors: Mapping[str, pd.DataFrame],
    *,
    max_distance: int = 1_000_000,
    recall: float = 0.7,
    n_boot: int = 1000,
    seed: int = 0,
) -> CrisprEvaluation:
    """Score links against CRISPRi pairs beside the distance-only baseline.

    Parameters
    ----------
    pairs
        CRISPRi pairs (:func:`~chromexpr.io.crispr_files.read_crispr_table`).
    predictors
        Name -> links (:func:`~chromexpr.io.crispr_files.read_links_bedpe`); the first is the one
        under test and decides which genes are covered.
    max_distance
        Largest TSS-element distance of a kept pair (bp).
    recall
        Recall at which precision is reported.
    n_boot, seed
        Bootstrap resamples over pairs (0: none) and their seed.

    Returns
    -------
    CrisprEvaluation
        ``metrics``: one row per predictor then ``distance``: ``predictor, auprc, auroc,
        precision_at_recall, recall_level, n_pairs, n_positive, positive_rate,
        auprc_minus_distance, ci_low, ci_high`` (the bootstrap interval of the AUPRC difference
        from the distance baseline, NaN for the baseline itself); ``pairs``: the per-pair table of
        :func:`score_pairs`; the counts; and each predictor's PR curve.
    """
    table, counts = score_pairs(pairs, predictors, max_distance=max_distance)
    y = table["regulated"].to_numpy(dtype=bool)
    if y.size == 0:
        raise InputError(
            "no CRISPRi pair is left to score (valid, within range, gene among the links)",
            fix="check that the links and the CRISPRi table use the same assembly and gene ids",
        )
    if not y.any():
        raise InputError("none of the pairs left to score is Regulated: AUPRC is undefined")
    columns = [*predictors, "distance_score"]
    rows = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    base = table["distance_score"].to_numpy(np.float64)
    for i, col in enumerate(columns):
        s = table[col].to_numpy(np.float64)
        name = DISTANCE if col == "distance_score" else col
        if col == "distance_score":
            diff, lo, hi = float("nan"), float("nan"), float("nan")
        else:
            diff, lo, hi = bootstrap_difference(y, s, base, n_boot=n_boot, seed=seed + i)
        rows.append(
            {
                "predictor": name,
                "auprc": average_precision(y, s),
                "auroc": roc_auc(y, s),
                "precision_at_recall": precision_at_recall(y, s, recall),
                "recall_level": recall,
                "n_pairs": int(y.size),
                "n_positive": int(y.sum()),
                "positive_rate": float(y.mean()),
                "auprc_minus_distance": diff,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
        curves[name] = pr_curve(y, s)
    return CrisprEvaluation(pd.DataFrame(rows), table, counts, curves)


def evaluate_links_files(
    links: str | Path,
    crispr: str | Path,
    output_dir: str | Path,
    *,
    compare: Mapping[str, str | Path] | None = None,
    name: str = "links",
    score_column: str | None = None,
    max_distance: int = 1_000_000,
    recall: float = 0.7,
    n_boot: int = 1000,
    seed: int = 0,
    force: bool = False,
) -> dict[str, Path]:
    """Read links and a CRISPRi table, evaluate, write the results directory atomically.

    Output directory::

        metrics.tsv          one row per predictor (see :func:`evaluate_links`), distance last
        pairs.tsv            the per-pair table (kept pairs, each predictor's score)
        pr_curve.png         precision-recall curves with the distance baseline
        evaluate_links.json  counts, options, metrics, provenance (inputs' checksums)

    Parameters
    ----------
    links
        ``links.bedpe`` of ``chromexpr attribute`` (the predictor under test).
    crispr
        EPCrisprBenchmark table (GRCh38 as shipped, or the hg19 lift).
    output_dir
        Directory to write; replaced only with ``force``.
    compare
        More links to score on the same pairs: name -> BEDPE path.
    name
        Name of the predictor under test in the outputs.
    score_column, max_distance, recall, n_boot, seed
        See :func:`~chromexpr.io.crispr_files.read_links_bedpe` and :func:`evaluate_links`.
    force
        Replace an existing output directory.

    Returns
    -------
    dict
        Output name -> path.
    """
    from chromexpr.atomic import atomic_path, check_writable
    from chromexpr.io.attribution_files import write_json, write_tsv
    from chromexpr.io.crispr_files import read_crispr_table, read_links_bedpe, write_pr_figure
    from chromexpr.log import logger
    from chromexpr.provenance import record

    final = check_writable(output_dir, force=force)
    if max_distance < 1:
        raise InputError(f"max_distance must be a positive number of bp, got {max_distance}")
    if not 0.0 < recall <= 1.0:
        raise InputError(f"recall must be in (0, 1], got {recall}")
    if n_boot < 0:
        raise InputError(f"n_boot must be 0 or more, got {n_boot}")
    pairs, layout = read_crispr_table(crispr)
    paths: dict[str, Path] = {name: Path(links), **{k: Path(v) for k, v in (compare or {}).items()}}
    if len(paths) != 1 + len(compare or {}) or DISTANCE in paths:
        raise InputError(
            f"predictor names must be distinct and not {DISTANCE!r}: {', '.join(paths)}"
        )
    predictors = {k: read_links_bedpe(p, score_column=score_column) for k, p in paths.items()}
    result = evaluate_links(
        pairs, predictors, max_distance=max_distance, recall=recall, n_boot=n_boot, seed=seed
    )
    m = result.metrics.set_index("predictor")
    logger.info(
        "%d pairs (%d regulated): AUPRC %s %.3f vs distance %.3f (difference %.3f, %d%% CI "
        "%.3f..%.3f)",
        int(m.loc[name, "n_pairs"]),
        int(m.loc[name, "n_positive"]),
        name,
        m.loc[name, "auprc"],
        m.loc[DISTANCE, "auprc"],
        m.loc[name, "auprc_minus_distance"],
        95,
        m.loc[name, "ci_low"],
        m.loc[name, "ci_high"],
    )
    labels = {k: f"{k} (AUPRC {m.loc[k, 'auprc']:.3f})" for k in [*predictors, DISTANCE]}
    with atomic_path(final, force=force) as tmp:
        tmp.mkdir(parents=True)
        write_tsv(result.metrics, tmp / "metrics.tsv")
        write_tsv(result.pairs, tmp / "pairs.tsv")
        write_pr_figure(
            result.curves,
            tmp / "pr_curve.png",
            labels=labels,
            prevalence=float(m.loc[name, "positive_rate"]),
            title=f"{Path(crispr).name}: {int(m.loc[name, 'n_pairs'])} pairs",
        )
        write_json(
            {
                "format": "chromexpr-evaluate-links",
                "format_version": 1,
                "crispr_layout": layout,
                "score_columns": {k: v.attrs.get("score_column") for k, v in predictors.items()},
                "convention": (
                    "valid pairs, element centre within max_distance of the TSS, gene among the "
                    "links; pair score = max over the gene's bins overlapping the element (0 "
                    "where none); positives = Regulated; distance baseline = -|centre - TSS|; "
                    "bootstrap over pairs, percentile interval"
                ),
                "counts": result.counts,
                "metrics": result.summary(),
                "provenance": record(
                    step="evaluate-links",
                    parameters={
                        "links": {k: str(v) for k, v in paths.items()},
                        "crispr": str(crispr),
                        "max_distance": max_distance,
                        "recall": recall,
                        "n_boot": n_boot,
                        "seed": seed,
                        "score_column": score_column,
                    },
                    inputs=[crispr, *paths.values()],
                ),
            },
            tmp / "evaluate_links.json",
        )
    return {
        "metrics": final / "metrics.tsv",
        "pairs": final / "pairs.tsv",
        "pr_curve": final / "pr_curve.png",
        "provenance": final / "evaluate_links.json",
    }
