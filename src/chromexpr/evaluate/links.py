"""Ground truth: do a model's per-bin scores recover the simulator's planted enhancer-gene links?

Every (gene, bin) pair a model scored is one candidate. It is **positive** when the bin overlaps the
enhancer of a planted link of *that* gene (same chromosome, intervals sharing at least one base;
0-based, half-open coordinates throughout). The evidence for a candidate is ``|score|``
(attributions and coefficients of repressive enhancers are negative). Candidates from all genes are
pooled and ranked by evidence; the summary is the area under the precision-recall curve (average
precision, AUPRC), with the prevalence (the AUPRC of a random ranking) and the AUPRC of a
distance-only ranking (nearer to the gene's TSS first) as the two baselines a model must beat.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from chromexpr.errors import InputError

__all__ = ["average_precision", "link_recovery", "roc_auc"]

NanScore = Literal["raise", "zero"]


def _binary(
    y_true: np.ndarray | pd.Series, y_score: np.ndarray | pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_true and y_score differ in length ({y.shape[0]} and {s.shape[0]})")
    if np.isnan(s).any():
        raise ValueError("y_score has NaN")
    if y.dtype != bool:
        values = set(np.unique(y).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"y_true must be 0/1 or boolean, got values {sorted(values)[:5]}")
    return y.astype(bool), s


def average_precision(y_true: np.ndarray | pd.Series, y_score: np.ndarray | pd.Series) -> float:
    """Area under the precision-recall curve, step-wise: ``AP = sum_n (R_n - R_{n-1}) P_n``.

    Thresholds are the distinct scores, highest first; ``P_n`` and ``R_n`` are the precision and
    recall of calling every candidate with a score at least the n-th threshold positive (tied scores
    enter together). This is scikit-learn's ``average_precision_score`` (no interpolation). NaN when
    there is no positive.

    Examples
    --------
    >>> average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    0.8333333333333333
    """
    y, s = _binary(y_true, y_score)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.shape[0] - 1]
    tps = tp[last].astype(np.float64)
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y_true: np.ndarray | pd.Series, y_score: np.ndarray | pd.Series) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Ties count one half (Mann-Whitney U from average ranks), which equals the trapezoidal area under
    scikit-learn's ``roc_curve``. NaN without positives or without negatives.

    Examples
    --------
    >>> roc_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    0.75
    """
    y, s = _binary(y_true, y_score)
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    v = s[order]
    new_run = np.r_[True, v[1:] != v[:-1]]
    start = np.flatnonzero(new_run)
    length = np.diff(np.r_[start, v.shape[0]])
    ranks = np.empty(v.shape[0])
    ranks[order] = np.repeat(start + (length + 1) / 2.0, length)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _any_overlap(
    q_key: np.ndarray,
    q_start: np.ndarray,
    q_end: np.ndarray,
    r_key: np.ndarray,
    r_start: np.ndarray,
    r_end: np.ndarray,
) -> np.ndarray:
    """For each query interval, whether a reference interval with the same key overlaps it.

    Keys are non-negative integers; intervals are half-open. Sort the references by (key, start) and
    keep the running maximum end within each key: the last reference of the key starting before
    ``q_end`` then holds the largest end among all that start before it, and overlap means that end
    exceeds ``q_start``.
    """
    n_q = q_key.shape[0]
    if n_q == 0 or r_key.shape[0] == 0:
        return np.zeros(n_q, dtype=bool)
    span = int(max(q_end.max(), r_end.max(), q_start.max(), r_start.max())) + 2
    n_keys = int(max(q_key.max(), r_key.max())) + 1
    if n_keys * span >= 2**62:
        raise InputError("link_recovery: coordinates too large to index")
    order = np.lexsort((r_start, r_key))
    rk = r_key[order]
    rs = r_start[order]
    re = r_end[order]
    # keys ascend, so offsetting by key * span keeps each key's running maximum within the key
    run_max = np.maximum.accumulate(rk * span + re) - rk * span
    combined = rk * span + rs
    idx = np.searchsorted(combined, q_key * span + q_end, side="left") - 1
    valid = idx >= 0
    safe = np.maximum(idx, 0)
    return valid & (rk[safe] == q_key) & (run_max[safe] > q_start)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"link_recovery: {what} lacks column(s) {', '.join(missing)}")


