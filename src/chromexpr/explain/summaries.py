"""Summaries of attributions: the profile by bin offset and each gene's top bins.

Both are computed from streamed blocks of ``(genes, bins)`` attributions so that no gene x sample x
bin tensor is ever held. Bins wholly outside their chromosome (windows of genes near a chromosome
end) are left out of every summary: they are not in the genome.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec

__all__ = ["ALL_GROUPS", "ProfileAccumulator", "per_gene_table", "top_bins"]

#: Group label of the profile rows over every attributed sample.
ALL_GROUPS = "all"


class ProfileAccumulator:
    """Running mean of |attribution| (and of the signed attribution) by bin, overall and per group.

    Parameters
    ----------
    n_bins
        Bins per window.
    groups
        Group names (rows of the per-group profile), in output order.

    Examples
    --------
    >>> acc = ProfileAccumulator(2, ["a"])
    >>> acc.add(np.array([[1.0, -2.0]]), np.array([[True, True]]), group="a")
    >>> acc.add(np.array([[3.0, 0.0]]), np.array([[True, False]]), group="a")
    >>> acc.table(BinSpec(flank=1000, bin_size=1000))[["group", "bin", "n", "mean_abs_attribution"]]
      group  bin  n  mean_abs_attribution
    0   all    0  2                   2.0
    1   all    1  1                   2.0
    2     a    0  2                   2.0
    3     a    1  1                   2.0
    """

    def __init__(self, n_bins: int, groups: Sequence[str]) -> None:
        self.groups = [ALL_GROUPS, *[g for g in dict.fromkeys(groups) if g and g != ALL_GROUPS]]
        self._row = {g: i for i, g in enumerate(self.groups)}
        shape = (len(self.groups), n_bins)
        self._abs = np.zeros(shape, dtype=np.float64)
        self._signed = np.zeros(shape, dtype=np.float64)
        self._n = np.zeros(shape, dtype=np.int64)

    def add(self, attributions: np.ndarray, valid: np.ndarray, *, group: str | None) -> None:
        """Add one sample's ``(n_genes, n_bins)`` attributions; ``valid``: bins in the genome.

        ``group`` None (or empty) counts the sample in the overall profile only.
        """
        a = np.where(valid, attributions, 0.0)
        abs_sum = np.abs(a).sum(axis=0)
        signed_sum = a.sum(axis=0)
        count = valid.sum(axis=0)
        rows = [0] if not group or group == ALL_GROUPS else [0, self._row[group]]
        for r in rows:
            self._abs[r] += abs_sum
            self._signed[r] += signed_sum
            self._n[r] += count

    def table(self, spec: BinSpec) -> pd.DataFrame:
        """Long table: ``group, bin, bin_offset, n, mean_abs_attribution, mean_attribution``.

        ``bin_offset`` is the bin start relative to the TSS in the gene's orientation (bp; negative
        = upstream); ``n`` counts the (gene, sample) pairs averaged; groups with no data are
        dropped.
        """
        frames = []
        offsets = spec.bin_offsets()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_abs = self._abs / self._n
            mean = self._signed / self._n
        for r, group in enumerate(self.groups):
            if r > 0 and not self._n[r].any():
                continue
            frames.append(
                pd.DataFrame(
                    {
                        "group": group,
                        "bin": np.arange(spec.n_bins, dtype=np.int64),
                        "bin_offset": offsets,
                        "n": self._n[r],
                        "mean_abs_attribution": mean_abs[r],
                        "mean_attribution": mean[r],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


def top_bins(importance: np.ndarray, k: int, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Indices of each row's ``k`` largest values, largest first (ties: lower bin first).

    Parameters
    ----------
    importance
        ``(n_genes, n_bins)`` non-negative importance (e.g. mean |attribution| over samples).
    k
        Bins per gene (capped at ``n_bins``).
    valid
        ``(n_genes, n_bins)`` bool; invalid bins are never chosen (their index is -1 when a gene has
        fewer than ``k`` valid bins).

    Returns
    -------
    numpy.ndarray
        int64 ``(n_genes, min(k, n_bins))``.

    Examples
    --------
    >>> top_bins(np.array([[0.1, 0.5, 0.3], [1.0, 0.0, 2.0]]), 2).tolist()
    [[1, 2], [2, 0]]
    """
    imp = np.asarray(importance, dtype=np.float64)
    k = min(int(k), imp.shape[1])
    score = np.where(valid, imp, -np.inf) if valid is not None else imp
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    if valid is not None:
        ok = np.take_along_axis(np.asarray(valid, dtype=bool), order, axis=1)
        order = np.where(ok, order, -1)
    return order.astype(np.int64)


