"""Baselines every trained model is reported against: ``mean`` and ``activity``.

``mean``
    Each gene's training mean. Strong across genes (housekeeping vs silent genes), useless within a
    gene.
``activity``
    ArchR/MAESTRO-style gene activity: depth-scaled openness of the bins within ``window`` of the
    TSS, weighted by ``exp(-|d| / d0)`` (``d``: bin centre to TSS), summed and log1p-transformed
    (ArchR sums weighted accessibility and log-normalises the sum; it does not log each bin). Then
    one linear fit across all training pairs. In the ``deviation`` formulation (default) the fit is
    one pooled slope ``b`` of the gene's expression deviation on its score deviation, both from the
    gene's training means, so the prediction is ``mean_g + b * (score - score_mean_g)``: within a
    gene it is the score itself, up to one shared scale. In the ``raw`` formulation it is ``a + b *
    score`` over all pairs. Defaults ``d0 = 10 kb`` and ``window = 100 kb`` follow MAESTRO's 10-kb
    decay and ArchR's 100-kb extent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from chromexpr.errors import InputError
from chromexpr.models.base import Model, TrainingData, register
from chromexpr.models.design import bin_distances, window_bins
from chromexpr.models.splits import TRAIN
from chromexpr.models.transforms import OpennessConfig

__all__ = ["ActivityModel", "MeanModel"]


@dataclass(frozen=True)
class MeanParams:
    """``mean`` has no parameters."""


@register
class MeanModel(Model):
    """Each gene's training mean (the global mean of gene means for genes without training
    pairs)."""

    name: ClassVar[str] = "mean"
    Params: ClassVar[type] = MeanParams
    reads_openness: ClassVar[bool] = False
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {"level": ("genes",)}

    def __init__(self, params: MeanParams | None = None) -> None:
        super().__init__(params)
        self.level = np.zeros(0)

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        """Only the TSS bin (the prediction reads no openness)."""
        return window_bins(offsets, bin_size, 0)

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        start = time.perf_counter()
        level = np.array(data.y_mean, dtype=np.float64)
        missing = ~np.isfinite(level)
        if missing.all():
            raise InputError("no training pairs to compute means from")
        level[missing] = float(np.mean(level[~missing]))
        self.level = level
        train = data.roles == TRAIN
        resid = np.where(train, data.y - level[:, None], 0.0)
        mse = float((resid**2).sum() / max(int(train.sum()), 1))
        return [
            {
                "epoch": 1,
                "train_mse": mse,
                "dev_mse": float("nan"),
                "seconds": time.perf_counter() - start,
            }
        ]

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return np.repeat(self.level[genes][:, None], len(samples), axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"level": self.level}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.level = np.asarray(arrays["level"], dtype=np.float64)


@dataclass(frozen=True)
class ActivityParams:
    """Parameters of ``activity``.

    Attributes
    ----------
    d0
        Decay length of the distance weight ``exp(-|d| / d0)`` (bp).
    window
        Bins whose centre lies within this distance of the TSS are summed (bp).
    """

    d0: float = 10_000.0
    window: int = 100_000


@register
class ActivityModel(Model):
    """Distance-weighted gene activity score, then one linear fit (see the module docstring)."""

    name: ClassVar[str] = "activity"
    Params: ClassVar[type] = ActivityParams
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {
        "weights": ("features",),
        "offset": ("genes",),
        "slope": (),
    }

    def __init__(self, params: ActivityParams | None = None) -> None:
        super().__init__(params)
        self.weights = np.zeros(0, dtype=np.float32)
        self.offset = np.zeros(0)
        self.slope = 0.0

    def openness_config(self, base: OpennessConfig) -> OpennessConfig:
        """Depth scaling only: the log is taken of the weighted sum."""
        return replace(base, log1p=False, quantile=False)

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        return window_bins(offsets, bin_size, int(self.params.window))

    def score(self, x: np.ndarray) -> np.ndarray:
        """``log1p(sum_b w_b x_b)``: float64 ``(genes, samples)`` from ``(genes, samples,
        bins)``."""
        return np.log1p(np.maximum(x @ self.weights, 0.0).astype(np.float64))

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        start = time.perf_counter()
        if self.params.d0 <= 0:
            raise InputError(f"activity: d0 must be positive, got {self.params.d0}")
        self.weights = np.exp(-data.bin_distance / float(self.params.d0)).astype(np.float32)
        n_genes = data.y.shape[0]
        cols = data.cols_with(TRAIN)
        score_mean = np.zeros(n_genes)
        # sums for the pooled fit: n, s, y, ss, sy, yy over training pairs (deviations or raw)
        acc = np.zeros(6)
        for local, c, x in data.source.iter_blocks(cols):
            s = self.score(x)
            mask = data.roles[np.ix_(local, c)] == TRAIN
            y = data.y[np.ix_(local, c)]
            n_g = mask.sum(axis=1)
            s_bar = np.where(n_g > 0, (s * mask).sum(axis=1) / np.maximum(n_g, 1), 0.0)
            score_mean[local] = s_bar
            if data.formulation == "deviation":
                s = s - s_bar[:, None]
                y = y - data.y_mean[local][:, None]
            sv, yv = s[mask], y[mask]
            acc += [sv.size, sv.sum(), yv.sum(), sv @ sv, sv @ yv, yv @ yv]
        n, s1, y1, ss, sy, yy = acc
        if n == 0:
            raise InputError("activity: no training pairs")
        if data.formulation == "deviation":
            self.slope = sy / ss if ss > 0 else 0.0
            intercept = 0.0
            self.offset = data.y_mean - self.slope * score_mean
            sse = yy - 2 * self.slope * sy + self.slope**2 * ss
        else:
            var_s = ss - s1 * s1 / n
            self.slope = (sy - s1 * y1 / n) / var_s if var_s > 0 else 0.0
            intercept = (y1 - self.slope * s1) / n
            self.offset = np.full(n_genes, intercept)
            sse = (
                yy
                - 2 * intercept * y1
                - 2 * self.slope * sy
                + n * intercept**2
                + 2 * intercept * self.slope * s1
                + self.slope**2 * ss
            )
        return [
            {
                "epoch": 1,
                "train_mse": float(max(sse, 0.0) / n),
                "dev_mse": float("nan"),
                "seconds": time.perf_counter() - start,
            }
        ]

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return self.offset[genes][:, None] + self.slope * self.score(x)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "offset": self.offset, "slope": np.asarray(self.slope)}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = np.asarray(arrays["weights"], dtype=np.float32)
        self.offset = np.asarray(arrays["offset"], dtype=np.float64)
        self.slope = float(arrays["slope"])

    def info(self) -> dict[str, float]:
        return {"slope": self.slope}


def distance_weights(offsets: np.ndarray, bin_size: int, d0: float) -> np.ndarray:
    """``exp(-|d| / d0)`` of every bin (``d``: centre to TSS).

    Examples
    --------
    >>> distance_weights(np.array([-1000, 0]), 1000, 500.0).round(3).tolist()
    [0.368, 0.368]
    """
    return np.exp(-bin_distances(offsets, bin_size) / d0)
