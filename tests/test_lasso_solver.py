"""Tests of chromexpr.models.lasso_solver with scikit-learn's ``Lasso`` as the oracle.

Both solvers must minimise scikit-learn's objective ``(1/(2n))||y - Xw - b||^2 + alpha||w||_1``,
so for the same alpha the coefficients agree to 1e-5 once both are converged tightly. Problems are
small (n, p <= 80) so that scikit-learn at ``tol=1e-12`` stays fast.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Lasso, lasso_path

from chromexpr.models.lasso_solver import (
    ConvergenceWarning,
    GramStats,
    alpha_grid,
    alpha_max_gram,
    alpha_max_per_gene,
    lasso_path_gram,
    lasso_path_per_gene,
)

ATOL = 1e-5
RATIOS = np.array([0.7, 0.3, 0.1, 0.03])  # alphas as fractions of alpha_max

# --------------------------------------------------------------------------------------------
# Problems and the oracle
# --------------------------------------------------------------------------------------------


def make_problem(
    kind: str, n: int, p: int, seed: int, *, dtype: type = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """One (x, y) problem.

    ``random``: Gaussian x, dense Gaussian weights. ``sparse``: planted 4-sparse weights.
    ``correlated``: AR(1) columns (rho 0.8, like neighbouring bins) with a planted signal.
    ``constant``: non-negative accessibility-like x with two constant columns and an all-zero one.
    """
    rng = np.random.default_rng(seed)
    if kind == "correlated":
        z = rng.normal(size=(n, p))
        x = np.empty((n, p))
        x[:, 0] = z[:, 0]
        for j in range(1, p):
            x[:, j] = 0.8 * x[:, j - 1] + 0.6 * z[:, j]
    elif kind == "constant":
        x = np.log1p(rng.gamma(0.5, 2.0, size=(n, p)))
        x[:, 3] = 1.7
        x[:, 7] = 0.0
        x[:, p - 1] = -2.5
    else:
        x = rng.normal(size=(n, p))
    w = np.zeros(p)
    if kind == "random":
        w = rng.normal(size=p)
    else:
        idx = rng.choice([j for j in range(p) if j not in (3, 7, p - 1)], size=4, replace=False)
        w[idx] = rng.choice([-1, 1], size=4) * rng.uniform(1, 3, size=4)
    y = x @ w + 0.5 + 0.3 * rng.normal(size=n)
    return x.astype(dtype), y


def sklearn_fit(
    x: np.ndarray, y: np.ndarray, alpha: float, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    model = Lasso(alpha=alpha, fit_intercept=True, tol=1e-12, max_iter=100_000)
    with warnings.catch_warnings():
        # alpha at or above alpha_max: scikit-learn may report a zero duality gap check oddity
        warnings.simplefilter("ignore", category=UserWarning)
        model.fit(np.asarray(x, dtype=np.float64), y, sample_weight=sample_weight)
    return model.coef_.copy(), float(model.intercept_)


def sk_alpha_max(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's alpha_max ``max_j |x_c[:, j] . y_c| / n`` (its ``_alpha_grid``), checked on
    scikit-learn's own fits: all zero just above it, not all zero just below."""
    x64 = np.asarray(x, dtype=np.float64)
    xc = x64 - x64.mean(axis=0)
    amax = float(np.max(np.abs(xc.T @ (y - y.mean()))) / y.size)
    assert np.all(sklearn_fit(x64, y, amax * (1 + 1e-9))[0] == 0)
    assert np.any(sklearn_fit(x64, y, amax * 0.99)[0] != 0)
    return amax


def objective(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, alpha: float) -> float:
    r = y - np.asarray(x, dtype=np.float64) @ w - b
    return float(r @ r / (2 * y.size) + alpha * np.abs(w).sum())


