"""LASSO models: ``lasso`` (one pooled model, one weight per bin) and ``lasso-gene`` (one model per
gene).

Both minimise scikit-learn's objective ``(1/(2n))||y - Xw - b||^2 + alpha * sum_j pf_j |w_j|``
through :mod:`chromexpr.models.lasso_solver`; ``pf_j`` is 1, or ``1 + d_j / distance_scale``
(distance-aware penalty: a bin ``d_j`` bp from the TSS must explain proportionally more to enter).

``lasso`` streams sufficient statistics in one pass over the training rows (it never holds the
dataset). Each training sample belongs to one of K inner folds (over samples, groups kept together),
and the pass accumulates the statistics of each fold separately, so the K cross-validation fits and
their held-out errors come from the same pass:

* ``raw`` formulation: per-fold :class:`~chromexpr.models.lasso_solver.GramStats`; training set =
  all folds minus one; held-out error from the left-out fold's statistics.
* ``deviation`` formulation: rows are centred per gene by the training-sample means. Re-centring on
  a fold's own training samples is a per-gene rank-one correction, so each fold also accumulates
  ``C_f = sum_g D_gf D_gf'`` with ``D_gf`` the gene's sum of centred rows in fold ``f``; the fold's
  Gram is ``sum_{f' != f} P_f' - C_f / n_T`` and its held-out squared error is ``sum r^2 + (2 / n_T
  + n_f / n_T^2) sum_g q_g^2`` (``docs/models.md`` derives both).

Every statistic above is a sum over genes, so the pass runs over shards of whole gene chunks whose
statistics are summed: in process (default), on a Dask cluster (``scheduler``/``workers``) or over
``torchrun`` ranks (:mod:`chromexpr.models.sharded_stats`).

Alpha: the one with the least cross-validated squared error on the path.

``lasso-gene`` solves one path per gene over the training samples (numba, genes in parallel),
reading the bins within ``window`` of the TSS. Its penalty is chosen by inner cross-validation over
the training samples on the within-gene criterion: each gene's path is on a grid relative to its own
``alpha_max``, and one position on that grid is chosen for all genes (``alpha_selection="global"``,
default: with 10-30 samples a gene's own CV curve is too noisy to pick from, and pooling the curves
across genes borrows strength) or per gene (``"gene"``). The criterion is the mean over genes of the
correlation between out-of-fold predicted deviations (prediction minus the fold's training mean) and
the observed values.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from chromexpr.errors import InputError
from chromexpr.log import logger, progress_bar
from chromexpr.models.base import Model, TrainingData, register
from chromexpr.models.design import window_bins
from chromexpr.models.lasso_solver import (
    ConvergenceWarning,
    GramStats,
    alpha_grid,
    alpha_max_gram,
    alpha_max_per_gene,
    lasso_path_gram,
    lasso_path_per_gene,
)
from chromexpr.models.sharded_stats import PassInput, pass_statistics
from chromexpr.models.splits import TRAIN

__all__ = ["GeneLasso", "PooledLasso", "penalty_factors"]


def penalty_factors(distance: np.ndarray, scale: float | None) -> np.ndarray | None:
    """Distance-aware penalty factors ``1 + d / scale`` (``None`` for a uniform penalty).

    Examples
    --------
    >>> penalty_factors(np.array([0.0, 50_000.0]), 50_000.0).tolist()
    [1.0, 2.0]
    """
    if scale is None or scale <= 0:
        return None
    return 1.0 + np.asarray(distance, dtype=np.float64) / float(scale)


@contextmanager
def _solver_warnings(what: str) -> Iterator[None]:
    """Turn the solver's convergence warnings into one log line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    n = sum(1 for w in caught if issubclass(w.category, ConvergenceWarning))
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if n:
        logger.warning("%s: %d solver call(s) stopped at max_iter before reaching tol", what, n)


def _centred(stats: GramStats) -> GramStats:
    """``stats`` of rows already centred per gene: the pooled means are 0 by construction, so the
    sums of x and y are dropped (they are rounding noise)."""
    return GramStats(
        n=stats.n,
        sum_x=np.zeros(stats.p),
        sum_y=0.0,
        xtx=stats.xtx.copy(),
        xty=stats.xty.copy(),
        yty=stats.yty,
        sum_w=float(stats.n),
    )


