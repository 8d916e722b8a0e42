"""LASSO solvers with array interfaces: one pooled model from streamed sufficient statistics, and
one model per gene for thousands of genes at once.

Both minimise scikit-learn's ``Lasso`` objective, with an intercept fitted by centring::

    (1 / (2 n)) ||y - X w - b||^2 + alpha * sum_j pf_j |w_j|

so ``alpha`` means the same as in scikit-learn (``pf_j = 1`` by default; other penalty factors give
a weighted, e.g. distance-aware, penalty). With sample weights ``s_i`` (pooled model only) the data
term is ``(1 / (2 sum_i s_i)) sum_i s_i (y_i - x_i w - b)^2``, which is scikit-learn's convention
too (it rescales the weights to sum to ``n``).

Stopping rule: coordinate descent stops when the duality gap falls to
``tol * ||y - mean(y)||^2 / n``, the criterion scikit-learn uses, so ``tol`` means the same too
(scikit-learn checks it only after the largest coefficient change falls below ``tol`` times the
largest coefficient; these solvers check it directly). Problems that reach ``max_iter`` sweeps
raise a :class:`ConvergenceWarning` and keep their last iterate.

No file I/O and no knowledge of the dataset here: the model classes build on these functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from chromexpr.models import _lasso_kernels as _k

__all__ = [
    "ConvergenceWarning",
    "GramStats",
    "alpha_grid",
    "alpha_max_gram",
    "alpha_max_per_gene",
    "lasso_path_gram",
    "lasso_path_per_gene",
]

#: Per-gene solver: a column whose centred mean square is at most this fraction of its squared mean
#: is constant (centring in floating point leaves only rounding noise in it); its coefficient is 0.
CONSTANT_RTOL_CENTRED = 1e-20
#: Pooled solver: the variances come from raw sums (``E[x^2] - E[x]^2``), whose rounding error is
#: about 1e-16 x (rows) relative to ``E[x^2]``; a feature whose variance is below this fraction of
#: ``E[x^2]`` is treated as constant.
CONSTANT_RTOL_GRAM = 1e-10
#: Per-gene solver: working sets of up to ``max(GRAM_CAP_PER_SAMPLE * n_samples, GRAM_CAP_MIN)``
#: features are swept on their Gram matrix (so at most 16 n^2 floats per thread for it, within the
#: O(n p) budget when n <= p); larger ones on the residual.
GRAM_CAP_PER_SAMPLE = 4
GRAM_CAP_MIN = 256
#: Rows converted to float64 at a time by :meth:`GramStats.update` (bounds its temporary memory).
UPDATE_CHUNK_ROWS = 4096


class ConvergenceWarning(UserWarning):
    """Coordinate descent reached ``max_iter`` before the duality gap met ``tol``."""


# ------------------------------------------------------------------------------------------------
# Sufficient statistics
# ------------------------------------------------------------------------------------------------


@dataclass
class GramStats:
    """Streaming sufficient statistics of a pooled linear model, float64.

    All sums are weighted by the rows' sample weights (1 when none are given).

    Attributes
    ----------
    n
        Rows seen.
    sum_x
        (p,) ``sum_i s_i x_i``.
    sum_y
        ``sum_i s_i y_i``.
    xtx
        (p, p) ``sum_i s_i x_i x_i'`` (uncentred).
    xty
        (p,) ``sum_i s_i x_i y_i``.
    yty
        ``sum_i s_i y_i^2``.
    sum_w
        ``sum_i s_i`` (equals ``n`` without weights); the ``n`` of the objective.

    Notes
    -----
    The centred moments are formed at solve time as ``xtx / W - mean_x mean_x'``. In float64 this
    loses about ``log10(mean^2 / variance)`` digits per feature, harmless for features whose mean
    is not orders of magnitude above their standard deviation (centre such data before
    accumulating).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    >>> a, b = GramStats.empty(3), GramStats.empty(3)
    >>> a.update(x[:20], y[:20]); b.update(x[20:], y[20:])
    >>> s = a.merge(b)
    >>> s.n, bool(np.allclose(s.xtx, x.T @ x))
    (50, True)
    """

    n: int
    sum_x: np.ndarray
    sum_y: float
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    sum_w: float

    @property
    def p(self) -> int:
        """Number of features."""
        return int(self.sum_x.shape[0])

    @classmethod
    def empty(cls, p: int) -> GramStats:
        """Statistics of zero rows with ``p`` features."""
        if p < 1:
            raise ValueError(f"need at least one feature, got p={p}")
        return cls(
            n=0,
            sum_x=np.zeros(p),
            sum_y=0.0,
            xtx=np.zeros((p, p)),
            xty=np.zeros(p),
            yty=0.0,
            sum_w=0.0,
        )

    def update(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> None:
        """Add a batch of rows, in place.

        Parameters
        ----------
        x
            (n_rows, p) float32 or float64 features. Converted to float64 ``UPDATE_CHUNK_ROWS``
            rows at a time, so the temporary memory is bounded whatever the batch size.
        y
            (n_rows,) targets.
        weight
            (n_rows,) non-negative sample weights, or None for 1.

        Raises
        ------
        ValueError
            On a shape mismatch, a non-finite value or a negative weight.
        """
        x = np.asarray(x)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.p:
            raise ValueError(f"x must have shape (n_rows, {self.p}), got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},), got {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite values")
        w: np.ndarray | None = None
        if weight is not None:
            w = np.asarray(weight, dtype=np.float64)
            if w.shape != y.shape:
                raise ValueError(f"weight must have shape {y.shape}, got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("weights must be finite and non-negative")
        for start in range(0, x.shape[0], UPDATE_CHUNK_ROWS):
            stop = min(start + UPDATE_CHUNK_ROWS, x.shape[0])
            xc = np.asarray(x[start:stop], dtype=np.float64)
            if not np.isfinite(xc).all():
                raise ValueError(f"x contains NaN or infinite values (rows {start}-{stop - 1})")
            yc = y[start:stop]
            if w is None:
                self.sum_x += xc.sum(axis=0)
                self.sum_y += float(yc.sum())
                self.xtx += xc.T @ xc  # numpy calls BLAS syrk for a.T @ a
                self.xty += xc.T @ yc
                self.yty += float(yc @ yc)
                self.sum_w += float(stop - start)
            else:
                wc = w[start:stop]
                root = np.sqrt(wc)
                xs = xc * root[:, None]
                ys = yc * root
                self.sum_x += wc @ xc
                self.sum_y += float(wc @ yc)
                self.xtx += xs.T @ xs
                self.xty += xs.T @ ys
                self.yty += float(ys @ ys)
                self.sum_w += float(wc.sum())
        self.n += int(x.shape[0])

    def merge(self, other: GramStats) -> GramStats:
        """The statistics of both shards' rows together (a new object; neither input changes)."""
        self._check_compatible(other)
        return GramStats(
            n=self.n + other.n,
            sum_x=self.sum_x + other.sum_x,
            sum_y=self.sum_y + other.sum_y,
            xtx=self.xtx + other.xtx,
            xty=self.xty + other.xty,
            yty=self.yty + other.yty,
            sum_w=self.sum_w + other.sum_w,
        )

    def __iadd__(self, other: GramStats) -> GramStats:
        """``a += b``: add ``other``'s rows to these statistics in place (:meth:`merge` without
        allocating; the sums are the same)."""
        self._check_compatible(other)
        self.n += other.n
        self.sum_x += other.sum_x
        self.sum_y += other.sum_y
        self.xtx += other.xtx
        self.xty += other.xty
        self.yty += other.yty
        self.sum_w += other.sum_w
        return self

    def subtract(self, other: GramStats) -> GramStats:
        """The statistics of this set's rows minus ``other``'s (a subset), e.g. all folds but one.

        Exact up to rounding; the result is only meaningful when ``other``'s rows are among this
        set's.
        """
        self._check_compatible(other)
        if other.n > self.n:
            raise ValueError(f"cannot remove {other.n} rows from statistics of {self.n} rows")
        return GramStats(
            n=self.n - other.n,
            sum_x=self.sum_x - other.sum_x,
            sum_y=self.sum_y - other.sum_y,
            xtx=self.xtx - other.xtx,
            xty=self.xty - other.xty,
            yty=self.yty - other.yty,
            sum_w=self.sum_w - other.sum_w,
        )

    def _check_compatible(self, other: GramStats) -> None:
        if other.p != self.p:
            raise ValueError(f"cannot combine statistics of {self.p} and {other.p} features")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (scalars as 0-d arrays) to save, e.g. with ``np.savez``.

        See :meth:`from_arrays`.
        """
        return {
            "n": np.asarray(self.n, dtype=np.int64),
            "sum_x": self.sum_x.copy(),
            "sum_y": np.asarray(self.sum_y, dtype=np.float64),
            "xtx": self.xtx.copy(),
            "xty": self.xty.copy(),
            "yty": np.asarray(self.yty, dtype=np.float64),
            "sum_w": np.asarray(self.sum_w, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> GramStats:
        """Rebuild statistics saved by :meth:`to_arrays` (validating shapes)."""
        missing = {"n", "sum_x", "sum_y", "xtx", "xty", "yty", "sum_w"} - set(arrays)
        if missing:
            raise ValueError(f"missing arrays: {', '.join(sorted(missing))}")
        sum_x = np.array(arrays["sum_x"], dtype=np.float64)
        p = sum_x.shape[0] if sum_x.ndim == 1 else -1
        xtx = np.array(arrays["xtx"], dtype=np.float64)
        xty = np.array(arrays["xty"], dtype=np.float64)
        if p < 1 or xtx.shape != (p, p) or xty.shape != (p,):
            raise ValueError(
                f"inconsistent shapes: sum_x {sum_x.shape}, xtx {xtx.shape}, xty {xty.shape}"
            )
        return cls(
            n=int(arrays["n"]),
            sum_x=sum_x,
            sum_y=float(arrays["sum_y"]),
            xtx=xtx,
            xty=xty,
            yty=float(arrays["yty"]),
            sum_w=float(arrays["sum_w"]),
        )

    def centred(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float]:
        """Centred, normalised moments ``(gram, cov, s_yy, mean_x, mean_y)``.

        ``gram = X_c' S X_c / W`` (p, p), ``cov = X_c' S y_c / W`` (p,), ``s_yy = y_c' S y_c / W``,
        with ``S`` the sample weights and ``W`` their sum; ``mean_x`` (p,) and ``mean_y`` are
        weighted means.
        """
        if self.sum_w <= 0.0:
            raise ValueError("no rows (or zero total weight) in the statistics")
        total = self.sum_w
        mean_x = self.sum_x / total
        mean_y = self.sum_y / total
        gram = (self.xtx - np.outer(self.sum_x, mean_x)) / total
        gram = 0.5 * (gram + gram.T)
        cov = (self.xty - self.sum_x * mean_y) / total
        s_yy = max((self.yty - self.sum_y * mean_y) / total, 0.0)
        return gram, cov, float(s_yy), mean_x, float(mean_y)


# ------------------------------------------------------------------------------------------------
# Validation helpers
# ------------------------------------------------------------------------------------------------


def _check_alphas(alphas: np.ndarray, ndim: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim not in ndim or a.size == 0:
        raise ValueError(
            f"alphas must be a non-empty array with ndim in {ndim}, got shape {a.shape}"
        )
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("alphas must be finite and non-negative")
    return a


def _check_penalty_factor(
    penalty_factor: np.ndarray | None, p: int, n_genes: int | None = None
) -> np.ndarray:
    """Penalty factors as a (1, p) or (n_genes, p) float64 array."""
    if penalty_factor is None:
        return np.ones((1, p))
    pf = np.asarray(penalty_factor, dtype=np.float64)
    shapes = [(p,)] if n_genes is None else [(p,), (n_genes, p)]
    if pf.shape not in shapes:
        raise ValueError(
            f"penalty_factor must have shape {' or '.join(map(str, shapes))}, got {pf.shape}"
        )
    if not np.isfinite(pf).all() or (pf < 0).any():
        raise ValueError("penalty factors must be finite and non-negative")
    return np.ascontiguousarray(pf.reshape(-1, p))


def _check_solver_options(tol: float, max_iter: int) -> None:
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")


def _warn_not_converged(count: int, total: int, what: str, tol: float, max_iter: int) -> None:
    warnings.warn(
        f"{count} of {total} {what} did not reach a duality gap of tol={tol:g} within "
        f"max_iter={max_iter} sweeps; their coefficients are the last iterate (raise max_iter, "
        "or use fewer/larger alphas)",
        ConvergenceWarning,
        stacklevel=3,
    )


# ------------------------------------------------------------------------------------------------
# Alpha grids
# ------------------------------------------------------------------------------------------------


def alpha_grid(alpha_max: float, n_alphas: int = 20, eps: float = 1e-3) -> np.ndarray:
    """``n_alphas`` log-spaced penalties, decreasing from ``alpha_max`` to ``eps * alpha_max``.

    scikit-learn's convention (``_alpha_grid``): when ``alpha_max`` is not above float64 resolution
    (a constant target) every entry is that resolution.

    Returns
    -------
    numpy.ndarray
        (n_alphas,) float64, decreasing.

    Examples
    --------
    >>> alpha_grid(1.0, n_alphas=3, eps=1e-2)
    array([1.  , 0.1 , 0.01])
    """
    if n_alphas < 1:
        raise ValueError(f"n_alphas must be at least 1, got {n_alphas}")
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if not np.isfinite(alpha_max) or alpha_max < 0:
        raise ValueError(f"alpha_max must be finite and non-negative, got {alpha_max}")
    resolution = float(np.finfo(np.float64).resolution)
    if alpha_max <= resolution:
        return np.full(n_alphas, resolution)
    return np.geomspace(alpha_max, alpha_max * eps, num=n_alphas)


def alpha_max_gram(stats: GramStats, *, penalty_factor: np.ndarray | None = None) -> float:
    """The smallest alpha at which every pooled coefficient is 0: ``max_j |cov_j| / pf_j``.

    ``cov = X_c' y_c / n``, scikit-learn's convention. Features with zero penalty factor are left
    out (with such features the null model is not the all-zero one, and this bounds the penalised
    features only).
    """
    gram, cov, _, _, _ = stats.centred()
    pf = _check_penalty_factor(penalty_factor, stats.p)[0]
    keep = _gram_usable(stats, gram) & (pf > 0)
    if not keep.any():
        return 0.0
    return float(np.max(np.abs(cov[keep]) / pf[keep]))


def alpha_max_per_gene(
    x: np.ndarray, y: np.ndarray, *, penalty_factor: np.ndarray | None = None
) -> np.ndarray:
    """Each gene's smallest all-zero alpha, ``max_j |x_c[:, j]' y_c| / (n pf_j)``.

    Parameters
    ----------
    x
        (n_genes, n_samples, p) float32 or float64.
    y
        (n_genes, n_samples).
    penalty_factor
        (p,) or (n_genes, p) non-negative factors; zero factors are left out.

    Returns
    -------
    numpy.ndarray
        (n_genes,) float64.
    """
    xa, ya = _check_per_gene_data(x, y)
    pf = _check_penalty_factor(penalty_factor, xa.shape[2], xa.shape[0])
    out = np.empty(xa.shape[0])
    _k.alpha_max_per_gene_kernel(xa, ya, pf, CONSTANT_RTOL_CENTRED, out)
    if not np.isfinite(out).all():
        raise ValueError("x or y contains NaN or infinite values")
    return out


# ------------------------------------------------------------------------------------------------
# Pooled model
# ------------------------------------------------------------------------------------------------


def _gram_usable(stats: GramStats, gram: np.ndarray) -> np.ndarray:
    """Features whose centred variance the raw sums resolve (see ``CONSTANT_RTOL_GRAM``)."""
    second_moment = np.diag(stats.xtx) / stats.sum_w
    diag = np.diag(gram)
    return (diag > 0) & (diag > CONSTANT_RTOL_GRAM * second_moment)


def lasso_path_gram(
    stats: GramStats,
    alphas: np.ndarray,
    *,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    penalty_factor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled LASSO path by coordinate descent on the centred Gram matrix.

    Alphas are solved in decreasing order, each warm-started from the previous solution, and
    returned in the order given. The cost per sweep is O(p) plus O(p) per coefficient that moves;
    nothing depends on the number of rows.

    Parameters
    ----------
    stats
        Sufficient statistics of the training rows.
    alphas
        (n_alphas,) non-negative penalties (scikit-learn's scale).
    tol
        Duality-gap tolerance relative to ``||y_c||^2 / n`` (scikit-learn's rule).
    max_iter
        Maximum sweeps over the features per alpha.
    penalty_factor
        (p,) non-negative per-feature factors ``pf_j`` of the penalty ``alpha * sum_j pf_j |w_j|``.

    Returns
    -------
    coefs : numpy.ndarray
        (n_alphas, p) float64.
    intercepts : numpy.ndarray
        (n_alphas,) float64, ``mean(y) - mean(x) @ w``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5))
    >>> y = 3 * x[:, 0] + 1.0 + 0.01 * rng.normal(size=200)
    >>> stats = GramStats.empty(5)
    >>> stats.update(x, y)
    >>> coefs, intercepts = lasso_path_gram(stats, np.array([alpha_max_gram(stats), 0.01]))
    >>> (np.round(coefs, 2) + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
    [[0.0, 0.0, 0.0, 0.0, 0.0], [2.99, 0.0, 0.0, 0.0, 0.0]]
    >>> np.round(intercepts, 2).tolist()
    [0.64, 1.0]
    """
    a = _check_alphas(alphas, (1,))
    _check_solver_options(tol, max_iter)
    pf = _check_penalty_factor(penalty_factor, stats.p)[0]
    gram, cov, s_yy, mean_x, mean_y = stats.centred()
    usable = _gram_usable(stats, gram)
    order = np.argsort(-a, kind="stable").astype(np.int64)
    coefs = np.zeros((a.shape[0], stats.p))
    n_iter = np.zeros(a.shape[0], dtype=np.int64)
    gaps = np.zeros(a.shape[0])
    _k.lasso_path_gram_kernel(
        np.ascontiguousarray(gram),
        cov,
        s_yy,
        usable,
        a,
        order,
        pf,
        float(tol),
        int(max_iter),
        coefs,
        n_iter,
        gaps,
    )
    failed = int((n_iter < 0).sum())
    if failed:
        _warn_not_converged(failed, a.shape[0], "alphas", tol, max_iter)
    intercepts = mean_y - coefs @ mean_x
    return coefs, intercepts


