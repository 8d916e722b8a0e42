"""The robust rule that flags outlier samples (or genes) by their error.

Rule (Iglewicz & Hoaglin 1993, "modified z-score")::

    z_i = 0.6745 * (x_i - median(x)) / MAD,    MAD = median(|x - median(x)|)
    outlier  <=>  z_i > threshold              (default 3.5)

``0.6745`` is the 0.75 quantile of the standard normal, so ``MAD / 0.6745`` estimates the standard
deviation of normal data and ``z`` reads like an ordinary z-score that one or a few extreme values
cannot inflate. Only *high* values are flagged: applied to an error such as the MSE, a sample
predicted unusually *well* is not an outlier.

When more than half the values are equal, ``MAD = 0``; the rule then falls back to the mean absolute
deviation from the median (``MeanAD``), ``z_i = (x_i - median) / (1.253314 * MeanAD)``, where
``1.253314 = sqrt(pi / 2)`` makes ``1.253314 * MeanAD`` estimate the standard deviation of normal
data. When ``MeanAD`` is also 0 every value equals the median and every ``z`` is 0. NaN values are
ignored when the centre and scale are estimated; their ``z`` is NaN and they are never flagged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAD_CONSTANT", "MEANAD_CONSTANT", "robust_outliers"]

#: 0.75 quantile of the standard normal: ``MAD / MAD_CONSTANT`` estimates sigma for normal data.
MAD_CONSTANT = 0.6745
#: sqrt(pi / 2): ``MEANAD_CONSTANT * MeanAD`` estimates sigma for normal data (used when MAD = 0).
MEANAD_CONSTANT = 1.253314


def robust_outliers(values: np.ndarray, *, threshold: float = 3.5) -> tuple[np.ndarray, np.ndarray]:
    """Modified z-scores of ``values`` and which of them are high outliers.

    Parameters
    ----------
    values
        ``float (n,)``: one error per unit (e.g. each sample's MSE). NaN allowed (ignored, never
        flagged).
    threshold
        A value is an outlier when its modified z-score is strictly greater than this (3.5 as
        recommended by Iglewicz & Hoaglin). Must be positive.

    Returns
    -------
    robust_z : numpy.ndarray
        ``float64 (n,)``: modified z-scores (see the module docstring for the formula and the MAD =
        0 case).
    is_outlier : numpy.ndarray
        ``bool (n,)``: ``robust_z > threshold`` (high error only).

    Examples
    --------
    >>> z, flag = robust_outliers(np.array([1.0, 1.1, 0.9, 1.0, 4.0]))
    >>> z.round(4).tolist()
    [0.0, 0.6745, -0.6745, 0.0, 20.235]
    >>> flag.tolist()
    [False, False, False, False, True]
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    z = np.full(x.shape, np.nan)
    finite = ~np.isnan(x)
    if finite.any():
        xf = x[finite]
        centre = float(np.median(xf))
        deviation = np.abs(xf - centre)
        mad = float(np.median(deviation))
        if mad > 0:
            z[finite] = MAD_CONSTANT * (xf - centre) / mad
        else:
            mean_ad = float(np.mean(deviation))
            if mean_ad > 0:
                z[finite] = (xf - centre) / (MEANAD_CONSTANT * mean_ad)
            else:
                z[finite] = 0.0
    with np.errstate(invalid="ignore"):
        is_outlier = np.where(finite, z > threshold, False)
    return z, is_outlier.astype(bool)