def _sse(w: np.ndarray, b: float, stats: GramStats) -> float:
    """Sum of squared residuals ``y - b - x w`` over the rows summarised by ``stats``."""
    return float(
        stats.yty
        - 2 * b * stats.sum_y
        - 2 * w @ stats.xty
        + stats.n * b * b
        + 2 * b * (w @ stats.sum_x)
        + w @ stats.xtx @ w
    )


@dataclass(frozen=True)
class PooledLassoParams:
    """Parameters of ``lasso``.

    Attributes
    ----------
    window
        Read only bins within this distance of the TSS (bp; ``None``: all bins, the original
        recipe).
    distance_scale
        Penalty factor ``1 + d / distance_scale`` (``None``: uniform).
    alpha
        Fixed penalty (skips cross-validation), or ``None``.
    n_alphas, eps
        The path: ``n_alphas`` values from ``alpha_max`` down to ``eps * alpha_max``.
    inner_folds
        Cross-validation folds over training samples.
    tol, max_iter
        Solver settings (scikit-learn's meaning).
    batch_rows
        Rows per accumulated batch (bounds memory).
    scheduler
        Run the statistics pass on this Dask cluster (``tcp://host:port`` or a scheduler JSON
        file), one task per shard of gene chunks (:mod:`chromexpr.models.sharded_stats`).
    workers
        Without ``scheduler``: run it on a local Dask cluster of this many processes, started for
        the fit. Neither: in process, or over the ranks under ``torchrun``.
    shards
        Dask shards (default: 2 per worker thread, at most one per gene chunk).

    ``scheduler``, ``workers`` and ``shards`` choose where the sums are computed, not what they
    are: the fit is the same up to float summation order.
    """

    window: int | None = None
    distance_scale: float | None = None
    alpha: float | None = None
    n_alphas: int = 20
    eps: float = 1e-3
    inner_folds: int = 5
    tol: float = 1e-4
    max_iter: int = 10_000
    batch_rows: int = 8192
    scheduler: str | None = None
    workers: int | None = None
    shards: int | None = None