# ------------------------------------------------------------------------------------------------
# One model per gene
# ------------------------------------------------------------------------------------------------


def _check_per_gene_data(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x)
    if xa.ndim != 3 or min(xa.shape) < 1:
        raise ValueError(f"x must have shape (n_genes, n_samples, p), got {xa.shape}")
    if xa.dtype not in (np.float32, np.float64):
        xa = xa.astype(np.float64)
    xa = np.ascontiguousarray(xa)
    ya = np.ascontiguousarray(y, dtype=np.float64)
    if ya.shape != xa.shape[:2]:
        raise ValueError(f"y must have shape {xa.shape[:2]} (n_genes, n_samples), got {ya.shape}")
    return xa, ya


def lasso_path_per_gene(
    x: np.ndarray,
    y: np.ndarray,
    alphas: np.ndarray,
    *,
    tol: float = 1e-7,
    max_iter: int = 5_000,
    penalty_factor: np.ndarray | None = None,
    n_anderson: int = 5,
    gram_cap: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One LASSO path per gene (each gene's samples are its rows), genes solved in parallel.

    Each gene's ``x`` and ``y`` are centred; its alphas are solved in decreasing order with warm
    starts and returned in the order given. Coordinate descent works on the residual, with a working
    set: full passes over the features (which also evaluate the duality gap) alternate with sweeps
    over the features that are nonzero or violate the optimality conditions (on their Gram matrix
    while there are at most ``gram_cap``), accelerated by Anderson extrapolation.

    Parameters
    ----------
    x
        (n_genes, n_samples, p) float32 (or float64) designs. Read in place when C-contiguous.
    y
        (n_genes, n_samples) targets.
    alphas
        (n_alphas,) penalties shared by every gene, or (n_genes, n_alphas) per gene.
    tol
        Duality-gap tolerance relative to ``||y_c||^2 / n`` (scikit-learn's rule).
    max_iter
        Maximum sweeps per alpha (full passes and working-set sweeps both count).
    penalty_factor
        (p,) factors shared by every gene, or (n_genes, p) per gene; non-negative.
    n_anderson
        Anderson-extrapolate the working-set iterates every ``n_anderson`` sweeps (0 disables it).
        An extrapolation is kept only if it lowers the objective; it speeds up the ill-conditioned
        end of the path (small alphas, correlated bins, ``n_samples < p``) several-fold.
    gram_cap
        Working sets of at most this many features are swept on their Gram matrix (a coordinate
        then costs O(1) while it stays at zero and O(working set) when it moves), larger ones on the
        residual (O(n_samples) per coordinate); ``gram_cap ** 2`` floats per thread. Default
        ``max(4 n_samples, 256)``; 0 always sweeps on the residual. The results are the same.

    Returns
    -------
    coefs : numpy.ndarray
        (n_genes, n_alphas, p) float32 (computed in float64, stored in float32).
    intercepts : numpy.ndarray
        (n_genes, n_alphas) float64.

    Raises
    ------
    ValueError
        On bad shapes or options, or NaN/infinite values in some gene's ``x`` or ``y`` (the message
        lists the first such genes).

    Notes
    -----
    Extra memory per thread, besides the outputs: the working set's centred float64 columns (at most
    ``p x n_samples``; in practice a few hundred columns), its Gram matrix (at most ``gram_cap``
    squared, 16 ``n_samples ** 2`` by default), and a few vectors of length ``p``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 40, 6)).astype(np.float32)
    >>> y = 2.0 * x[:, :, 1] + 0.01 * rng.normal(size=(2, 40))
    >>> coefs, intercepts = lasso_path_per_gene(x, y, np.array([0.1, 0.01]))
    >>> coefs.shape, intercepts.shape
    ((2, 2, 6), (2, 2))
    >>> (np.round(coefs[0, 1], 1) + 0.0).tolist()
    [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    """
    xa, ya = _check_per_gene_data(x, y)
    n_genes, _, p = xa.shape
    a = _check_alphas(alphas, (1, 2))
    if a.ndim == 1:
        a = np.broadcast_to(a, (n_genes, a.shape[0]))
    elif a.shape[0] != n_genes:
        raise ValueError(f"per-gene alphas must have shape ({n_genes}, n_alphas), got {a.shape}")
    a = np.ascontiguousarray(a)
    _check_solver_options(tol, max_iter)
    if n_anderson < 0:
        raise ValueError(f"n_anderson must be >= 0, got {n_anderson}")
    if gram_cap is None:
        gram_cap = max(GRAM_CAP_PER_SAMPLE * xa.shape[1], GRAM_CAP_MIN)
    elif gram_cap < 0:
        raise ValueError(f"gram_cap must be >= 0, got {gram_cap}")
    pf = _check_penalty_factor(penalty_factor, p, n_genes)
    n_alphas = a.shape[1]
    order = np.ascontiguousarray(np.argsort(-a, axis=1, kind="stable").astype(np.int64))
    coefs = np.empty((n_genes, n_alphas, p), dtype=np.float32)
    intercepts = np.empty((n_genes, n_alphas))
    n_iter = np.empty((n_genes, n_alphas), dtype=np.int64)
    gaps = np.empty((n_genes, n_alphas))
    status = np.empty(n_genes, dtype=np.int64)
    _k.lasso_path_per_gene_kernel(
        xa,
        ya,
        a,
        order,
        pf,
        float(tol),
        int(max_iter),
        CONSTANT_RTOL_CENTRED,
        int(n_anderson),
        int(gram_cap),
        coefs,
        intercepts,
        n_iter,
        gaps,
        status,
    )
    bad = np.flatnonzero(status == _k.STATUS_NOT_FINITE)
    if bad.size:
        shown = ", ".join(map(str, bad[:10].tolist()))
        raise ValueError(f"{bad.size} genes have NaN or infinite x or y (gene indices {shown}...)")
    failed = int((status == _k.STATUS_NOT_CONVERGED).sum())
    if failed:
        _warn_not_converged(failed, n_genes, "genes", tol, max_iter)
    return coefs, intercepts