def link_recovery(
    scores: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    bin_size: int,
    genes: pd.DataFrame,
    nan_score: NanScore = "raise",
) -> dict[str, float]:
    """AUPRC of recovering planted enhancer-gene links from per-bin scores, beside two baselines.

    Parameters
    ----------
    scores
        One row per scored (gene, bin): ``gene_id``, ``bin_start``, ``bin_end`` (optional:
        ``bin_start + bin_size`` when absent), ``score``; optional ``chrom`` (default: the gene's
        chromosome). Genome coordinates, 0-based, half-open. ``|score|`` is the evidence that the
        bin regulates the gene.
    truth
        Planted links: ``gene_id``, ``enh_chrom``, ``enh_start``, ``enh_end`` (the enhancer,
        0-based, half-open), ``effect`` (e.g. from
        :func:`chromexpr.io.evaluation_files.read_truth_links`).
    bin_size
        Width of the model's bins in bp; bins may be narrower (clipped at chromosome ends), never
        wider.
    genes
        ``gene_id``, ``chrom``, ``tss`` (0-based position of the 1-bp TSS), ``strand`` for every
        scored gene.
    nan_score
        ``"raise"``: a NaN score is an error; ``"zero"``: it counts as no evidence.

    Returns
    -------
    dict
        ``auprc``, ``auroc`` (of ``|score|``); ``n_positive`` and ``n_bins`` (candidates);
        ``baseline_auprc`` = ``n_positive / n_bins`` (a random ranking's expected AUPRC);
        ``distance_auprc`` and ``distance_auroc`` of the score ``-|bin centre - TSS|`` (bin centre
        ``(bin_start + bin_end) / 2``, TSS centre ``tss + 0.5``) over the same candidates;
        ``n_genes`` (scored genes); ``n_links`` (planted links of scored genes) and
        ``n_links_covered`` (those whose enhancer overlaps at least one scored bin: the rest cannot
        be recovered from these scores).

    Examples
    --------
    >>> genes = pd.DataFrame({"gene_id": ["g"], "chrom": ["chr1"], "tss": [1000], "strand": ["+"]})
    >>> truth = pd.DataFrame({"gene_id": ["g"], "enh_chrom": ["chr1"], "enh_start": [1250],
    ...     "enh_end": [1300], "effect": [0.8]})
    >>> scores = pd.DataFrame({"gene_id": "g", "bin_start": [800, 900, 1000, 1100, 1200],
    ...     "score": [0.0, 0.1, -0.2, 0.1, 0.9]})
    >>> r = link_recovery(scores, truth, bin_size=100, genes=genes)
    >>> r["auprc"], r["n_positive"], r["baseline_auprc"]
    (1.0, 1, 0.2)
    """
    if bin_size < 1:
        raise InputError(f"link_recovery: bin_size must be positive, got {bin_size}")
    _require(scores, ["gene_id", "bin_start", "score"], "scores")
    _require(truth, ["gene_id", "enh_chrom", "enh_start", "enh_end"], "truth")
    _require(genes, ["gene_id", "chrom", "tss"], "genes")
    gene_table = genes.drop_duplicates("gene_id")
    gene_table = gene_table.set_index(gene_table["gene_id"].astype(str))
    gid = scores["gene_id"].astype(str).to_numpy()
    unknown = ~pd.Index(gid).isin(gene_table.index)
    if unknown.any():
        raise InputError(
            f"link_recovery: gene {gid[np.argmax(unknown)]!r} of the scores is not in genes"
        )
    start = scores["bin_start"].to_numpy(np.int64)
    if "bin_end" in scores.columns:
        end = scores["bin_end"].to_numpy(np.int64)
    else:
        end = start + int(bin_size)
    width = end - start
    if (width <= 0).any() or (width > bin_size).any():
        raise InputError(
            f"link_recovery: bins must have 0 < bin_end - bin_start <= bin_size ({bin_size}); "
            f"found widths {int(width.min())}..{int(width.max())}"
        )
    if (start < 0).any():
        raise InputError("link_recovery: negative bin_start")
    chrom = (
        scores["chrom"].astype(str).to_numpy()
        if "chrom" in scores.columns
        else gene_table.loc[gid, "chrom"].astype(str).to_numpy()
    )
    raw = scores["score"].to_numpy(np.float64)
    if np.isnan(raw).any():
        if nan_score == "raise":
            raise InputError(
                f"link_recovery: {int(np.isnan(raw).sum())} NaN score(s)",
                fix="pass nan_score='zero' to count them as no evidence",
            )
        raw = np.nan_to_num(raw, nan=0.0)
    evidence = np.abs(raw)
    if pd.DataFrame({"g": gid, "c": chrom, "s": start}).duplicated().any():
        raise InputError("link_recovery: a (gene, bin) appears more than once in the scores")

    t_gid = truth["gene_id"].astype(str).to_numpy()
    t_chrom = truth["enh_chrom"].astype(str).to_numpy()
    t_start = truth["enh_start"].to_numpy(np.int64)
    t_end = truth["enh_end"].to_numpy(np.int64)
    if (t_end <= t_start).any():
        raise InputError("link_recovery: a truth enhancer has enh_end <= enh_start")

    pairs = pd.MultiIndex.from_arrays([np.r_[gid, t_gid], np.r_[chrom, t_chrom]])
    codes = pd.factorize(pairs)[0].astype(np.int64)
    b_key, t_key = codes[: gid.shape[0]], codes[gid.shape[0] :]
    positive = _any_overlap(b_key, start, end, t_key, t_start, t_end)
    scored_gene = pd.Index(t_gid).isin(pd.Index(gid))
    covered = _any_overlap(t_key, t_start, t_end, b_key, start, end)

    tss = gene_table.loc[gid, "tss"].to_numpy(np.float64) + 0.5
    distance_score = -np.abs((start + end) / 2.0 - tss)
    n_bins = int(gid.shape[0])
    n_positive = int(positive.sum())
    return {
        "auprc": average_precision(positive, evidence),
        "auroc": roc_auc(positive, evidence),
        "n_positive": n_positive,
        "n_bins": n_bins,
        "baseline_auprc": n_positive / n_bins if n_bins else float("nan"),
        "distance_auprc": average_precision(positive, distance_score),
        "distance_auroc": roc_auc(positive, distance_score),
        "n_genes": len(set(gid.tolist())),
        "n_links": int(scored_gene.sum()),
        "n_links_covered": int((covered & scored_gene).sum()),
    }