@register
class PooledLasso(Model):
    """One pooled LASSO over (gene, sample) rows, streamed (see the module docstring)."""

    name: ClassVar[str] = "lasso"
    Params: ClassVar[type] = PooledLassoParams
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {
        "coef": ("features",),
        "offset": ("genes",),
        "alphas": ("*",),
        "cv_mse": ("*",),
        "alpha": (),
    }

    def __init__(self, params: PooledLassoParams | None = None) -> None:
        super().__init__(params)
        self.coef = np.zeros(0)
        self.offset = np.zeros(0)
        self.alpha = float("nan")
        self.alphas = np.zeros(0)
        self.cv_mse = np.zeros(0)

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        return (
            None
            if self.params.window is None
            else window_bins(offsets, bin_size, self.params.window)
        )

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        start = time.perf_counter()
        prm: PooledLassoParams = self.params
        p = data.source.n_features
        cols = data.cols_with(TRAIN)
        folds = data.inner_folds[cols]
        if prm.alpha is not None:  # a fixed alpha needs no cross-validation: one "fold"
            folds = np.zeros(cols.size, dtype=np.int64)
        k = int(folds.max()) + 1 if folds.size else 0
        if k < 1 or (prm.alpha is None and k < 2):
            raise InputError(
                "lasso: cross-validation needs at least 2 training samples", fix="give --alpha"
            )
        deviation = data.formulation == "deviation"
        n_samples_fold = np.asarray([(folds == f).sum() for f in range(k)], dtype=np.float64)
        sums = pass_statistics(
            PassInput.from_training(data, cols, folds, batch_rows=prm.batch_rows),
            scheduler=data.options.get("scheduler", prm.scheduler),
            workers=data.options.get("workers", prm.workers),
            n_shards=prm.shards,
        )
        accs, corr = sums.folds, sums.corr
        x_mean = sums.dense_x_mean(data.y.shape[0])
        full = sums.total()
        if full.n == 0:
            raise InputError("lasso: no training rows")
        pf = penalty_factors(data.bin_distance, prm.distance_scale)
        full_stats = _centred(full) if deviation else full
        with _solver_warnings("lasso"):
            if prm.alpha is not None:
                self.alphas = np.asarray([float(prm.alpha)])
                self.cv_mse = np.full(1, np.nan)
            else:
                amax = alpha_max_gram(full_stats, penalty_factor=pf)
                self.alphas = alpha_grid(amax, prm.n_alphas, prm.eps)
                self.cv_mse = self._cv_errors(accs, corr, n_samples_fold, pf, deviation) / full.n
            best = int(np.nanargmin(self.cv_mse)) if np.isfinite(self.cv_mse).any() else 0
            coefs, intercepts = lasso_path_gram(
                full_stats,
                self.alphas[: best + 1],
                tol=prm.tol,
                max_iter=prm.max_iter,
                penalty_factor=pf,
            )
        self.alpha = float(self.alphas[best])
        w, b = coefs[best], float(intercepts[best])
        self.coef = w
        if deviation:
            assert x_mean is not None
            self.offset = data.y_mean - x_mean.astype(np.float64) @ w
            train_sse = _sse(w, 0.0, full)
        else:
            self.offset = np.full(data.y.shape[0], b)
            train_sse = _sse(w, b, full)
        logger.info("lasso: alpha %.4g (%d of %d bins nonzero)", self.alpha, int((w != 0).sum()), p)
        return [
            {
                "epoch": 1,
                "train_mse": max(train_sse, 0.0) / full.n,
                "dev_mse": float("nan"),
                "seconds": time.perf_counter() - start,
            }
        ]

    def _cv_errors(
        self,
        accs: list[GramStats],
        corr: list[GramStats],
        n_samples_fold: np.ndarray,
        pf: np.ndarray | None,
        deviation: bool,
    ) -> np.ndarray:
        """Held-out squared error summed over folds, for each alpha of the path."""
        prm: PooledLassoParams = self.params
        k = len(accs)
        errors = np.zeros(self.alphas.size)
        for f in range(k):
            train = GramStats.empty(accs[f].p)
            for g in range(k):
                if g != f:
                    train += accs[g]
            n_t = float(n_samples_fold.sum() - n_samples_fold[f])
            if deviation:
                train.xtx -= corr[f].xtx / n_t
                train.xty -= corr[f].xty / n_t
                train.yty -= corr[f].yty / n_t
            if train.n == 0 or accs[f].n == 0:
                continue
            coefs, intercepts = lasso_path_gram(
                _centred(train) if deviation else train,
                self.alphas,
                tol=prm.tol,
                max_iter=prm.max_iter,
                penalty_factor=pf,
            )
            for a in range(self.alphas.size):
                w = coefs[a]
                if deviation:
                    r2 = _sse(w, 0.0, accs[f])
                    q2 = _sse(w, 0.0, corr[f])
                    n_f = float(n_samples_fold[f])
                    errors[a] += r2 + (2.0 / n_t + n_f / n_t**2) * q2
                else:
                    errors[a] += _sse(w, float(intercepts[a]), accs[f])
        return errors

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return self.offset[genes][:, None] + (x @ self.coef.astype(np.float32)).astype(np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "coef": self.coef,
            "offset": self.offset,
            "alphas": self.alphas,
            "cv_mse": self.cv_mse,
            "alpha": np.asarray(self.alpha),
        }

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.coef = np.asarray(arrays["coef"], dtype=np.float64)
        self.offset = np.asarray(arrays["offset"], dtype=np.float64)
        self.alphas = np.asarray(arrays["alphas"])
        self.cv_mse = np.asarray(arrays["cv_mse"])
        self.alpha = float(arrays["alpha"])

    def info(self) -> dict[str, float | int]:
        return {"alpha": self.alpha, "nonzero": int((self.coef != 0).sum())}


AlphaSelection = Literal["global", "gene"]
Prior = Literal["profile", "none"]