def stats_in_pieces(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> GramStats:
    """Statistics from three update() batches in one shard and two in another, then merged."""
    cuts = [0, x.shape[0] // 5, x.shape[0] // 3, x.shape[0] // 2, 3 * x.shape[0] // 4, x.shape[0]]
    shards = [GramStats.empty(x.shape[1]), GramStats.empty(x.shape[1])]
    for k in range(5):
        rows = slice(cuts[k], cuts[k + 1])
        shards[0 if k < 3 else 1].update(x[rows], y[rows], None if weight is None else weight[rows])
    return shards[0].merge(shards[1])


PROBLEMS = [
    pytest.param(kind, n, p, id=f"{kind}-n{n}-p{p}")
    for kind in ("random", "sparse", "correlated", "constant")
    for n, p in ((30, 60), (80, 20))
]


# --------------------------------------------------------------------------------------------
# Pooled solver (Gram matrix)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "n", "p"), PROBLEMS)
def test_gram_path_matches_sklearn(kind: str, n: int, p: int) -> None:
    x, y = make_problem(kind, n, p, seed=n + p)
    stats = stats_in_pieces(x, y)
    amax = alpha_max_gram(stats)
    assert amax == pytest.approx(sk_alpha_max(x, y), rel=1e-10)
    alphas = amax * RATIOS
    coefs, intercepts = lasso_path_gram(stats, alphas, tol=1e-12)
    assert coefs.shape == (alphas.size, p)
    assert intercepts.shape == (alphas.size,)
    for k, alpha in enumerate(alphas):
        w, b = sklearn_fit(x, y, alpha)
        np.testing.assert_allclose(coefs[k], w, atol=ATOL, rtol=0)
        assert intercepts[k] == pytest.approx(b, abs=ATOL)
        ours = objective(x, y, coefs[k], intercepts[k], alpha)
        assert ours == pytest.approx(objective(x, y, w, b, alpha), rel=1e-9, abs=1e-12)
    if kind == "constant":
        assert np.all(coefs[:, [3, 7, p - 1]] == 0)


def test_gram_weighted_matches_sklearn_sample_weight() -> None:
    x, y = make_problem("sparse", 60, 15, seed=3)
    weight = np.random.default_rng(4).uniform(0.2, 3.0, size=60)
    stats = stats_in_pieces(x, y, weight)
    alphas = alpha_max_gram(stats) * RATIOS
    coefs, intercepts = lasso_path_gram(stats, alphas, tol=1e-12)
    for k, alpha in enumerate(alphas):
        w, b = sklearn_fit(x, y, alpha, sample_weight=weight)
        np.testing.assert_allclose(coefs[k], w, atol=ATOL, rtol=0)
        assert intercepts[k] == pytest.approx(b, abs=ATOL)


def test_gram_default_tolerance_is_close() -> None:
    x, y = make_problem("correlated", 80, 20, seed=5)
    stats = stats_in_pieces(x, y)
    alpha = 0.05 * alpha_max_gram(stats)
    coefs, _ = lasso_path_gram(stats, np.array([alpha]))
    np.testing.assert_allclose(coefs[0], sklearn_fit(x, y, alpha)[0], atol=1e-3, rtol=0)


def test_gram_penalty_factor_matches_rescaled_columns() -> None:
    x, y = make_problem("correlated", 50, 25, seed=6)
    pf = np.random.default_rng(7).uniform(0.5, 3.0, size=25)
    stats = stats_in_pieces(x, y)
    amax = alpha_max_gram(stats, penalty_factor=pf)
    assert amax == pytest.approx(sk_alpha_max(x / pf, y), rel=1e-10)
    alphas = amax * RATIOS
    coefs, intercepts = lasso_path_gram(stats, alphas, tol=1e-12, penalty_factor=pf)
    for k, alpha in enumerate(alphas):
        v, b = sklearn_fit(x / pf, y, alpha)  # w_j = v_j / pf_j
        np.testing.assert_allclose(coefs[k], v / pf, atol=ATOL, rtol=0)
        assert intercepts[k] == pytest.approx(b, abs=ATOL)


def test_gram_zero_penalty_factor_is_unpenalised() -> None:
    x, y = make_problem("sparse", 60, 10, seed=8)
    pf = np.ones(10)
    pf[2] = 0.0
    stats = stats_in_pieces(x, y)
    coefs, _ = lasso_path_gram(stats, np.array([1e3]), tol=1e-12, penalty_factor=pf)
    # a huge alpha zeroes every penalised coefficient; the free one is the simple regression slope
    assert np.count_nonzero(coefs[0]) == 1
    slope = np.cov(x[:, 2], y, bias=True)[0, 1] / np.var(x[:, 2])
    assert coefs[0, 2] == pytest.approx(slope, rel=1e-8)


@pytest.mark.parametrize("factor", [1.0, 1.5, 100.0])
def test_alpha_at_or_above_alpha_max_gives_zeros(factor: float) -> None:
    x, y = make_problem("sparse", 40, 30, seed=9)
    stats = stats_in_pieces(x, y)
    alpha = alpha_max_gram(stats) * factor
    coefs, intercepts = lasso_path_gram(stats, np.array([alpha]))
    assert np.all(coefs == 0)
    assert intercepts[0] == pytest.approx(y.mean(), rel=1e-12)
    genes_x = np.stack([x, x[::-1]]).astype(np.float32)
    genes_y = np.stack([y, y[::-1]])
    amax = alpha_max_per_gene(genes_x, genes_y)
    c, b = lasso_path_per_gene(genes_x, genes_y, amax[:, None] * factor)
    assert np.all(c == 0)
    np.testing.assert_allclose(b, y.mean(), rtol=1e-10)
    # just below alpha_max something enters
    below, _ = lasso_path_gram(stats, np.array([0.99 * alpha_max_gram(stats)]))
    assert np.count_nonzero(below) >= 1


def test_gram_alphas_in_any_order() -> None:
    x, y = make_problem("correlated", 40, 30, seed=10)
    stats = stats_in_pieces(x, y)
    alphas = alpha_max_gram(stats) * RATIOS
    down, b_down = lasso_path_gram(stats, alphas, tol=1e-12)
    up, b_up = lasso_path_gram(stats, alphas[::-1], tol=1e-12)
    np.testing.assert_allclose(up[::-1], down, atol=1e-9)
    np.testing.assert_allclose(b_up[::-1], b_down, atol=1e-9)


def test_gram_constant_target() -> None:
    x, _ = make_problem("random", 30, 5, seed=11)
    stats = GramStats.empty(5)
    stats.update(x, np.full(30, 2.5))
    assert alpha_max_gram(stats) == pytest.approx(0.0, abs=1e-12)
    coefs, intercepts = lasso_path_gram(stats, alpha_grid(alpha_max_gram(stats), 3))
    assert np.all(coefs == 0)
    np.testing.assert_allclose(intercepts, 2.5)


# --------------------------------------------------------------------------------------------
# Per-gene solver
# --------------------------------------------------------------------------------------------


def gene_batch(
    kind: str, n: int, p: int, n_genes: int, dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    pairs = [make_problem(kind, n, p, seed=100 + g, dtype=dtype) for g in range(n_genes)]
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


@pytest.mark.parametrize(("kind", "n", "p"), PROBLEMS)
def test_per_gene_shared_alphas_match_sklearn(kind: str, n: int, p: int) -> None:
    x, y = gene_batch(kind, n, p, n_genes=3, dtype=np.float32)
    amax = alpha_max_per_gene(x, y)
    for g in range(3):
        assert amax[g] == pytest.approx(sk_alpha_max(x[g], y[g]), rel=1e-10)
    alphas = amax.min() * RATIOS
    coefs, intercepts = lasso_path_per_gene(x, y, alphas, tol=1e-12, max_iter=100_000)
    assert coefs.shape == (3, alphas.size, p)
    assert coefs.dtype == np.float32
    assert intercepts.shape == (3, alphas.size)
    assert intercepts.dtype == np.float64
    for g in range(3):
        for k, alpha in enumerate(alphas):
            w, b = sklearn_fit(x[g], y[g], alpha)
            np.testing.assert_allclose(coefs[g, k], w, atol=ATOL, rtol=0)
            assert intercepts[g, k] == pytest.approx(b, abs=ATOL)
            ours = objective(x[g], y[g], coefs[g, k].astype(np.float64), intercepts[g, k], alpha)
            assert ours == pytest.approx(objective(x[g], y[g], w, b, alpha), rel=1e-6)


@pytest.mark.parametrize(
    ("n_anderson", "gram_cap"),
    [(5, None), (0, None), (5, 0), (0, 0), (5, 8)],
    ids=["gram", "gram-no-anderson", "residual", "residual-no-anderson", "switching"],
)
def test_per_gene_own_alphas_match_sklearn(n_anderson: int, gram_cap: int | None) -> None:
    """Every sweep mode gives scikit-learn's answer: on the working set's Gram matrix (default), on
    the residual (``gram_cap=0``) and switching between them as the set outgrows a small cap."""
    x, y = gene_batch("correlated", 30, 50, n_genes=4, dtype=np.float32)
    alphas = alpha_max_per_gene(x, y)[:, None] * RATIOS[None, :]
    coefs, intercepts = lasso_path_per_gene(
        x, y, alphas, tol=1e-12, max_iter=100_000, n_anderson=n_anderson, gram_cap=gram_cap
    )
    for g in range(4):
        for k in range(RATIOS.size):
            w, b = sklearn_fit(x[g], y[g], alphas[g, k])
            np.testing.assert_allclose(coefs[g, k], w, atol=ATOL, rtol=0)
            assert intercepts[g, k] == pytest.approx(b, abs=ATOL)


def test_per_gene_penalty_factor_matches_rescaled_columns() -> None:
    x, y = gene_batch("sparse", 40, 30, n_genes=2, dtype=np.float64)
    rng = np.random.default_rng(12)
    shared = rng.uniform(0.5, 3.0, size=30)
    per_gene = rng.uniform(0.5, 3.0, size=(2, 30))
    for pf in (shared, per_gene):
        pf2 = np.broadcast_to(pf, (2, 30))
        amax = alpha_max_per_gene(x, y, penalty_factor=pf)
        alphas = amax[:, None] * RATIOS[None, :]
        coefs, intercepts = lasso_path_per_gene(x, y, alphas, tol=1e-12, penalty_factor=pf)
        for g in range(2):
            assert amax[g] == pytest.approx(sk_alpha_max(x[g] / pf2[g], y[g]), rel=1e-10)
            for k in range(RATIOS.size):
                v, b = sklearn_fit(x[g] / pf2[g], y[g], alphas[g, k])
                np.testing.assert_allclose(coefs[g, k], v / pf2[g], atol=ATOL, rtol=0)
                assert intercepts[g, k] == pytest.approx(b, abs=ATOL)


def test_per_gene_equals_gram_on_each_gene() -> None:
    x, y = gene_batch("constant", 50, 40, n_genes=2, dtype=np.float32)
    alphas = np.array([0.2, 0.05, 0.01])
    coefs, intercepts = lasso_path_per_gene(x, y, alphas, tol=1e-12, max_iter=100_000)
    for g in range(2):
        stats = GramStats.empty(40)
        stats.update(x[g], y[g])
        c, b = lasso_path_gram(stats, alphas, tol=1e-12)
        np.testing.assert_allclose(coefs[g], c, atol=ATOL, rtol=0)
        np.testing.assert_allclose(intercepts[g], b, atol=ATOL)


def test_per_gene_alphas_in_any_order_and_constant_gene() -> None:
    x, y = gene_batch("sparse", 30, 20, n_genes=2, dtype=np.float32)
    y[1] = 4.0  # constant target: all-zero coefficients, intercept = the constant
    alphas = np.array([0.01, 0.5, 0.1])
    coefs, intercepts = lasso_path_per_gene(x, y, alphas, tol=1e-12)
    order = np.argsort(-alphas)
    sorted_coefs, _ = lasso_path_per_gene(x, y, alphas[order], tol=1e-12)
    np.testing.assert_allclose(coefs[:, order], sorted_coefs, atol=1e-6)
    assert np.all(coefs[1] == 0)
    np.testing.assert_allclose(intercepts[1], 4.0)


def test_per_gene_rejects_non_finite_and_bad_shapes() -> None:
    x, y = gene_batch("random", 20, 8, n_genes=3, dtype=np.float32)
    bad = x.copy()
    bad[1, 4, 2] = np.nan
    with pytest.raises(ValueError, match=r"gene indices 1"):
        lasso_path_per_gene(bad, y, np.array([0.1]))
    bad_y = y.copy()
    bad_y[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"gene indices 2"):
        lasso_path_per_gene(x, bad_y, np.array([0.1]))
    with pytest.raises(ValueError, match="shape"):
        lasso_path_per_gene(x, y[:, :5], np.array([0.1]))
    with pytest.raises(ValueError, match="per-gene alphas"):
        lasso_path_per_gene(x, y, np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        lasso_path_per_gene(x, y, np.array([-0.1]))
    with pytest.raises(ValueError, match="penalty_factor"):
        lasso_path_per_gene(x, y, np.array([0.1]), penalty_factor=np.ones(7))


def test_convergence_warning_at_max_iter() -> None:
    x, y = gene_batch("correlated", 30, 60, n_genes=2, dtype=np.float32)
    with pytest.warns(ConvergenceWarning, match="2 of 2 genes"):
        lasso_path_per_gene(x, y, np.array([1e-4]), tol=1e-14, max_iter=2)
    stats = stats_in_pieces(x[0], y[0])
    with pytest.warns(ConvergenceWarning, match="1 of 1 alphas"):
        lasso_path_gram(stats, np.array([1e-4]), tol=1e-14, max_iter=1)


# --------------------------------------------------------------------------------------------
# Alpha grid and sufficient statistics
# --------------------------------------------------------------------------------------------


def test_alpha_grid_is_sklearns() -> None:
    x, y = make_problem("sparse", 40, 12, seed=13)
    xc, yc = x - x.mean(axis=0), y - y.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # n_alphas is deprecated in scikit-learn 1.9
        sk_alphas, _, _ = lasso_path(xc, yc, n_alphas=7, eps=1e-2)
    np.testing.assert_allclose(alpha_grid(sk_alpha_max(x, y), 7, 1e-2), sk_alphas, rtol=1e-12)
    grid = alpha_grid(2.0)
    assert grid.shape == (20,)
    assert np.all(np.diff(grid) < 0)
    assert grid[-1] == pytest.approx(2e-3)
    assert np.all(alpha_grid(0.0, 4) == np.finfo(np.float64).resolution)
    with pytest.raises(ValueError):
        alpha_grid(1.0, 0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    p=st.integers(1, 6),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    n_shards=st.integers(1, 3),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_gram_stats_batches_and_shards_equal_one_shot(
    n: int, p: int, cuts: list[int], n_shards: int, weighted: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    y = rng.normal(size=n)
    w = rng.uniform(0.0, 2.0, size=n) if weighted else None
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    shards = [GramStats.empty(p) for _ in range(n_shards)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        shards[i % n_shards].update(x[a:b], y[a:b], None if w is None else w[a:b])
    merged = shards[0]
    for s in shards[1:]:
        merged = merged.merge(s)
    x64 = x.astype(np.float64)
    ww = np.ones(n) if w is None else w
    assert merged.n == n
    assert merged.sum_w == pytest.approx(ww.sum(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(merged.sum_x, ww @ x64, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(merged.xtx, (x64 * ww[:, None]).T @ x64, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(merged.xty, (x64 * ww[:, None]).T @ y, rtol=1e-10, atol=1e-10)
    assert merged.sum_y == pytest.approx(float(ww @ y), rel=1e-10, abs=1e-10)
    assert merged.yty == pytest.approx(float(ww @ (y * y)), rel=1e-10, abs=1e-10)
    back = GramStats.from_arrays(merged.to_arrays())
    for name in ("n", "sum_y", "yty", "sum_w"):
        assert getattr(back, name) == getattr(merged, name)
    for name in ("sum_x", "xtx", "xty"):
        np.testing.assert_array_equal(getattr(back, name), getattr(merged, name))


def test_gram_stats_subtract_and_validation() -> None:
    x, y = make_problem("random", 30, 4, seed=14)
    a, b = GramStats.empty(4), GramStats.empty(4)
    a.update(x[:10], y[:10])
    b.update(x[10:], y[10:])
    back = a.merge(b).subtract(b)
    assert back.n == 10
    np.testing.assert_allclose(back.xtx, a.xtx, atol=1e-10)
    with pytest.raises(ValueError, match="features"):
        a.merge(GramStats.empty(5))
    with pytest.raises(ValueError, match="NaN"):
        a.update(np.full((2, 4), np.nan), np.zeros(2))
    with pytest.raises(ValueError, match="non-negative"):
        a.update(x[:2], y[:2], np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="no rows"):
        lasso_path_gram(GramStats.empty(4), np.array([0.1]))
    with pytest.raises(ValueError, match="missing"):
        GramStats.from_arrays({"n": np.asarray(1)})
