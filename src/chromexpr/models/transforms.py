"""Transforms of expression and openness whose statistics come from training samples only.

Every fitted transform is a frozen dataclass holding its statistics as arrays; it is fitted once on
the training samples of a model, saved in MODEL_DIR and reapplied unchanged at evaluate and predict
time.

Openness (per (gene, sample, bin) value ``x``, in this order):

1. **depth scaling** ``x * depth_target / total_s``. ``total_s`` is sample ``s``'s own sum of
openness over a
   fixed set of statistics genes (its sequencing depth, measured on itself: no other sample is
   involved, so a held-out sample's scale never depends on the training data beyond the single
   number ``depth_target``, the median total of the training samples).
2. **log1p**.
3. **quantile normalisation** (optional): each value's position within its own sample's quantiles is
mapped
   onto reference quantiles, the mean over training samples of their (transformed) quantiles.

Expression: ``log2(TPM + 1)`` (default), ``log(TPM + 1)`` or none, then optionally per-gene
standardisation with means and standard deviations of the training samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chromexpr.errors import InputError

__all__ = [
    "ExpressionScaler",
    "ExpressionTransformKind",
    "FittedOpenness",
    "OpennessConfig",
    "SampleStatistics",
    "backward_expression",
    "fit_expression_scaler",
    "fit_openness",
    "forward_expression",
]

ExpressionTransformKind = Literal["log2p1", "log1p", "none"]
EXPRESSION_TRANSFORMS: tuple[str, ...] = ("log2p1", "log1p", "none")


# ---------------------------------------------------------------------------------- expression


def forward_expression(
    values: np.ndarray,
    kind: ExpressionTransformKind,
    *,
    gene_ids: Sequence[str] | None = None,
    samples: Sequence[str] | None = None,
) -> np.ndarray:
    """Transform expression (e.g. TPM) to the modelling scale.

    Parameters
    ----------
    values
        ``(n_genes, n_samples)`` untransformed values.
    kind
        ``"log2p1"``: ``log2(x + 1)``; ``"log1p"``: ``log(x + 1)``; ``"none"``: unchanged.
    gene_ids, samples
        Labels used in the error message.

    Raises
    ------
    InputError
        A negative value with a log transform, or an unknown kind.

    Examples
    --------
    >>> forward_expression(np.array([[0.0, 1.0, 3.0]]), "log2p1").tolist()
    [[0.0, 1.0, 2.0]]
    """
    x = np.asarray(values, dtype=np.float64)
    if kind not in EXPRESSION_TRANSFORMS:
        raise InputError(f"unknown expression transform {kind!r}", fix="use log2p1, log1p or none")
    if kind == "none":
        return x.copy()
    negative = x < 0
    if negative.any():
        g, s = (int(i[0]) for i in np.nonzero(negative))
        where = ""
        if gene_ids is not None and samples is not None:
            where = f" (gene {gene_ids[g]}, sample {samples[s]})"
        raise InputError(
            f"{int(negative.sum())} negative expression value(s), e.g. {x[g, s]:g}{where}, "
            "cannot be "
            f"log-transformed",
            fix="give TPM or counts, or --expr-transform none for values already on a log scale",
        )
    return np.log2(x + 1.0) if kind == "log2p1" else np.log1p(x)


def backward_expression(values: np.ndarray, kind: ExpressionTransformKind) -> np.ndarray:
    """Inverse of :func:`forward_expression` (negative back-transformed values are clipped to 0).

    Examples
    --------
    >>> backward_expression(np.array([0.0, 1.0, 2.0]), "log2p1").tolist()
    [0.0, 1.0, 3.0]
    """
    y = np.asarray(values, dtype=np.float64)
    if kind == "none":
        return y.copy()
    out = np.exp2(y) - 1.0 if kind == "log2p1" else np.expm1(y)
    return np.maximum(out, 0.0)


@dataclass(frozen=True, eq=False)
class ExpressionScaler:
    """Per-gene standardisation fitted on training samples (identity when ``enabled`` is false).

    Attributes
    ----------
    enabled
        Whether values are standardised.
    mean, scale
        ``float64 (n_genes,)`` training means and standard deviations (scale 1 for constant genes).
    """

    enabled: bool
    mean: np.ndarray
    scale: np.ndarray

    def apply(self, y: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``(y - mean) / scale`` for the genes ``rows`` (``y`` is ``(genes, samples)``)."""
        if not self.enabled:
            return np.asarray(y, dtype=np.float64)
        return (y - self.mean[rows, None]) / self.scale[rows, None]

    def invert(self, z: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``z * scale + mean`` for the genes ``rows``."""
        if not self.enabled:
            return np.asarray(z, dtype=np.float64)
        return z * self.scale[rows, None] + self.mean[rows, None]

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays to save."""
        return {"expr_mean": self.mean, "expr_scale": self.scale}

    @classmethod
    def from_arrays(cls, enabled: bool, arrays: dict[str, np.ndarray]) -> ExpressionScaler:
        """Rebuild from :meth:`arrays`."""
        return cls(enabled, np.asarray(arrays["expr_mean"]), np.asarray(arrays["expr_scale"]))


def fit_expression_scaler(y_train: np.ndarray, *, enabled: bool) -> ExpressionScaler:
    """Per-gene mean and standard deviation (ddof=0) of training samples ``y_train (genes,
    samples)``.

    Examples
    --------
    >>> s = fit_expression_scaler(np.array([[1.0, 3.0], [2.0, 2.0]]), enabled=True)
    >>> s.mean.tolist(), s.scale.tolist()
    ([2.0, 2.0], [1.0, 1.0])
    """
    y = np.asarray(y_train, dtype=np.float64)
    mean = y.mean(axis=1) if y.shape[1] else np.zeros(y.shape[0])
    sd = y.std(axis=1) if y.shape[1] else np.ones(y.shape[0])
    sd = np.where(sd > 1e-12, sd, 1.0)
    return ExpressionScaler(enabled, mean, sd)


# ------------------------------------------------------------------------------------ openness


@dataclass(frozen=True)
class OpennessConfig:
    """Which openness transforms to apply (see the module docstring for their order).

    Attributes
    ----------
    depth
        Per-sample depth scaling.
    log1p
        ``log(1 + x)`` after depth scaling.
    quantile
        Quantile normalisation across samples onto training reference quantiles.
    n_quantiles
        Quantile levels stored per sample and in the reference.
    """

    depth: bool = True
    log1p: bool = True
    quantile: bool = False
    n_quantiles: int = 1001

    def __post_init__(self) -> None:
        if self.n_quantiles < 2:
            raise InputError(f"n_quantiles must be at least 2, got {self.n_quantiles}")


@dataclass(frozen=True, eq=False)
class SampleStatistics:
    """Statistics each sample has of its own openness (no other sample enters them).

    Attributes
    ----------
    samples
        Sample names.
    totals
        ``float64 (n_samples,)``: sum of raw openness over the statistics genes.
    quantiles
        ``float64 (n_samples, n_quantiles)`` raw-value quantiles at evenly spaced levels over the
        statistics genes, or ``None`` when quantile normalisation is off.
    """

    samples: tuple[str, ...]
    totals: np.ndarray
    quantiles: np.ndarray | None

    def subset(self, names: Sequence[str]) -> SampleStatistics:
        """The statistics of ``names`` (in that order)."""
        lookup = {s: i for i, s in enumerate(self.samples)}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise KeyError(f"no statistics for sample(s) {missing[:3]}")
        idx = np.asarray([lookup[n] for n in names], dtype=np.int64)
        q = None if self.quantiles is None else self.quantiles[idx]
        return SampleStatistics(tuple(names), self.totals[idx], q)


@dataclass(frozen=True, eq=False)
class FittedOpenness:
    """Openness transform with statistics fitted on training samples.

    Attributes
    ----------
    config
        The transforms applied.
    depth_target
        Median statistics-gene total of the training samples (``nan`` when depth scaling is off).
    reference
        ``float64 (n_quantiles,)`` reference quantiles on the depth-scaled, log1p scale, or
        ``None``.
    """

    config: OpennessConfig
    depth_target: float
    reference: np.ndarray | None

    def scale_factors(self, totals: np.ndarray) -> np.ndarray:
        """Depth factors ``depth_target / total`` (1 for samples with no signal, or depth scaling
        off)."""
        t = np.asarray(totals, dtype=np.float64)
        if not self.config.depth:
            return np.ones_like(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(t > 0, self.depth_target / t, 1.0)
        return f

    def _elementwise(self, x: np.ndarray, factor: float) -> np.ndarray:
        y = x * np.float32(factor) if factor != 1.0 else x
        return np.log1p(y) if self.config.log1p else y

    def apply(self, block: np.ndarray, stats: SampleStatistics) -> np.ndarray:
        """Transform a ``(genes, samples, bins)`` block of raw openness (float32 out).

        Parameters
        ----------
        block
            Raw openness; axis 1 follows ``stats.samples``.
        stats
            The block's samples' own statistics.
        """
        x = np.asarray(block, dtype=np.float32)
        if x.shape[1] != len(stats.samples):
            raise ValueError(f"block has {x.shape[1]} samples, statistics {len(stats.samples)}")
        factors = self.scale_factors(stats.totals)
        out = np.empty(x.shape, dtype=np.float32)
        for j in range(x.shape[1]):
            v = self._elementwise(x[:, j, :], float(factors[j]))
            if self.config.quantile:
                if self.reference is None or stats.quantiles is None:
                    raise ValueError(
                        "quantile normalisation needs sample quantiles and a reference"
                    )
                q = self._elementwise(stats.quantiles[j].astype(np.float32), float(factors[j]))
                v = quantile_map(v, q.astype(np.float64), self.reference)
            out[:, j, :] = v
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays to save (``openness_reference`` only with quantile normalisation)."""
        out = {"openness_depth_target": np.asarray(self.depth_target, dtype=np.float64)}
        if self.reference is not None:
            out["openness_reference"] = self.reference
        return out

    @classmethod
    def from_arrays(cls, config: OpennessConfig, arrays: dict[str, np.ndarray]) -> FittedOpenness:
        """Rebuild from :meth:`arrays`."""
        ref = arrays.get("openness_reference")
        return cls(
            config, float(arrays["openness_depth_target"]), None if ref is None else np.asarray(ref)
        )


def fit_openness(config: OpennessConfig, train: SampleStatistics) -> FittedOpenness:
    """Fit the openness transform on training samples' statistics only.

    Examples
    --------
    >>> stats = SampleStatistics(("a", "b", "c"), np.array([10.0, 20.0, 40.0]), None)
    >>> fit_openness(OpennessConfig(), stats).depth_target
    20.0
    """
    if len(train.samples) == 0:
        raise InputError("no training samples to fit the openness transform on")
    target = float(np.median(train.totals)) if config.depth else float("nan")
    if config.depth and not target > 0:
        raise InputError("the training samples have no accessibility signal (all totals are 0)")
    fitted = FittedOpenness(config, target, None)
    if not config.quantile:
        return fitted
    if train.quantiles is None:
        raise ValueError("quantile normalisation needs sample quantiles")
    factors = fitted.scale_factors(train.totals)
    transformed = np.stack(
        [
            fitted._elementwise(train.quantiles[j].astype(np.float32), float(factors[j]))
            for j in range(len(train.samples))
        ]
    ).astype(np.float64)
    return FittedOpenness(config, target, transformed.mean(axis=0))


def quantile_map(values: np.ndarray, own: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map values onto reference quantiles through their position among their sample's own
    quantiles.

    Parameters
    ----------
    values
        Any shape, one sample's values.
    own
        ``(Q,)`` non-decreasing quantiles of that sample at evenly spaced levels.
    reference
        ``(Q,)`` reference quantiles at the same levels.

    Returns
    -------
    numpy.ndarray
        float32, same shape as ``values``. A value equal to a run of tied quantiles takes the middle
        of the run (so the zeros of sparse signal all map to one value); others interpolate linearly
        between the neighbouring quantiles; values outside the sample's range map to the reference's
        ends.

    Examples
    --------
    >>> own = np.array([0.0, 0.0, 1.0, 2.0, 4.0])
    >>> ref = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    >>> quantile_map(np.array([0.0, 1.5, 3.0, 9.0]), own, ref).tolist()
    [0.5, 2.5, 3.5, 4.0]
    """
    v = np.asarray(values, dtype=np.float64)
    q = np.asarray(own, dtype=np.float64)
    n = q.shape[0]
    lo = np.searchsorted(q, v, side="left")
    hi = np.searchsorted(q, v, side="right")
    tied = hi > lo
    left = np.clip(lo - 1, 0, n - 1)
    right = np.clip(lo, 0, n - 1)
    width = q[right] - q[left]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(width > 0, (v - q[left]) / np.where(width > 0, width, 1.0), 0.0)
    pos = np.where(lo == 0, 0.0, np.where(lo >= n, n - 1.0, left + frac))
    pos = np.where(tied, (lo + hi - 1) / 2.0, pos)
    return np.interp(pos, np.arange(n, dtype=np.float64), reference).astype(np.float32)