@dataclass(frozen=True)
class GeneLassoParams:
    """Parameters of ``lasso-gene``.

    Attributes
    ----------
    window
        Bins within this distance of the TSS are candidate inputs (bp).
    distance_scale
        Penalty factor ``1 + d / distance_scale`` (``None``: uniform).
    prior
        ``profile``: a pooled distance profile shared by all genes is fitted first and each gene's
        LASSO fits what it leaves (see :class:`GeneLasso`); ``none``: per-gene LASSOs alone.
    prior_scales
        Decay lengths (bp) of the profile's kernels ``exp(-d / scale)``.
    alpha_selection
        ``global``: one position on the per-gene relative grid for all genes; ``gene``: per gene.
    n_alphas, eps
        Each gene's path: ``n_alphas`` values from its ``alpha_max`` down to ``eps * alpha_max``.
    inner_folds
        Cross-validation folds over training samples.
    tol, max_iter
        Solver settings (scikit-learn's meaning).
    fixed_position
        Use this position on the relative alpha grid for every gene, without inner
        cross-validation (the ``hybrid`` model chooses it on a subset of genes first).
    """

    window: int = 250_000
    distance_scale: float | None = 100_000.0
    prior: Prior = "profile"
    prior_scales: tuple[float, ...] = (1_000.0, 5_000.0, 20_000.0, 100_000.0)
    alpha_selection: AlphaSelection = "global"
    n_alphas: int = 15
    eps: float = 1e-2
    inner_folds: int = 5
    tol: float = 1e-5
    max_iter: int = 1_000_000
    fixed_position: int | None = None