def per_gene_table(
    genes: pd.DataFrame,
    importance: np.ndarray,
    signed: np.ndarray,
    top: np.ndarray,
    spec: BinSpec,
    *,
    valid: np.ndarray,
    n_samples: int,
) -> pd.DataFrame:
    """One row per gene: total attribution and its top bins with their share of the total.

    Parameters
    ----------
    genes
        The genes' rows of ``Dataset.genes`` (``gene_id, gene_name, chrom, tss, strand``).
    importance
        ``(n_genes, n_bins)`` mean |attribution| over the attributed samples.
    signed
        ``(n_genes, n_bins)`` mean signed attribution.
    top
        ``(n_genes, k)`` from :func:`top_bins` (-1 = none).
    spec
        Window geometry.
    valid
        ``(n_genes, n_bins)`` bins inside the chromosome.
    n_samples
        Samples averaged.

    Returns
    -------
    pandas.DataFrame
        ``gene_id, gene_name, chrom, tss, strand, n_samples, total_abs_attribution,
        total_attribution, top_k, top_share, best_bin_offset, best_share, tss_bin_share,
        top_bin_offsets, top_bin_shares``; a share is a bin's mean |attribution| over the gene's
        total over its in-genome bins (NaN when the total is 0); offsets are bin starts relative to
        the TSS in the gene's orientation (bp).
    """
    if top.ndim != 2 or top.shape[1] == 0:
        raise ValueError("top must hold at least one bin per gene")
    imp = np.where(valid, importance, 0.0)
    total = imp.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = imp / total[:, None]
    has = top >= 0
    safe = np.where(has, top, 0)
    top_share = np.where(has, np.take_along_axis(share, safe, axis=1), 0.0)
    offsets = spec.bin_offsets()[safe]
    offset_text = [
        ",".join(str(int(o)) for o, h in zip(row, hrow, strict=True) if h)
        for row, hrow in zip(offsets, has, strict=True)
    ]
    share_text = [
        ",".join(f"{s:.4g}" for s, h in zip(row, hrow, strict=True) if h)
        for row, hrow in zip(top_share, has, strict=True)
    ]
    return pd.DataFrame(
        {
            "gene_id": genes["gene_id"].to_numpy(),
            "gene_name": genes["gene_name"].to_numpy(),
            "chrom": genes["chrom"].to_numpy(),
            "tss": genes["tss"].to_numpy(dtype=np.int64),
            "strand": genes["strand"].to_numpy(),
            "n_samples": n_samples,
            "total_abs_attribution": total,
            "total_attribution": np.where(valid, signed, 0.0).sum(axis=1),
            "top_k": has.sum(axis=1),
            "top_share": np.where(total > 0, top_share.sum(axis=1), np.nan),
            "best_bin_offset": pd.array(
                [int(o) if h else None for o, h in zip(offsets[:, 0], has[:, 0], strict=True)],
                dtype="Int64",
            ),
            "best_share": np.where(total > 0, top_share[:, 0], np.nan),
            "tss_bin_share": share[:, spec.tss_bin],
            "top_bin_offsets": offset_text,
            "top_bin_shares": share_text,
        }
    )
