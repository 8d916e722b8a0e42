"""``hybrid`` (the default model): cross-sample similarity and each gene's own regulatory bins.

Two predictors of a gene's deviation from its training mean, mixed with a weight chosen by inner
cross-validation over the training samples:

**similarity** (kernel ridge regression over samples). Each sample is described by its promoter
profile (as ``neighbors``: openness in the bins within ``profile_window`` of every modelled gene's
TSS); ``R`` is the correlation matrix of the training samples' profiles centred by their mean, and
``r(s)`` the correlations of a new sample ``s`` with them. For every gene ``g`` with training
deviations ``d_g = y_g - ybar_g``::

    sim_g(s) = r(s) . (R + lambda I)^-1 d_g

It is the Gaussian-process / kernel-ridge form of "copy the expression of samples that look alike":
unlike a weighted mean it discounts training samples that resemble each other (a run of
near-identical stages counts once) and extrapolates along the directions in which samples differ.
``lambda`` is chosen from ``ridges``.

**regulatory** (``lasso-gene``): one LASSO per gene on the bins within ``window`` of its TSS, on
top of the pooled distance profile (:class:`chromexpr.models.lasso.GeneLasso`). It is the part that
knows which elements drive the gene, and the only part the attribution tracks explain.

Prediction: ``ybar_g + (1 - m) sim_g(s) + m (lasso_g(s) - ybar_g)``. ``lambda`` and ``m`` are chosen
together on the median within-gene correlation of the inner-fold predictions (the LASSO's
out-of-fold predictions from its own inner cross-validation, the similarity term refitted without
each fold, both over the same folds), so ``m = 0`` (similarity alone) and ``m = 1`` (lasso-gene
alone) are candidates too: the mix is used only where the training samples say it helps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from chromexpr.errors import InputError
from chromexpr.log import logger
from chromexpr.models.base import Model, TrainingData, register
from chromexpr.models.design import BlockSource, window_bins
from chromexpr.models.lasso import GeneLasso, GeneLassoParams
from chromexpr.models.neighbors import inner_cv_predictions, median_row_r
from chromexpr.models.similarity import (
    centred_gram,
    check_profile_arrays,
    correlation_from_gram,
    power_weights,
    sample_profiles,
)
from chromexpr.models.splits import TRAIN

__all__ = ["HybridModel", "HybridParams"]


@dataclass(frozen=True)
class HybridParams:
    """Parameters of ``hybrid``.

    Attributes
    ----------
    profile_window
        Profile bins: centre within this distance of a TSS (bp), as ``neighbors``.
    ridges
        Candidate ``lambda`` of the similarity term (relative to the unit diagonal of ``R``).
    mixes
        Candidate weights ``m`` of the regulatory term.
    window, n_alphas, eps, max_iter, tol
        The regulatory ``lasso-gene``'s candidate window (bp), alpha path and solver settings.
    cv_genes
        Genes (whole chunks, evenly spaced) on which the inner cross-validation of the LASSO's
        alpha and of the mix runs; the LASSO is then fitted once on every gene at that alpha.
    """

    profile_window: int = 1_000
    ridges: tuple[float, ...] = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    mixes: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    window: int = 250_000
    n_alphas: int = 8
    eps: float = 1e-2
    max_iter: int = 1_000_000
    tol: float = 1e-5
    cv_genes: int = 3_000


def _krr(kernel: np.ndarray, cross: np.ndarray, y_dev: np.ndarray, ridge: float) -> np.ndarray:
    """``cross (R + ridge I)^-1 y_dev^T`` transposed: ``(n_genes, n_new)``.

    ``kernel`` ``(n, n)`` among training samples, ``cross`` ``(n_new, n)``, ``y_dev`` ``(n_genes,
    n)``.
    """
    n = kernel.shape[0]
    coef = np.linalg.solve(kernel + ridge * np.eye(n), y_dev.T)  # (n, n_genes)
    return (cross @ coef).T


#: Inner-CV scores recorded for each fit (``--model auto`` reads them).
COMPONENTS = ("similarity", "lasso-gene", "neighbors (exponent 8)", "hybrid")


def cv_gene_subset(source: BlockSource, max_genes: int) -> np.ndarray:
    """Local indices of the genes of evenly spaced whole chunks, about ``max_genes`` in all.

    Whole chunks keep the reads aligned; spacing them over the dataset samples every chromosome.
    """
    chunks = source.chunks()
    sizes = np.asarray([local.size for _, local in chunks])
    if sizes.sum() <= max_genes:
        return np.arange(source.gene_index.size, dtype=np.int64)
    take = max(1, round(max_genes / max(float(sizes.mean()), 1.0)))
    chosen = np.unique(np.linspace(0, len(chunks) - 1, take).round().astype(np.int64))
    return np.concatenate([chunks[int(c)][1] for c in chosen]).astype(np.int64)


@register
class HybridModel(Model):
    """Similarity kernel ridge mixed with lasso-gene (see the module docstring)."""

    name: ClassVar[str] = "hybrid"
    Params: ClassVar[type] = HybridParams
    per_gene: ClassVar[bool] = True
    formulations: ClassVar[tuple[str, ...]] = ("deviation",)
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {
        "level": ("genes",),
        "coef": ("genes", "*"),
        "centred_profiles": ("*", "*"),
        "mean_profile": ("*",),
        "ridge": (),
        "mix": (),
        "scores": ("*", "*"),
        "profile_pos": ("*",),
        "window_pos": ("*",),
        "component_scores": (4,),
    }

    def __init__(self, params: HybridParams | None = None) -> None:
        super().__init__(params)
        self.level = np.zeros(0)
        self.coef = np.zeros((0, 0), dtype=np.float32)  # (n_genes, n_train): kernel ridge duals
        self.centred_profiles = np.zeros((0, 0), dtype=np.float32)
        self.mean_profile = np.zeros(0, dtype=np.float32)
        self.ridge = 0.01
        self.mix = 0.5
        self.scores = np.zeros((0, 0))
        self.component_scores: dict[str, float] = {}
        self.regulatory = GeneLasso(self._lasso_params())
        self.profile_pos = np.zeros(0, dtype=np.int64)
        self.window_pos = np.zeros(0, dtype=np.int64)
        self._cross: np.ndarray | None = None

    def _lasso_params(self) -> GeneLassoParams:
        prm: HybridParams = self.params
        return GeneLassoParams(
            window=prm.window,
            n_alphas=prm.n_alphas,
            eps=prm.eps,
            max_iter=prm.max_iter,
            tol=prm.tol,
        )

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        """The union of the profile bins and the regulatory window (one read serves both)."""
        profile = window_bins(offsets, bin_size, int(self.params.profile_window))
        window = window_bins(offsets, bin_size, int(self.params.window))
        kept = np.union1d(profile, window).astype(np.int64)
        self.profile_pos = np.searchsorted(kept, profile).astype(np.int64)
        self.window_pos = np.searchsorted(kept, window).astype(np.int64)
        return kept

    def _sub(self, source: BlockSource, pos: np.ndarray) -> BlockSource:
        bins = pos if source.bins is None else np.asarray(source.bins)[pos]
        return replace(source, bins=bins)

    def validate_arrays(
        self, arrays: dict[str, np.ndarray], *, n_genes: int, n_features: int
    ) -> None:
        """Also: bin positions within the features, profiles per training sample, the LASSO's
        arrays."""
        super().validate_arrays(arrays, n_genes=n_genes, n_features=n_features)
        for key in ("profile_pos", "window_pos"):
            pos = arrays[key]
            if pos.size == 0 or pos.min() < 0 or pos.max() >= n_features:
                raise ValueError(f"array {key!r} of model {self.name} indexes no model bin")
        n_profile = int(arrays["profile_pos"].size)
        check_profile_arrays(arrays, "coef", n_genes * n_profile, self.name)
        lasso = {k[len("lasso__") :]: v for k, v in arrays.items() if k.startswith("lasso__")}
        GeneLasso(self._lasso_params()).validate_arrays(
            lasso, n_genes=n_genes, n_features=int(arrays["window_pos"].size)
        )

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        start = time.perf_counter()
        prm: HybridParams = self.params
        if not prm.ridges or min(prm.ridges) <= 0:
            raise InputError("hybrid: ridges must be positive")
        if not prm.mixes or min(prm.mixes) < 0 or max(prm.mixes) > 1:
            raise InputError("hybrid: mixes must lie in [0, 1]")
        cols = data.cols_with(TRAIN)
        folds = data.inner_folds[cols]
        if cols.size < 3 or np.unique(folds[folds >= 0]).size < 2:
            raise InputError(
                "hybrid needs at least 3 training samples (cross-validation over samples)"
            )
        # similarity: profiles of the training samples
        profiles = sample_profiles(self._sub(data.source, self.profile_pos), cols)
        y = data.y[:, cols]
        self.level = np.asarray(data.y_mean, dtype=np.float64)
        y_dev = y - self.level[:, None]
        self.mean_profile = profiles.mean(axis=0)
        self.centred_profiles = profiles - self.mean_profile
        p64 = profiles.astype(np.float64)
        gram = p64 @ p64.T
        # regulatory: lasso-gene's inner CV (alpha position and out-of-fold predictions for the
        # mix) on an evenly spaced subset of gene chunks; then one fit of all genes at that alpha
        subset = cv_gene_subset(data.source, prm.cv_genes)
        window = self._sub(data.source, self.window_pos)
        cv_lasso = GeneLasso(self._lasso_params())
        cv_lasso.fit(
            replace(
                data,
                source=replace(window, gene_index=window.gene_index[subset]),
                y=data.y[subset],
                roles=data.roles[subset],
                y_mean=data.y_mean[subset],
                bin_distance=data.bin_distance[self.window_pos],
                options={**data.options, "keep_oof": True},
            )
        )
        lasso_oof = cv_lasso.oof_prediction
        assert lasso_oof is not None
        y_sub = y[subset]
        # inner-fold observed deviations and the lasso's out-of-fold deviations
        obs = np.zeros_like(y_sub)
        lasso_dev = np.zeros_like(y_sub)
        for f in np.unique(folds):
            held, rest = folds == f, folds != f
            mean = y_sub[:, rest].mean(axis=1, keepdims=True)
            obs[:, held] = y_sub[:, held] - mean
            lasso_dev[:, held] = lasso_oof[:, held] - mean
        ridges, mixes = tuple(prm.ridges), tuple(prm.mixes)
        scores = np.full((len(ridges), len(mixes)), np.nan)
        for i, lam in enumerate(ridges):
            sim = self._inner_similarity(gram, y_sub, folds, lam)
            for j, m in enumerate(mixes):
                scores[i, j] = median_row_r((1 - m) * sim + m * lasso_dev, obs)
        if not np.isfinite(scores).any():
            raise InputError("hybrid: no gene varies across the training samples")
        best = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
        i, j = int(best[0]), int(best[1])
        self.ridge, self.mix, self.scores = float(ridges[i]), float(mixes[j]), scores
        nb_pred, nb_obs = inner_cv_predictions(
            gram, y_sub, folds, lambda r, yd: yd @ power_weights(r, 8.0).T
        )
        self.component_scores = {
            "similarity": float(np.nanmax(scores[:, 0])),
            "lasso-gene": float(scores[0, -1]) if mixes[-1] == 1.0 else float("nan"),
            "neighbors (exponent 8)": median_row_r(nb_pred, nb_obs),
            "hybrid": float(scores[i, j]),
        }
        logger.info(
            "hybrid: similarity ridge %g, regulatory weight %g (inner-CV median within-gene r "
            "%.3f; similarity alone %.3f, lasso-gene alone %.3f)",
            self.ridge,
            self.mix,
            scores[i, j],
            self.component_scores["similarity"],
            self.component_scores["lasso-gene"],
        )
        self.regulatory = GeneLasso(
            replace(self._lasso_params(), fixed_position=int(cv_lasso.choice))
        )
        if self.mix > 0:
            self.regulatory.fit(
                replace(
                    data,
                    source=window,
                    bin_distance=data.bin_distance[self.window_pos],
                    options=dict(data.options),
                )
            )
        else:  # the regulatory part has weight 0: an empty LASSO (the training mean)
            self.regulatory.coef = np.zeros((y.shape[0], self.window_pos.size), dtype=np.float32)
            self.regulatory.intercept = self.level.copy()
            self.regulatory.alpha = np.full(y.shape[0], np.nan)
            self.regulatory.cv_r = np.full(y.shape[0], np.nan)
            self.regulatory.kernels = np.zeros((0, self.window_pos.size), dtype=np.float32)
            self.regulatory.profile = np.zeros(0)
        kernel = correlation_from_gram(centred_gram(gram, np.arange(cols.size)))
        n = kernel.shape[0]
        self.coef = np.linalg.solve(kernel + self.ridge * np.eye(n), y_dev.T).T.astype(np.float32)
        # the training fit of the similarity term alone; with a LASSO part its in-sample
        # predictions would need another pass over the data, so no training MSE is reported
        fitted = self.coef.astype(np.float64) @ kernel
        mse = float(np.mean((fitted - y_dev) ** 2)) if self.mix == 0 else float("nan")
        return [
            {
                "epoch": 1,
                "train_mse": mse,
                "dev_mse": float("nan"),
                "seconds": time.perf_counter() - start,
            }
        ]

    @staticmethod
    def _inner_similarity(
        gram: np.ndarray, y: np.ndarray, folds: np.ndarray, ridge: float
    ) -> np.ndarray:
        """Out-of-fold kernel ridge deviations ``(n_genes, n)`` over the inner folds."""
        pred = np.zeros(y.shape)
        for f in np.unique(folds):
            held = np.flatnonzero(folds == f)
            rest = np.flatnonzero(folds != f)
            r = correlation_from_gram(centred_gram(gram, rest))
            yd = y[:, rest] - y[:, rest].mean(axis=1, keepdims=True)
            pred[:, held] = _krr(r[np.ix_(rest, rest)], r[np.ix_(held, rest)], yd, ridge)
        return pred

    def similarity(self, profiles: np.ndarray) -> np.ndarray:
        """Correlations ``(n_new, n_train)`` of new samples' profiles with the training samples'."""
        new = profiles.astype(np.float64) - self.mean_profile
        train = self.centred_profiles.astype(np.float64)
        norms = np.sqrt((new * new).sum(axis=1))[:, None] * np.sqrt((train * train).sum(axis=1))
        ok = norms > 1e-300
        return np.where(ok, (new @ train.T) / np.where(ok, norms, 1.0), 0.0)

    def begin_predict(self, source: BlockSource) -> None:
        """Each sample's correlations with the training samples (one pass over the profile
        bins)."""
        self._cross = self.similarity(sample_profiles(self._sub(source, self.profile_pos)))

    def _regulatory(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return self.regulatory.predict(
            np.ascontiguousarray(x[:, :, self.window_pos]), genes, samples
        )

    def predict_columns(
        self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        if self._cross is None:
            raise InputError("hybrid: predictions need begin_predict() first")
        cross = self._cross[np.asarray(columns, dtype=np.int64)]
        sim = self.coef[genes].astype(np.float64) @ cross.T
        return self.predict(x, genes, samples) + (1 - self.mix) * sim

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """The regulatory part alone (the similarity term at zero): affine in ``x``.

        This is what attribution explains; full predictions go through :meth:`begin_predict` and
        :meth:`predict_columns`.
        """
        level = self.level[genes][:, None]
        return level + self.mix * (self._regulatory(x, genes, samples) - level)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"lasso__{k}": v for k, v in self.regulatory.arrays().items()}
        out.update(
            {
                "level": self.level,
                "coef": self.coef,
                "centred_profiles": self.centred_profiles,
                "mean_profile": self.mean_profile,
                "ridge": np.asarray(self.ridge),
                "mix": np.asarray(self.mix),
                "scores": self.scores,
                "profile_pos": self.profile_pos,
                "window_pos": self.window_pos,
                "component_scores": np.asarray(
                    [self.component_scores.get(k, np.nan) for k in COMPONENTS], dtype=np.float64
                ),
            }
        )
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.regulatory = GeneLasso(self._lasso_params())
        self.regulatory.load_arrays(
            {k[len("lasso__") :]: v for k, v in arrays.items() if k.startswith("lasso__")}
        )
        self.level = np.asarray(arrays["level"], dtype=np.float64)
        self.coef = np.asarray(arrays["coef"], dtype=np.float32)
        self.centred_profiles = np.asarray(arrays["centred_profiles"], dtype=np.float32)
        self.mean_profile = np.asarray(arrays["mean_profile"], dtype=np.float32)
        self.ridge = float(arrays["ridge"])
        self.mix = float(arrays["mix"])
        self.scores = np.asarray(arrays["scores"], dtype=np.float64)
        self.profile_pos = np.asarray(arrays["profile_pos"], dtype=np.int64)
        self.window_pos = np.asarray(arrays["window_pos"], dtype=np.int64)
        values = np.asarray(arrays["component_scores"], dtype=np.float64)
        self.component_scores = {k: float(v) for k, v in zip(COMPONENTS, values, strict=True)}

    def info(self) -> dict[str, Any]:
        return {
            "ridge": self.ridge,
            "regulatory_weight": self.mix,
            "inner_cv": self.component_scores,
            "regulatory": self.regulatory.info(),
        }