#: Ridge added to the profile's normal equations, relative to their trace / J (numerical safety).
PROFILE_RIDGE = 1e-6


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along axis 1 of ``a (g, s, A)`` and ``b (g, s)``.

    0 where ``a`` is constant (a prediction without within-gene information), NaN where ``b`` is.
    """
    ac = a - a.mean(axis=1, keepdims=True)
    bc = (b - b.mean(axis=1, keepdims=True))[:, :, None]
    num = (ac * bc).sum(axis=1)
    ss_a = (ac * ac).sum(axis=1)
    ss_b = (bc * bc).sum(axis=1)
    scale_a = np.maximum((a * a).sum(axis=1), 1e-300)
    scale_b = np.maximum((b * b).sum(axis=1), 1e-300)[:, None]
    ok = (ss_a > 1e-20 * scale_a) & (ss_b > 1e-20 * scale_b)
    r = np.where(ok, num / np.sqrt(np.where(ok, ss_a * ss_b, 1.0)), 0.0)
    return np.where(ss_b > 1e-20 * scale_b, r, np.nan)


def one_se_choice(scores: np.ndarray) -> tuple[int, np.ndarray]:
    """The sparsest grid position whose CV score is within one standard error of the best.

    Parameters
    ----------
    scores
        ``(n_genes, n_alphas)`` per-gene CV correlations, alphas decreasing (NaN: gene not
        scoreable).

    Returns
    -------
    tuple
        The chosen position, and the median score of every position.

    Notes
    -----
    The best position maximises the median over genes; position ``a`` is within one standard error
    of it when the mean over genes of the paired differences ``r_a - r_best`` is at least minus
    their standard error (Breiman's one-standard-error rule, with genes as the replicates). It
    favours the sparser model, which transfers better to samples unlike the training ones.

    Examples
    --------
    >>> s = np.array([[0.5, 0.52], [0.4, 0.41], [0.3, 0.28]])
    >>> one_se_choice(s)[0]
    0
    """
    ok = np.isfinite(scores).all(axis=1)
    if not ok.any():
        return 0, np.full(scores.shape[1], np.nan)
    s = scores[ok]
    median = np.median(s, axis=0)
    best = int(np.argmax(median))
    diff = s - s[:, [best]]
    se = (
        diff.std(axis=0, ddof=1) / np.sqrt(max(s.shape[0], 1))
        if s.shape[0] > 1
        else np.zeros(s.shape[1])
    )
    within = np.flatnonzero(diff.mean(axis=0) >= -se)
    return int(within.min()) if within.size else best, median


def _solve_profile(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the profile's (J, J) normal equations with a tiny relative ridge."""
    j = a.shape[0]
    ridge = PROFILE_RIDGE * max(float(np.trace(a)) / j, 1e-300)
    return np.linalg.solve(a + ridge * np.eye(j), b)


@register
class GeneLasso(Model):
    """One LASSO per gene across training samples, on top of a pooled distance profile.

    The ``profile`` prior borrows strength across genes: ``J`` kernel features
    ``F_j = sum_b exp(-d_b / scale_j) x_b`` (``x``: transformed openness of the window's bins) enter
    one linear model shared by all genes, fitted by least squares on per-gene deviations from
    training means (``J`` coefficients from thousands of genes: stable, and it transfers to
    enhancers that never varied in the training samples, which per-gene models cannot learn). Each
    gene's LASSO then fits the residual ``y - F c`` on the window's bins: the gene-specific links.
    Prediction: ``intercept_g + F c + x w_g``. Inner cross-validation refits the profile without the
    held-out fold, so the alpha choice sees the whole procedure; at ``alpha_max`` the per-gene part
    is zero and the model is the profile alone, so cross-validation also decides how much per-gene
    detail is worth.
    """

    name: ClassVar[str] = "lasso-gene"
    Params: ClassVar[type] = GeneLassoParams
    per_gene: ClassVar[bool] = True
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {
        "coef_gene": ("*",),
        "coef_bin": ("*",),
        "coef_value": ("*",),
        "shape": (2,),
        "intercept": ("genes",),
        "alpha": ("genes",),
        "cv_r": ("genes",),
        "kernels": ("*", "features"),
        "profile": ("*",),
    }
    formulations: ClassVar[tuple[str, ...]] = ("deviation",)

    def __init__(self, params: GeneLassoParams | None = None) -> None:
        super().__init__(params)
        self.coef = np.zeros((0, 0), dtype=np.float32)
        self.intercept = np.zeros(0)
        self.alpha = np.zeros(0)
        self.cv_r = np.zeros(0)
        self.kernels = np.zeros((0, 0), dtype=np.float32)
        self.profile = np.zeros(0)
        self.choice = -1
        self.oof_prediction: np.ndarray | None = None

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        return window_bins(offsets, bin_size, int(self.params.window))

    def _features(self, x: np.ndarray) -> np.ndarray:
        """Profile features ``(genes, samples, J)`` float64 (J = 0 without a prior)."""
        if self.kernels.shape[0] == 0:
            return np.zeros((*x.shape[:2], 0))
        return (x @ self.kernels.T).astype(np.float64)

    def _fit_profiles(
        self, data: TrainingData, cols: np.ndarray, folds: np.ndarray, k: int
    ) -> np.ndarray:
        """Profile coefficients ``(k + 1, J)``: one per inner fold (fitted without it) and one on
        all."""
        n_j = self.kernels.shape[0]
        a = np.zeros((k + 1, n_j, n_j))
        b = np.zeros((k + 1, n_j))
        with progress_bar("lasso-gene: profile", data.y.shape[0]) as bar:
            for local, c, x in data.source.iter_blocks(cols):
                feats = self._features(x)
                y = data.y[np.ix_(local, c)]
                for f in range(k + 1):
                    keep = folds != f
                    fc = feats[:, keep] - feats[:, keep].mean(axis=1, keepdims=True)
                    yc = y[:, keep] - y[:, keep].mean(axis=1, keepdims=True)
                    a[f] += np.einsum("gsi,gsj->ij", fc, fc)
                    b[f] += np.einsum("gsi,gs->i", fc, yc)
                bar.advance(int(local.size))  # type: ignore[attr-defined]
        return np.stack([_solve_profile(a[f], b[f]) for f in range(k + 1)])

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        start = time.perf_counter()
        prm: GeneLassoParams = self.params
        if prm.alpha_selection not in ("global", "gene"):
            raise InputError(f"lasso-gene: unknown alpha selection {prm.alpha_selection!r}")
        if prm.prior not in ("profile", "none"):
            raise InputError(f"lasso-gene: unknown prior {prm.prior!r}")
        n_genes, p = data.y.shape[0], data.source.n_features
        cols = data.cols_with(TRAIN)
        folds = data.inner_folds[cols]
        fixed = prm.fixed_position
        if fixed is not None:
            if not 0 <= fixed < prm.n_alphas:
                raise InputError(f"lasso-gene: fixed_position must be in [0, {prm.n_alphas})")
            folds = np.full(cols.size, -1, dtype=np.int64)  # no inner cross-validation
        k = int(folds.max()) + 1 if folds.size else 0
        if fixed is None and (k < 2 or cols.size < 3):
            raise InputError(
                "lasso-gene needs at least 3 training samples (cross-validation over samples)"
            )
        if prm.prior == "profile":
            scales = np.asarray(prm.prior_scales, dtype=np.float64)
            self.kernels = np.exp(-data.bin_distance[None, :] / scales[:, None]).astype(np.float32)
            profiles = self._fit_profiles(data, cols, folds, k)
        else:
            self.kernels = np.zeros((0, p), dtype=np.float32)
            profiles = np.zeros((k + 1, 0))
        self.profile = profiles[k]
        ratios = alpha_grid(1.0, prm.n_alphas, prm.eps)
        if fixed is not None:
            ratios = ratios[: fixed + 1]  # the path down to the fixed position only
        pf = penalty_factors(data.bin_distance, prm.distance_scale)
        n_a = ratios.size
        scores = np.zeros((n_genes, n_a))
        sse = np.zeros((n_genes, n_a))
        alphas_all = np.zeros((n_genes, n_a))
        intercepts_all = np.zeros((n_genes, n_a))
        path_rows: list[list[np.ndarray]] = [[] for _ in range(n_a)]
        path_bins: list[list[np.ndarray]] = [[] for _ in range(n_a)]
        path_vals: list[list[np.ndarray]] = [[] for _ in range(n_a)]
        keep_oof = bool(data.options.get("keep_oof"))
        oof_all = np.zeros((n_genes, cols.size, n_a), dtype=np.float32) if keep_oof else None
        with _solver_warnings("lasso-gene"), progress_bar("lasso-gene: genes", n_genes) as bar:
            for local, c, x in data.source.iter_blocks(cols):
                y = data.y[np.ix_(local, c)]
                feats = self._features(x)
                resid = y - feats @ profiles[k]
                amax = alpha_max_per_gene(x, resid, penalty_factor=pf)
                alphas = np.maximum(amax, 1e-12)[:, None] * ratios[None, :]
                oof = np.zeros((local.size, c.size, n_a))
                obs_dev = np.zeros((local.size, c.size))
                for f in range(k):
                    held = folds == f
                    prior = feats @ profiles[f]
                    fit_x = np.ascontiguousarray(x[:, ~held])
                    fit_y = (y - prior)[:, ~held]
                    # the fold's own grid: the same positions relative to its own alpha_max
                    fold_max = alpha_max_per_gene(fit_x, fit_y, penalty_factor=pf)
                    coefs, icpt = lasso_path_per_gene(
                        fit_x,
                        fit_y,
                        np.maximum(fold_max, 1e-12)[:, None] * ratios[None, :],
                        tol=prm.tol,
                        max_iter=prm.max_iter,
                        penalty_factor=pf,
                    )
                    pred = (
                        icpt[:, None, :]
                        + prior[:, held, None]
                        + np.einsum("gsp,gap->gsa", x[:, held], coefs)
                    )
                    fold_mean = y[:, ~held].mean(axis=1)
                    oof[:, held, :] = pred - fold_mean[:, None, None]
                    obs_dev[:, held] = y[:, held] - fold_mean[:, None]
                    if oof_all is not None:
                        oof_all[local[:, None], np.flatnonzero(held)[None, :], :] = pred
                scores[local] = _row_corr(oof, obs_dev)
                coefs, icpt = lasso_path_per_gene(
                    x, resid, alphas, tol=prm.tol, max_iter=prm.max_iter, penalty_factor=pf
                )
                fitted = icpt[:, None, :] + np.einsum("gsp,gap->gsa", x, coefs)
                sse[local] = ((fitted - resid[:, :, None]) ** 2).sum(axis=1)
                alphas_all[local] = alphas
                intercepts_all[local] = icpt
                for a in range(n_a):
                    g, b = np.nonzero(coefs[:, a, :])
                    path_rows[a].append(local[g])
                    path_bins[a].append(b.astype(np.int32))
                    path_vals[a].append(coefs[g, a, b])
                bar.advance(int(local.size))  # type: ignore[attr-defined]
        if fixed is not None:
            self.choice = fixed
            choice = np.full(n_genes, fixed)
        elif prm.alpha_selection == "global":
            self.choice, median_r = one_se_choice(scores)
            choice = np.full(n_genes, self.choice)
            logger.info(
                "lasso-gene: alpha = %.3g x alpha_max for every gene "
                "(inner-CV median within-gene r %.3f; "
                "best %.3f; %s alone %.3f)",
                ratios[self.choice],
                median_r[self.choice],
                np.max(median_r),
                "profile" if prm.prior == "profile" else "mean",
                median_r[0],
            )
        else:
            choice = np.argmax(np.nan_to_num(scores, nan=-np.inf), axis=1)
        self.coef = np.zeros((n_genes, p), dtype=np.float32)
        for a in np.unique(choice):
            if not path_rows[a]:
                continue
            rows = np.concatenate(path_rows[a])
            bins = np.concatenate(path_bins[a])
            vals = np.concatenate(path_vals[a])
            keep = choice[rows] == a
            self.coef[rows[keep], bins[keep]] = vals[keep]
        pick = np.arange(n_genes)
        if oof_all is not None:
            # out-of-fold predictions at the chosen alpha: (genes, training samples), for stacking
            self.oof_prediction = oof_all[pick, :, choice].astype(np.float64)
        self.intercept = intercepts_all[pick, choice]
        self.alpha = alphas_all[pick, choice]
        self.cv_r = scores[pick, choice]
        n_train = float(cols.size * n_genes)
        return [
            {
                "epoch": 1,
                "train_mse": float(sse[pick, choice].sum() / n_train),
                "dev_mse": float("nan"),
                "seconds": time.perf_counter() - start,
            }
        ]

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        w = self.coef[genes]
        out = self.intercept[genes][:, None] + np.einsum("gsp,gp->gs", x, w).astype(np.float64)
        if self.profile.size:
            out += self._features(x) @ self.profile
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        rows, bins = np.nonzero(self.coef)
        return {
            "coef_gene": rows.astype(np.int32),
            "coef_bin": bins.astype(np.int32),
            "coef_value": self.coef[rows, bins],
            "shape": np.asarray(self.coef.shape, dtype=np.int64),
            "intercept": self.intercept,
            "alpha": self.alpha,
            "cv_r": self.cv_r,
            "kernels": self.kernels,
            "profile": self.profile,
        }

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        shape = tuple(int(v) for v in arrays["shape"])
        self.coef = np.zeros(shape, dtype=np.float32)
        self.coef[arrays["coef_gene"], arrays["coef_bin"]] = arrays["coef_value"]
        self.intercept = np.asarray(arrays["intercept"], dtype=np.float64)
        self.alpha = np.asarray(arrays["alpha"], dtype=np.float64)
        self.cv_r = np.asarray(arrays["cv_r"], dtype=np.float64)
        self.kernels = np.asarray(arrays["kernels"], dtype=np.float32)
        self.profile = np.asarray(arrays["profile"], dtype=np.float64)

    def info(self) -> dict[str, Any]:
        nonzero = (self.coef != 0).sum(axis=1)
        return {
            "median_nonzero_bins": float(np.median(nonzero)) if nonzero.size else 0.0,
            "genes_with_links": int((nonzero > 0).sum()),
            "median_cv_r": float(np.nanmedian(self.cv_r)) if np.isfinite(self.cv_r).any() else None,
            "profile": self.profile.tolist(),
        }
