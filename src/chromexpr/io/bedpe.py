"""The BEDPE layout shared by chromexpr's link files (simulated truth, attribution links)."""

from __future__ import annotations

import numpy as np

__all__ = ["BEDPE_STANDARD_COLUMNS", "bed_scores"]

#: The 10 standard BEDPE columns (bedtools' ``pairToBed`` / ``pairToPair`` layout), 0-based
#: half-open; a chromexpr link file adds its own named columns after them.
BEDPE_STANDARD_COLUMNS = [
    "chrom1",
    "start1",
    "end1",
    "chrom2",
    "start2",
    "end2",
    "name",
    "score",
    "strand1",
    "strand2",
]


def bed_scores(values: np.ndarray) -> np.ndarray:
    """Scale non-negative link strengths to BED's integer score range, 1-1000.

    The strongest link gets 1000 and a link of strength ``v`` gets ``1 + round(999 * v / max)``,
    so every score is an integer in ``[1, 1000]`` and the largest is always 1000. IGV draws
    BEDPE arcs by ``log(score) / log(max score)``: scores below 1 or a largest score of 1 break
    it, which this scale rules out. When no value is positive (or finite) every score is 1000.

    Parameters
    ----------
    values
        Link strengths, shape ``(n,)``; negative or non-finite values count as 0.

    Returns
    -------
    numpy.ndarray
        ``int64`` scores, shape ``(n,)``.

    Examples
    --------
    >>> bed_scores(np.array([0.002, 0.0005, 0.0, 0.001])).tolist()
    [1000, 251, 1, 501]
    >>> bed_scores(np.array([0.0, 0.0])).tolist()
    [1000, 1000]
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = np.where(np.isfinite(v) & (v > 0), v, 0.0)
    top = float(v.max()) if v.size else 0.0
    if top <= 0:
        return np.full(v.shape, 1000, dtype=np.int64)
    return np.clip(1 + np.rint(999.0 * v / top), 1, 1000).astype(np.int64)
