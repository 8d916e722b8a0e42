"""numba kernels for LASSO coordinate descent. Arrays and scalars in, preallocated outputs written
in place.

Every kernel minimises scikit-learn's Lasso objective, per problem::

    P(w) = 1/(2n) ||y_c - X_c w||^2 + alpha * sum_j pf_j |w_j|

where ``X_c`` and ``y_c`` are centred (the intercept is recovered afterwards as
``mean(y) - mean(X) @ w``). The public wrappers in :mod:`chromexpr.models.lasso_solver` validate,
allocate and convert; nothing here reads globals (cached kernels freeze them), and ``prange`` only
runs over independent problems (genes), each writing its own output rows.

Stopping rule (both solvers): the duality gap of the current iterate, computed as in scikit-learn's
``_cd_fast`` with the dual point ``theta = s * r`` (residual ``r`` rescaled into the dual feasible
set), must fall to ``tol * ||y_c||^2 / n``. That is scikit-learn's own rule, so ``tol`` means the
same. Features with zero penalty factor do not constrain the dual scaling (their gradient is zero
at the optimum).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Floating-point freedoms granted to LLVM: reassociation (lets it vectorise the dot products) and
#: fused multiply-add. Not the "no NaN / no infinity" assumptions: the finiteness checks must stay
#: meaningful.
_FASTMATH = {"reassoc", "contract"}

#: Scalars that the kernels receive as numpy scalars (``np.int64(0)`` rather than a literal ``0``,
#: which numba would compile a separate specialisation for).
Int = int | np.integer
Bool = bool | np.bool_

STATUS_OK = 0
STATUS_NOT_CONVERGED = 1
STATUS_NOT_FINITE = 2


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _soft_threshold(z: float, threshold: float) -> float:
    if z > threshold:
        return z - threshold
    if z < -threshold:
        return z + threshold
    return 0.0


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _gap_from_moments(rr: float, ry: float, l1: float, dual_norm: float, alpha: float) -> float:
    """Duality gap from ``rr = r.r/n``, ``ry = r.y_c/n``, ``l1 = sum pf|w|``, ``max |g_j|/pf_j``."""
    if rr < 0.0:
        rr = 0.0
    scale = alpha / dual_norm if dual_norm > alpha else 1.0
    return 0.5 * rr * (1.0 + scale * scale) + alpha * l1 - scale * ry


# ------------------------------------------------------------------------------------------------
# Pooled model: coordinate descent on the centred Gram matrix
# ------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _gram_gap(
    cov: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    usable: np.ndarray,
    pf: np.ndarray,
    s_yy: float,
    alpha: float,
) -> float:
    p = w.shape[0]
    cw = 0.0
    wq = 0.0
    l1 = 0.0
    dual_norm = 0.0
    for j in range(p):
        wj = w[j]
        cw += cov[j] * wj
        wq += wj * q[j]
        l1 += pf[j] * abs(wj)
        if usable[j] and pf[j] > 0.0:
            g = abs(cov[j] - q[j]) / pf[j]
            if g > dual_norm:
                dual_norm = g
    rr = s_yy - 2.0 * cw + wq
    ry = s_yy - cw
    return _gap_from_moments(rr, ry, l1, dual_norm, alpha)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _gram_times_w(gram: np.ndarray, w: np.ndarray, q: np.ndarray) -> None:
    """``q = gram @ w`` over the nonzero entries of ``w`` (``gram`` symmetric, rows contiguous)."""
    p = w.shape[0]
    for m in range(p):
        q[m] = 0.0
    for j in range(p):
        wj = w[j]
        if wj != 0.0:
            for m in range(p):
                q[m] += wj * gram[j, m]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def lasso_path_gram_kernel(
    gram: np.ndarray,
    cov: np.ndarray,
    s_yy: float,
    usable: np.ndarray,
    alphas: np.ndarray,
    order: np.ndarray,
    pf: np.ndarray,
    tol: float,
    max_iter: int,
    coefs_out: np.ndarray,
    n_iter_out: np.ndarray,
    gap_out: np.ndarray,
) -> None:
    """Solve the LASSO path on a centred Gram matrix, warm-starting along ``order``.

    Parameters
    ----------
    gram
        (p, p) float64, ``X_c' X_c / n`` (symmetric).
    cov
        (p,) float64, ``X_c' y_c / n``.
    s_yy
        ``y_c' y_c / n``.
    usable
        (p,) bool, false for constant features (their coefficient stays 0).
    alphas
        (n_alphas,) float64, penalties.
    order
        (n_alphas,) int64, the order in which to solve them (decreasing alpha for warm starts).
    pf
        (p,) float64 penalty factors (>= 0).
    tol, max_iter
        Duality-gap tolerance (relative to ``s_yy``) and the maximum number of sweeps per alpha.
    coefs_out
        (n_alphas, p) float64, written.
    n_iter_out
        (n_alphas,) int64, sweeps used; ``-1`` where ``max_iter`` was reached without convergence.
    gap_out
        (n_alphas,) float64, the final duality gap.

    Notes
    -----
    The gradient part ``q = gram @ w`` is kept up to date, so a coordinate whose coefficient stays
    put costs O(1) and one that moves costs O(p); the gap costs O(p) and is checked after every
    sweep. Before accepting convergence ``q`` is recomputed from scratch, so rounding drift cannot
    fake it.
    """
    p = gram.shape[0]
    n_alphas = alphas.shape[0]
    w = np.zeros(p)
    q = np.zeros(p)
    tol_gap = tol * s_yy
    for kk in range(n_alphas):
        k = order[kk]
        alpha = alphas[k]
        n_it = 0
        gap = 0.0
        converged = s_yy <= 0.0
        if converged:
            for j in range(p):
                w[j] = 0.0
                q[j] = 0.0
        while not converged and n_it < max_iter:
            n_it += 1
            for j in range(p):
                if not usable[j]:
                    continue
                gjj = gram[j, j]
                wj = w[j]
                new = _soft_threshold(cov[j] - q[j] + gjj * wj, alpha * pf[j]) / gjj
                if new != wj:
                    d = new - wj
                    for m in range(p):
                        q[m] += d * gram[j, m]
                    w[j] = new
            gap = _gram_gap(cov, q, w, usable, pf, s_yy, alpha)
            if gap <= tol_gap:
                _gram_times_w(gram, w, q)
                gap = _gram_gap(cov, q, w, usable, pf, s_yy, alpha)
                converged = gap <= tol_gap
        for j in range(p):
            coefs_out[k, j] = w[j]
        n_iter_out[k] = n_it if converged else -1
        gap_out[k] = gap


# ------------------------------------------------------------------------------------------------
# Many small problems: one LASSO path per gene, working-set coordinate descent
# ------------------------------------------------------------------------------------------------
#
# Per gene, the features in play sit in a working set ``ws[:n_ws]`` whose centred columns are
# copied, contiguous, into ``xs[:n_ws]`` (n samples each). While the set is small enough
# (``n_ws <= cap``), the sweeps run on its Gram matrix ``q = xs xs' / n`` (cap x cap, grown a row
# at a time as features join) with the gradient ``gw = xs (y_c - X_c w) / n`` kept up to date: a
# coordinate that stays at zero costs O(1), one that moves O(n_ws). Otherwise they run on the
# residual ``r`` (O(n) per coordinate). Full passes over all p features (row-major over the gene's
# raw ``x``) recompute the residual and every gradient exactly, check the duality gap and grow the
# working set.


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _solve_small_system(c: np.ndarray, z: np.ndarray) -> bool:
    """Solve ``c z = 1`` in place of ``z`` by Gaussian elimination with partial pivoting (``c`` is
    overwritten). Returns False when a pivot is negligible (the extrapolation is then skipped)."""
    m = c.shape[0]
    scale = 0.0
    for a in range(m):
        z[a] = 1.0
        scale = max(scale, abs(c[a, a]))
    if scale <= 0.0:
        return False
    for col in range(m):
        piv = col
        for a in range(col + 1, m):
            if abs(c[a, col]) > abs(c[piv, col]):
                piv = a
        if abs(c[piv, col]) <= 1e-14 * scale:
            return False
        if piv != col:
            for b in range(m):
                c[col, b], c[piv, b] = c[piv, b], c[col, b]
            z[col], z[piv] = z[piv], z[col]
        for a in range(col + 1, m):
            f = c[a, col] / c[col, col]
            for b in range(col, m):
                c[a, b] -= f * c[col, b]
            z[a] -= f * z[col]
    for a in range(m - 1, -1, -1):
        acc = z[a]
        for b in range(a + 1, m):
            acc -= c[a, b] * z[b]
        z[a] = acc / c[a, a]
    return True


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _anderson_point(
    hist_w: np.ndarray, n_ws: Int, gram_k: np.ndarray, z: np.ndarray, w_acc: np.ndarray
) -> bool:
    """Anderson extrapolation of the last ``K + 1`` working-set iterates (rows of ``hist_w``) into
    ``w_acc[:n_ws]``: the combination ``sum_k c_k iterate_k`` with ``sum c = 1`` that minimises the
    norm of the combined successive differences (as in skglm and celer). False if degenerate."""
    n_k = hist_w.shape[0] - 1
    for a in range(n_k):
        for b in range(a, n_k):
            acc = 0.0
            for t in range(n_ws):
                acc += (hist_w[a + 1, t] - hist_w[a, t]) * (hist_w[b + 1, t] - hist_w[b, t])
            gram_k[a, b] = acc
            gram_k[b, a] = acc
    if not _solve_small_system(gram_k, z):
        return False
    total = 0.0
    for a in range(n_k):
        total += z[a]
    if total == 0.0 or not np.isfinite(total):
        return False
    for t in range(n_ws):
        acc = 0.0
        for a in range(n_k):
            acc += z[a] * hist_w[a + 1, t]
        w_acc[t] = acc / total
    return True


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _full_pass(
    x: np.ndarray,
    g: Int,
    xm: np.ndarray,
    yc: np.ndarray,
    xs: np.ndarray,
    ws: np.ndarray,
    n_ws: Int,
    usable: np.ndarray,
    pf: np.ndarray,
    alpha: float,
    w: np.ndarray,
    r: np.ndarray,
    grad: np.ndarray,
) -> float:
    """Recompute ``r = y_c - X_c w`` exactly from the working-set columns (no drift; every nonzero
    coefficient is in the working set) and every gradient ``grad = X_c' r / n`` in one row-major
    pass over gene ``g``'s raw ``x``; return the duality gap. Cost O(n p)."""
    n = x.shape[1]
    p = x.shape[2]
    inv_n = 1.0 / n
    for i in range(n):
        r[i] = yc[i]
    for t in range(n_ws):
        wj = w[ws[t]]
        if wj != 0.0:
            for i in range(n):
                r[i] -= wj * xs[t, i]
    rr = 0.0
    ry = 0.0
    r_sum = 0.0
    for i in range(n):
        rr += r[i] * r[i]
        ry += r[i] * yc[i]
        r_sum += r[i]
    for j in range(p):
        grad[j] = 0.0
    for i in range(n):
        ri = r[i]
        for j in range(p):
            grad[j] += x[g, i, j] * ri
    l1 = 0.0
    dual_norm = 0.0
    for j in range(p):
        if not usable[j]:
            grad[j] = 0.0
            continue
        gj = (grad[j] - xm[j] * r_sum) * inv_n  # x_c' r = x' r - mean(x) sum(r)
        grad[j] = gj
        l1 += pf[j] * abs(w[j])
        if pf[j] > 0.0:
            a = abs(gj) / pf[j]
            if a > dual_norm:
                dual_norm = a
    return _gap_from_moments(rr * inv_n, ry * inv_n, l1, dual_norm, alpha)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _grow_working_set(
    x: np.ndarray,
    g: Int,
    xm: np.ndarray,
    usable: np.ndarray,
    w: np.ndarray,
    grad: np.ndarray,
    pf: np.ndarray,
    alpha: float,
    ws: np.ndarray,
    in_ws: np.ndarray,
    xs: np.ndarray,
    n_ws: Int,
) -> Int:
    """Append to the working set every usable feature with a nonzero coefficient or a violated
    optimality condition ``|grad_j| > alpha pf_j``, copying its centred column into ``xs``; return
    the new size."""
    n = x.shape[1]
    for j in range(w.shape[0]):
        if usable[j] and not in_ws[j] and (w[j] != 0.0 or abs(grad[j]) > alpha * pf[j]):
            in_ws[j] = True
            ws[n_ws] = j
            for i in range(n):
                xs[n_ws, i] = x[g, i, j] - xm[j]
            n_ws += 1
    return n_ws


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _extend_gram(
    xs: np.ndarray, yc: np.ndarray, q: np.ndarray, cw: np.ndarray, q_rows: Int, n_ws: Int
) -> None:
    """Fill rows and columns ``q_rows..n_ws-1`` of ``q = xs xs' / n`` and of ``cw = xs y_c / n``."""
    n = xs.shape[1]
    inv_n = 1.0 / n
    for t in range(q_rows, n_ws):
        acc = 0.0
        for i in range(n):
            acc += xs[t, i] * yc[i]
        cw[t] = acc * inv_n
        for u in range(t + 1):
            acc = 0.0
            for i in range(n):
                acc += xs[t, i] * xs[u, i]
            q[t, u] = acc * inv_n
            q[u, t] = acc * inv_n


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _shed(
    gabs: np.ndarray,
    ws: np.ndarray,
    in_ws: np.ndarray,
    n_ws: Int,
    pf: np.ndarray,
    alpha: float,
    w: np.ndarray,
    xs: np.ndarray,
    keep: np.ndarray,
) -> Int:
    """Drop from the working set the features at zero with a strictly satisfied optimality condition
    (``gabs[t] = |g_j| < alpha pf_j``), compacting ``ws`` and ``xs``; ``keep[:kept]`` receives the
    old positions of those kept. Returns the new size. A dropped feature that is needed after all
    comes back at the next full pass."""
    n = xs.shape[1]
    kept = 0
    for t in range(n_ws):
        j = ws[t]
        if w[j] == 0.0 and gabs[t] < alpha * pf[j]:
            in_ws[j] = False
            continue
        keep[kept] = t
        if kept != t:
            ws[kept] = j
            for i in range(n):
                xs[kept, i] = xs[t, i]
        kept += 1
    return kept


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _sweeps_residual(
    xs: np.ndarray,
    yc: np.ndarray,
    nrm: np.ndarray,
    ws: np.ndarray,
    in_ws: np.ndarray,
    n_ws: Int,
    pf: np.ndarray,
    alpha: float,
    tol_gap: float,
    n_it: int,
    max_iter: int,
    n_anderson: int,
    w: np.ndarray,
    r: np.ndarray,
    hist_w: np.ndarray,
    gram_k: np.ndarray,
    z: np.ndarray,
    w_acc: np.ndarray,
    r_acc: np.ndarray,
    gabs: np.ndarray,
    keep: np.ndarray,
) -> tuple[int, Int]:
    """Working-set sweeps on the residual ``r`` (kept up to date) until the working-set duality gap
    meets ``tol_gap``.

    The gap is checked, after an Anderson extrapolation and with shedding, every
    ``n_anderson + 1`` sweeps (5 without acceleration). Returns (sweeps so far, working-set size).
    """
    n = xs.shape[1]
    inv_n = 1.0 / n
    check_every = n_anderson + 1 if n_anderson > 0 else 5
    n_hist = 0
    while n_it < max_iter:
        n_it += 1
        for t in range(n_ws):
            j = ws[t]
            wj = w[j]
            acc = 0.0
            for i in range(n):
                acc += xs[t, i] * r[i]
            new = _soft_threshold(acc * inv_n + nrm[j] * wj, alpha * pf[j]) / nrm[j]
            if new != wj:
                d = new - wj
                for i in range(n):
                    r[i] -= d * xs[t, i]
                w[j] = new
        if n_anderson > 0:
            for t in range(n_ws):
                hist_w[n_hist, t] = w[ws[t]]
        n_hist += 1
        if n_hist < check_every:
            continue
        n_hist = 0
        if n_anderson > 0 and _anderson_point(hist_w, n_ws, gram_k, z, w_acc):
            # residual of the extrapolated point computed exactly: combining the iterates'
            # residuals loses accuracy when the weights are large and of both signs
            for i in range(n):
                r_acc[i] = yc[i]
            l1_acc = 0.0
            l1 = 0.0
            for t in range(n_ws):
                l1_acc += pf[ws[t]] * abs(w_acc[t])
                l1 += pf[ws[t]] * abs(w[ws[t]])
                if w_acc[t] != 0.0:
                    for i in range(n):
                        r_acc[i] -= w_acc[t] * xs[t, i]
            rr_acc = 0.0
            rr = 0.0
            for i in range(n):
                rr_acc += r_acc[i] * r_acc[i]
                rr += r[i] * r[i]
            if 0.5 * rr_acc * inv_n + alpha * l1_acc < 0.5 * rr * inv_n + alpha * l1:
                for t in range(n_ws):
                    w[ws[t]] = w_acc[t]
                for i in range(n):
                    r[i] = r_acc[i]
        # working-set gap, then shed
        rr = 0.0
        ry = 0.0
        for i in range(n):
            rr += r[i] * r[i]
            ry += r[i] * yc[i]
        l1 = 0.0
        dual_norm = 0.0
        for t in range(n_ws):
            j = ws[t]
            acc = 0.0
            for i in range(n):
                acc += xs[t, i] * r[i]
            gabs[t] = abs(acc * inv_n)
            l1 += pf[j] * abs(w[j])
            if pf[j] > 0.0 and gabs[t] / pf[j] > dual_norm:
                dual_norm = gabs[t] / pf[j]
        gap = _gap_from_moments(rr * inv_n, ry * inv_n, l1, dual_norm, alpha)
        n_ws = _shed(gabs, ws, in_ws, n_ws, pf, alpha, w, xs, keep)
        if gap <= tol_gap:
            break
    return n_it, n_ws


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _sweeps_gram(
    xs: np.ndarray,
    q: np.ndarray,
    cw: np.ndarray,
    gw: np.ndarray,
    s_yy: float,
    ws: np.ndarray,
    in_ws: np.ndarray,
    n_ws: Int,
    pf: np.ndarray,
    alpha: float,
    tol_gap: float,
    n_it: int,
    max_iter: int,
    n_anderson: int,
    w: np.ndarray,
    hist_w: np.ndarray,
    gram_k: np.ndarray,
    z: np.ndarray,
    w_acc: np.ndarray,
    g_acc: np.ndarray,
    gabs: np.ndarray,
    keep: np.ndarray,
) -> tuple[int, Int]:
    """Working-set sweeps on the Gram matrix ``q`` with the gradient ``gw`` kept up to date, until
    the working-set duality gap meets ``tol_gap`` (checked, with an Anderson extrapolation and
    shedding, every ``n_anderson + 1`` sweeps, or 5 without acceleration). The objective's moments
    come from ``gw = cw - q w``: ``r.r / n = s_yy - w.cw - w.gw`` and ``r.y_c / n = s_yy - w.cw``.
    Returns (sweeps so far, working-set size); ``q``, ``cw`` and ``gw`` shrink with the set.
    """
    check_every = n_anderson + 1 if n_anderson > 0 else 5
    n_hist = 0
    while n_it < max_iter:
        n_it += 1
        for t in range(n_ws):
            j = ws[t]
            wj = w[j]
            qtt = q[t, t]
            new = _soft_threshold(gw[t] + qtt * wj, alpha * pf[j]) / qtt
            if new != wj:
                d = new - wj
                for u in range(n_ws):
                    gw[u] -= d * q[t, u]
                w[j] = new
        if n_anderson > 0:
            for t in range(n_ws):
                hist_w[n_hist, t] = w[ws[t]]
        n_hist += 1
        if n_hist < check_every:
            continue
        n_hist = 0
        if n_anderson > 0 and _anderson_point(hist_w, n_ws, gram_k, z, w_acc):
            wc = 0.0
            wg = 0.0
            wc_acc = 0.0
            wg_acc = 0.0
            l1 = 0.0
            l1_acc = 0.0
            for t in range(n_ws):
                acc = cw[t]
                for u in range(n_ws):
                    acc -= q[t, u] * w_acc[u]
                g_acc[t] = acc
                wt = w[ws[t]]
                wc += wt * cw[t]
                wg += wt * gw[t]
                wc_acc += w_acc[t] * cw[t]
                wg_acc += w_acc[t] * acc
                l1 += pf[ws[t]] * abs(wt)
                l1_acc += pf[ws[t]] * abs(w_acc[t])
            if (
                0.5 * (s_yy - wc_acc - wg_acc) + alpha * l1_acc
                < 0.5 * (s_yy - wc - wg) + alpha * l1
            ):
                for t in range(n_ws):
                    w[ws[t]] = w_acc[t]
                    gw[t] = g_acc[t]
        # working-set gap, then shed (compacting q, cw and gw too)
        wc = 0.0
        wg = 0.0
        l1 = 0.0
        dual_norm = 0.0
        for t in range(n_ws):
            j = ws[t]
            wc += w[j] * cw[t]
            wg += w[j] * gw[t]
            l1 += pf[j] * abs(w[j])
            gabs[t] = abs(gw[t])
            if pf[j] > 0.0 and gabs[t] / pf[j] > dual_norm:
                dual_norm = gabs[t] / pf[j]
        gap = _gap_from_moments(s_yy - wc - wg, s_yy - wc, l1, dual_norm, alpha)
        kept = _shed(gabs, ws, in_ws, n_ws, pf, alpha, w, xs, keep)
        if kept < n_ws:
            for a in range(kept):  # in place: keep[a] >= a, so no source is overwritten early
                ka = keep[a]
                cw[a] = cw[ka]
                gw[a] = gw[ka]
                for b in range(kept):
                    q[a, b] = q[ka, keep[b]]
            n_ws = kept
        if gap <= tol_gap:
            break
    return n_it, n_ws


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _solve_one_alpha(
    x: np.ndarray,
    g: Int,
    xm: np.ndarray,
    yc: np.ndarray,
    nrm: np.ndarray,
    s_yy: float,
    usable: np.ndarray,
    pf: np.ndarray,
    alpha: float,
    grad_valid: Bool,
    tol_gap: float,
    max_iter: int,
    n_anderson: int,
    w: np.ndarray,
    r: np.ndarray,
    grad: np.ndarray,
    ws: np.ndarray,
    in_ws: np.ndarray,
    xs: np.ndarray,
    n_ws: Int,
    q: np.ndarray,
    cw: np.ndarray,
    gw: np.ndarray,
    q_rows: Int,
    hist_w: np.ndarray,
    gram_k: np.ndarray,
    z: np.ndarray,
    w_acc: np.ndarray,
    r_acc: np.ndarray,
    gabs: np.ndarray,
    keep: np.ndarray,
) -> tuple[int, float, bool, Int, Int]:
    """Coordinate descent on gene ``g`` for one alpha from the warm start ``w``.

    Returns (sweeps, gap, converged, working-set size, valid Gram rows). Strategy (glmnet's working
    sets, skglm's inner gap checks and Anderson acceleration):

    1. The working set holds every nonzero coefficient and gains the features that violate the
       optimality conditions at ``alpha`` under the gradients ``grad``: those at the previous
       alpha's solution when ``grad_valid`` (``r`` is then that solution's exact residual),
       otherwise those of a full pass made first.
    2. Sweeps over the working set, on its Gram matrix while it has at most ``q.shape[0]``
       features, otherwise on the residual, until its duality gap meets ``tol_gap``.
    3. Full pass: exact residual, every gradient, the true duality gap; done if it meets ``tol_gap``
       (``grad`` and ``r`` then belong to the solution, for the next alpha), otherwise the
       violators join the working set and back to 2.

    Every sweep and every full pass counts towards ``max_iter``.
    """
    cap = q.shape[0]
    n_it = 0
    gap = np.inf
    if not grad_valid:
        n_it += 1
        gap = _full_pass(x, g, xm, yc, xs, ws, n_ws, usable, pf, alpha, w, r, grad)
        if gap <= tol_gap:
            return n_it, gap, True, n_ws, q_rows
    while n_it < max_iter:
        n_ws = _grow_working_set(x, g, xm, usable, w, grad, pf, alpha, ws, in_ws, xs, n_ws)
        if n_ws <= cap:
            _extend_gram(xs, yc, q, cw, q_rows, n_ws)
            q_rows = n_ws
            for t in range(n_ws):
                gw[t] = grad[ws[t]]
            n_it, n_ws = _sweeps_gram(
                xs,
                q,
                cw,
                gw,
                s_yy,
                ws,
                in_ws,
                n_ws,
                pf,
                alpha,
                tol_gap,
                n_it,
                max_iter,
                n_anderson,
                w,
                hist_w,
                gram_k,
                z,
                w_acc,
                r_acc,
                gabs,
                keep,
            )
            q_rows = n_ws
        else:
            q_rows = np.int64(0)
            n_it, n_ws = _sweeps_residual(
                xs,
                yc,
                nrm,
                ws,
                in_ws,
                n_ws,
                pf,
                alpha,
                tol_gap,
                n_it,
                max_iter,
                n_anderson,
                w,
                r,
                hist_w,
                gram_k,
                z,
                w_acc,
                r_acc,
                gabs,
                keep,
            )
        if n_it >= max_iter:
            break
        n_it += 1
        gap = _full_pass(x, g, xm, yc, xs, ws, n_ws, usable, pf, alpha, w, r, grad)
        if gap <= tol_gap:
            return n_it, gap, True, n_ws, q_rows
    return n_it, gap, False, n_ws, q_rows


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _solve_gene(
    x: np.ndarray,
    y: np.ndarray,
    g: Int,
    alphas: np.ndarray,
    order: np.ndarray,
    pf: np.ndarray,
    pf_row: Int,
    tol: float,
    max_iter: int,
    constant_rtol: float,
    n_anderson: int,
    cap: int,
    coefs_out: np.ndarray,
    intercepts_out: np.ndarray,
    n_iter_out: np.ndarray,
    gap_out: np.ndarray,
    status_out: np.ndarray,
) -> None:
    """Gene ``g``'s whole path (see :func:`lasso_path_per_gene_kernel`); writes its rows only.

    Kept out of the ``prange`` body so that the parallel loop stays small (a large parfor body
    roughly doubles the compile time).
    """
    n = x.shape[1]
    p = x.shape[2]
    n_alphas = alphas.shape[1]
    pfg = pf[pf_row]
    # Means (float64), a finiteness check, centred mean squares.
    xm = np.zeros(p)
    for i in range(n):
        for j in range(p):
            xm[j] += x[g, i, j]
    ym = 0.0
    for i in range(n):
        ym += y[g, i]
    finite = np.isfinite(ym)
    for j in range(p):
        xm[j] /= n
        if not np.isfinite(xm[j]):
            finite = False
    ym /= n
    if not finite:
        status_out[g] = STATUS_NOT_FINITE
        for k in range(n_alphas):
            intercepts_out[g, k] = np.nan
            n_iter_out[g, k] = -1
            gap_out[g, k] = np.nan
            for j in range(p):
                coefs_out[g, k, j] = np.nan
        return
    nrm = np.zeros(p)
    for i in range(n):
        for j in range(p):
            d = x[g, i, j] - xm[j]
            nrm[j] += d * d
    usable = np.empty(p, dtype=np.bool_)
    for j in range(p):
        nrm[j] /= n
        usable[j] = nrm[j] > 0.0 and nrm[j] > constant_rtol * xm[j] * xm[j]
    yc = np.empty(n)
    r = np.empty(n)
    s_yy = 0.0
    for i in range(n):
        yc[i] = y[g, i] - ym
        r[i] = yc[i]
        s_yy += yc[i] * yc[i]
    s_yy /= n
    w = np.zeros(p)
    grad = np.empty(p)
    # typed constructors, not literals: a literal argument would specialise (and compile) the
    # solver once more for the first call
    grad_valid: Bool = np.bool_(False)
    ws = np.empty(p, dtype=np.int64)
    in_ws = np.zeros(p, dtype=np.bool_)
    xs = np.empty((p, n))
    n_ws: Int = np.int64(0)
    q = np.empty((cap, cap))
    cw = np.empty(cap)
    gw = np.empty(cap)
    q_rows: Int = np.int64(0)
    hist_w = np.empty((n_anderson + 1, p))
    gram_k = np.empty((n_anderson, n_anderson))
    z = np.empty(n_anderson)
    w_acc = np.empty(p)
    r_acc = np.empty(max(n, cap))
    gabs = np.empty(p)
    keep = np.empty(p, dtype=np.int64)
    tol_gap = tol * s_yy
    status = STATUS_OK
    for kk in range(n_alphas):
        k = order[g, kk]
        if s_yy > 0.0:
            n_it, gap, ok, n_ws, q_rows = _solve_one_alpha(
                x,
                g,
                xm,
                yc,
                nrm,
                s_yy,
                usable,
                pfg,
                alphas[g, k],
                grad_valid,
                tol_gap,
                max_iter,
                n_anderson,
                w,
                r,
                grad,
                ws,
                in_ws,
                xs,
                n_ws,
                q,
                cw,
                gw,
                q_rows,
                hist_w,
                gram_k,
                z,
                w_acc,
                r_acc,
                gabs,
                keep,
            )
            grad_valid = ok
        else:
            n_it, gap, ok = 0, 0.0, True
        if not ok:
            status = STATUS_NOT_CONVERGED
        n_iter_out[g, k] = n_it
        gap_out[g, k] = gap
        b = ym
        for j in range(p):
            coefs_out[g, k, j] = w[j]
            b -= xm[j] * w[j]
        intercepts_out[g, k] = b
    status_out[g] = status


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def lasso_path_per_gene_kernel(
    x: np.ndarray,
    y: np.ndarray,
    alphas: np.ndarray,
    order: np.ndarray,
    pf: np.ndarray,
    tol: float,
    max_iter: int,
    constant_rtol: float,
    n_anderson: int,
    gram_cap: int,
    coefs_out: np.ndarray,
    intercepts_out: np.ndarray,
    n_iter_out: np.ndarray,
    gap_out: np.ndarray,
    status_out: np.ndarray,
) -> None:
    """One LASSO path per gene, genes in parallel.

    Parameters
    ----------
    x
        (n_genes, n_samples, p) float32 or float64 designs, read in place (row-major passes only).
    y
        (n_genes, n_samples) float64 targets.
    alphas
        (n_genes, n_alphas) float64 penalties.
    order
        (n_genes, n_alphas) int64: gene ``g`` solves ``alphas[g, order[g, 0]]`` first, and so on,
        each from the previous solution (decreasing alpha for warm starts).
    pf
        (1, p) penalty factors shared by all genes, or (n_genes, p) per gene, float64, >= 0.
    tol, max_iter
        Duality-gap tolerance (relative to ``||y_c||^2 / n``) and the maximum number of sweeps per
        alpha.
    constant_rtol
        A column whose centred mean square is at most ``constant_rtol`` x its squared mean is
        constant.
    n_anderson
        Anderson extrapolation every ``n_anderson + 1`` working-set sweeps (0: never).
    gram_cap
        Largest working set swept on its Gram matrix (``gram_cap ** 2`` floats per thread).
    coefs_out
        (n_genes, n_alphas, p) float32, written.
    intercepts_out
        (n_genes, n_alphas) float64, written.
    n_iter_out
        (n_genes, n_alphas) int64, sweeps (full passes plus working-set sweeps) used.
    gap_out
        (n_genes, n_alphas) float64, final duality gaps.
    status_out
        (n_genes,) int64: ``STATUS_OK``, ``STATUS_NOT_CONVERGED`` (some alpha hit ``max_iter``) or
        ``STATUS_NOT_FINITE`` (NaN or infinity in the gene's ``x`` or ``y``; outputs set to NaN).

    Notes
    -----
    Extra memory per gene (hence per thread): the working set's centred float64 columns (at most
    p x n, in practice a few hundred columns), its Gram matrix (at most ``gram_cap`` squared), the
    Anderson history (``n_anderson + 1`` iterates of length p) and a few vectors of length p or n.
    """
    n_genes = x.shape[0]
    shared_pf = pf.shape[0] == 1
    cap = min(gram_cap, x.shape[2])
    for g in prange(n_genes):
        # np.int64: the outlined parallel loop types its index as unsigned; passed as is, the whole
        # solver would be compiled a second time for that signature
        gene = np.int64(g)
        _solve_gene(
            x,
            y,
            gene,
            alphas,
            order,
            pf,
            np.int64(0) if shared_pf else gene,
            tol,
            max_iter,
            constant_rtol,
            n_anderson,
            cap,
            coefs_out,
            intercepts_out,
            n_iter_out,
            gap_out,
            status_out,
        )


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def alpha_max_per_gene_kernel(
    x: np.ndarray, y: np.ndarray, pf: np.ndarray, constant_rtol: float, out: np.ndarray
) -> None:
    """``out[g] = max_j |x_c[g, :, j] . y_c[g]| / (n pf_j)``, non-constant ``j`` with ``pf_j > 0``.

    ``x`` (n_genes, n, p), ``y`` (n_genes, n) float64, ``pf`` (1, p) or (n_genes, p), ``out``
    (n_genes,). Since ``y_c`` sums to zero, ``x_c . y_c = x . y_c``; constant columns are detected
    as in the solver.
    """
    n_genes = x.shape[0]
    n = x.shape[1]
    p = x.shape[2]
    shared_pf = pf.shape[0] == 1
    for g in prange(n_genes):
        pfg = pf[0] if shared_pf else pf[g]
        ym = 0.0
        for i in range(n):
            ym += y[g, i]
        ym /= n
        xm = np.zeros(p)
        dot = np.zeros(p)
        for i in range(n):
            yci = y[g, i] - ym
            for j in range(p):
                xm[j] += x[g, i, j]
                dot[j] += x[g, i, j] * yci
        for j in range(p):
            xm[j] /= n
        sq = np.zeros(p)
        for i in range(n):
            for j in range(p):
                d = x[g, i, j] - xm[j]
                sq[j] += d * d
        best = 0.0
        for j in range(p):
            if pfg[j] > 0.0 and sq[j] > 0.0 and sq[j] / n > constant_rtol * xm[j] * xm[j]:
                a = abs(dot[j]) / (n * pfg[j])
                if a > best:
                    best = a
        out[g] = best
