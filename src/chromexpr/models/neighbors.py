"""The ``neighbors`` baseline: copy the expression of the training samples that look alike.

A held-out sample's predicted deviation from each gene's training mean is the weighted mean of the
training samples' deviations, ``sum_i w_i (y_gi - ybar_g)``, with weights from how similar the
sample's accessibility is to each training sample's: ``w_i ~ max(r_i, 0) ** k``, normalised to sum 1
(:func:`chromexpr.models.similarity.power_weights`). ``r_i`` is the correlation of the two samples'
promoter profiles (openness in the bins within ``profile_window`` of every modelled gene's TSS,
centred by the training samples' mean profile; :mod:`chromexpr.models.similarity`). The sharpness
``k`` is chosen by inner cross-validation over the training samples from ``exponents``.

It reads no gene's regulatory bins: it knows which cell types look alike, not which elements drive a
gene. On related cell types (blood populations, stages of one differentiation) it is a strong
baseline (``../docs/evaluation.md``); a regulatory model that does not beat it has learned nothing
cell-type similarity does not already give. A sample with no positively correlated training sample
is predicted as the training mean (with a warning), never NaN.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from chromexpr.errors import InputError
from chromexpr.log import logger
from chromexpr.models.base import Model, TrainingData, register
from chromexpr.models.design import BlockSource, window_bins
from chromexpr.models.similarity import (
    centred_gram,
    check_profile_arrays,
    correlation_from_gram,
    power_weights,
    sample_profiles,
)
from chromexpr.models.splits import TRAIN

__all__ = ["NeighborsModel", "NeighborsParams", "inner_cv_predictions", "median_row_r"]


@dataclass(frozen=True)
class NeighborsParams:
    """Parameters of ``neighbors``.

    Attributes
    ----------
    profile_window
        Bins whose centre lies within this distance of a TSS make the profile (bp). With 1-kb bins
        the default keeps the two bins that touch the TSS: promoter accessibility.
    exponents
        Candidate sharpness exponents ``k`` (inner cross-validation picks one).
    exponent
        A fixed ``k`` (no inner cross-validation).
    """

    profile_window: int = 1_000
    exponents: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    exponent: float | None = None


def median_row_r(pred: np.ndarray, obs: np.ndarray) -> float:
    """Median over rows (genes) of the Pearson r between ``pred`` and ``obs`` along axis 1.

    Rows where either is constant are left out (NaN when none is left).

    Examples
    --------
    >>> median_row_r(np.array([[1.0, 2, 3], [1, 1, 1]]), np.array([[1.0, 2, 4], [1, 2, 3]]))
    0.9819805060619657
    """
    a = pred - pred.mean(axis=1, keepdims=True)
    b = obs - obs.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    ok = den > 1e-12
    if not ok.any():
        return float("nan")
    return float(np.median((a * b).sum(axis=1)[ok] / den[ok]))


def inner_cv_predictions(
    gram: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    predict: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled out-of-fold predicted and observed deviations over inner folds.

    Parameters
    ----------
    gram
        ``(n, n)`` uncentred profile inner products of the training samples.
    y
        ``(n_genes, n)`` targets of the training samples.
    folds
        ``int (n,)`` inner fold of each training sample.
    predict
        ``predict(similarity (n_held, n_rest), y_dev_rest (n_genes, n_rest)) -> (n_genes,
        n_held)`` predicted deviations.

    Returns
    -------
    tuple
        ``(predicted, observed)`` deviations ``(n_genes, n)`` (each sample from the fold that held
        it out; deviations from that fold's training mean).
    """
    pred = np.zeros(y.shape)
    obs = np.zeros(y.shape)
    for f in np.unique(folds):
        held = np.flatnonzero(folds == f)
        rest = np.flatnonzero(folds != f)
        r = correlation_from_gram(centred_gram(gram, rest))
        mean = y[:, rest].mean(axis=1, keepdims=True)
        pred[:, held] = predict(r[np.ix_(held, rest)], y[:, rest] - mean)
        obs[:, held] = y[:, held] - mean
    return pred, obs


@register
class NeighborsModel(Model):
    """Similarity-weighted mean of the training samples' deviations (see the module docstring)."""

    name: ClassVar[str] = "neighbors"
    Params: ClassVar[type] = NeighborsParams
    per_gene: ClassVar[bool] = True
    formulations: ClassVar[tuple[str, ...]] = ("deviation",)
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {
        "level": ("genes",),
        "deviation": ("genes", "*"),
        "centred_profiles": ("*", "*"),
        "mean_profile": ("*",),
        "exponent": (),
        "cv_scores": ("*",),
    }

    def __init__(self, params: NeighborsParams | None = None) -> None:
        super().__init__(params)
        self.level = np.zeros(0)
        self.deviation = np.zeros((0, 0), dtype=np.float32)
        self.centred_profiles = np.zeros((0, 0), dtype=np.float32)
        self.mean_profile = np.zeros(0, dtype=np.float32)
        self.exponent = 1.0
        self.cv_scores = np.zeros(0)
        self._weights: np.ndarray | None = None

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        """The profile's bins."""
        return window_bins(offsets, bin_size, int(self.params.profile_window))

    def validate_arrays(
        self, arrays: dict[str, np.ndarray], *, n_genes: int, n_features: int
    ) -> None:
        """Also: one profile per training sample, ``n_genes x n_features`` values each."""
        super().validate_arrays(arrays, n_genes=n_genes, n_features=n_features)
        check_profile_arrays(arrays, "deviation", n_genes * n_features, self.name)

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        start = time.perf_counter()
        prm: NeighborsParams = self.params
        cols = data.cols_with(TRAIN)
        if cols.size < 2:
            raise InputError("neighbors needs at least 2 training samples")
        profiles = sample_profiles(data.source, cols)
        y = data.y[:, cols]
        self.level = np.asarray(data.y_mean, dtype=np.float64)
        self.deviation = (y - self.level[:, None]).astype(np.float32)
        self.mean_profile = profiles.mean(axis=0)
        self.centred_profiles = profiles - self.mean_profile
        candidates = (prm.exponent,) if prm.exponent is not None else tuple(prm.exponents)
        if not candidates or min(candidates) < 0:
            raise InputError("neighbors: exponents must be >= 0")
        folds = data.inner_folds[cols]
        scores = np.full(len(candidates), np.nan)
        if len(candidates) > 1 and np.unique(folds[folds >= 0]).size >= 2:
            p64 = profiles.astype(np.float64)
            gram = p64 @ p64.T
            for i, k in enumerate(candidates):
                pred, obs = inner_cv_predictions(
                    gram, y, folds, lambda r, yd, k=k: yd @ power_weights(r, k).T
                )
                scores[i] = median_row_r(pred, obs)
            best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
        else:
            best = 0
        self.exponent = float(candidates[best])
        self.cv_scores = scores
        logger.info(
            "neighbors: exponent %g (inner-CV median within-gene r %.3f)",
            self.exponent,
            scores[best],
        )
        train_pred = self.deviation @ self._weights_of(self.centred_profiles).T
        mse = float(np.mean((train_pred - self.deviation) ** 2))
        return [
            {
                "epoch": 1,
                "train_mse": mse,
                "dev_mse": float("nan"),
                "seconds": time.perf_counter() - start,
            }
        ]

    def similarity(self, profiles: np.ndarray) -> np.ndarray:
        """Correlation ``(n_new, n_train)`` of new samples' profiles with the training samples'."""
        new = profiles.astype(np.float64) - self.mean_profile
        train = self.centred_profiles.astype(np.float64)
        dot = new @ train.T
        norms = np.sqrt((new * new).sum(axis=1))[:, None] * np.sqrt((train * train).sum(axis=1))
        ok = norms > 1e-300
        return np.where(ok, dot / np.where(ok, norms, 1.0), 0.0)

    def _weights_of(self, centred_or_raw: np.ndarray, *, centred: bool = True) -> np.ndarray:
        profiles = centred_or_raw + (self.mean_profile if centred else 0.0)
        return power_weights(self.similarity(profiles), self.exponent)

    def begin_predict(self, source: BlockSource) -> None:
        """Similarity weights of every sample of ``source`` (one pass over the profile bins)."""
        profiles = sample_profiles(source)
        weights = self._weights_of(profiles, centred=False)
        lonely = np.flatnonzero(weights.sum(axis=1) == 0)
        if lonely.size:
            names = [source.stats.samples[int(i)] for i in lonely[:5]]
            logger.warning(
                "%s: %d sample(s) resemble no training sample (all correlations <= 0): "
                "predicted as the training mean (%s)",
                self.name,
                lonely.size,
                ", ".join(names),
            )
        self._weights = weights

    def predict_columns(
        self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        if self._weights is None:
            raise InputError("neighbors: predictions need begin_predict() first")
        w = self._weights[np.asarray(columns, dtype=np.int64)]
        return self.level[genes][:, None] + self.deviation[genes].astype(np.float64) @ w.T

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Without the samples' similarities: the training mean (no within-gene information)."""
        return np.repeat(self.level[genes][:, None], x.shape[1], axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "level": self.level,
            "deviation": self.deviation,
            "centred_profiles": self.centred_profiles,
            "mean_profile": self.mean_profile,
            "exponent": np.asarray(self.exponent),
            "cv_scores": self.cv_scores,
        }

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.level = np.asarray(arrays["level"], dtype=np.float64)
        self.deviation = np.asarray(arrays["deviation"], dtype=np.float32)
        self.centred_profiles = np.asarray(arrays["centred_profiles"], dtype=np.float32)
        self.mean_profile = np.asarray(arrays["mean_profile"], dtype=np.float32)
        self.exponent = float(arrays["exponent"])
        self.cv_scores = np.asarray(arrays["cv_scores"], dtype=np.float64)

    def info(self) -> dict[str, Any]:
        return {
            "exponent": self.exponent,
            "cv_scores": dict(
                zip(
                    [str(k) for k in self.params.exponents],
                    [None if not np.isfinite(v) else float(v) for v in self.cv_scores],
                    strict=False,
                )
            ),
            "n_training_samples": int(self.deviation.shape[1]),
        }
