"""Numba kernel of the row loader: one decoded chunk's rows, transformed, centred and written to
their shuffled places in a batch buffer, in one pass over each row.

Pure numerics: arrays in, arrays out, no I/O. Compiled with ``nogil=True`` so that the loader's
threads run it in parallel, one chunk each, while Blosc (which also releases the GIL) decodes the
next chunks.

The logarithm is computed without branches, so that LLVM vectorises it (8 float32 lanes with AVX2):
``log1p(z)`` as ``log(u)`` of ``u = 1 + z`` (exponent and mantissa split by integer arithmetic on
the bits, the mantissa's logarithm by the atanh series to the 9th power) plus the correction
``(z - (u - 1)) / u`` for the rounding of ``1 + z``. Against numpy's float32 ``log1p`` the result
is within 3 units in the last place over ``z`` in [1e-40, 1e30] (tests/test_loader.py); zero stays
exactly zero. Rows where ``1 + z`` leaves (0, largest float] (a value at or below -1, an overflow,
NaN) are recomputed with ``math.log1p``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["add_rows", "fill_rows"]

_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
#: Bits of float32 sqrt(1/2): mantissas are brought into [sqrt(1/2), sqrt(2)).
_SQRT_HALF_BITS = 0x3F3504F3
#: Bits of the largest finite float32.
_FLOAT_MAX_BITS = np.uint32(0x7F7FFFFF)
_C3 = np.float32(2.0 / 3.0)
_C5 = np.float32(2.0 / 5.0)
_C7 = np.float32(2.0 / 7.0)
_C9 = np.float32(2.0 / 9.0)


@njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def fill_rows(
    raw: np.ndarray,
    src: np.ndarray,
    dest: np.ndarray,
    factor: np.float32,
    log1p: bool,
    centre: np.ndarray,
    centre_rows: np.ndarray,
    out: np.ndarray,
    scratch: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out[dest[k], :] = t(raw[src[k], :]) - centre[centre_rows[k], :]``.

    ``t(v) = log1p(v * factor)`` (``log1p``) or ``v * factor``, in float32, as
    :meth:`chromexpr.models.transforms.FittedOpenness.apply` computes it.

    Parameters
    ----------
    raw
        float32 ``(rows, features)``: a decoded chunk's rows (bins already selected), or rows
        transformed elsewhere (with ``factor=1`` and ``log1p=False``).
    src, dest
        int64 ``(k,)``: the row of ``raw`` and the row of ``out`` of each row written.
    factor, log1p
        The openness transform (depth factor of the chunk's sample; logarithm or not).
    centre, centre_rows
        float32 ``(genes, features)`` per-gene means subtracted and int64 ``(k,)`` each row's gene;
        ``centre`` with no rows: nothing subtracted.
    out
        float32 ``(buffer rows, features)``.
    scratch
        float32 ``(4, features)`` work space (one per thread); row 3 must hold zeros.
    """
    n_feat = out.shape[1]
    if scratch.shape[0] < 4 or scratch.shape[1] != n_feat or raw.shape[1] != n_feat:
        raise ValueError("fill_rows: raw, out and scratch (4 rows) need one column per feature")
    centred = centre.shape[0] > 0
    if centred and centre.shape[1] != n_feat:
        raise ValueError("fill_rows: centre needs one column per feature")
    u = scratch[0]
    bits = u.view(np.int32)
    mant_bits = scratch[1].view(np.int32)
    mant = scratch[1]
    expo = scratch[2]
    for k in range(src.shape[0]):
        row = raw[src[k]]
        target = out[dest[k]]
        mean = centre[centre_rows[k]] if centred else scratch[3]  # row 3: zeros
        if not log1p:
            for j in range(n_feat):
                target[j] = row[j] * factor - mean[j]
            continue
        for j in range(n_feat):
            u[j] = _ONE + row[j] * factor
        # u outside (0, largest float] (a value at or below -1, an overflow, NaN) has the bit
        # pattern minus one above that of the largest float less one (sign bit, exponent all
        # ones, or +0 wrapping to 2**32 - 1); an integer maximum vectorises, float tests do not
        top = np.uint32(0)
        for j in range(n_feat):
            b = bits[j]
            top = max(top, np.uint32(b) - np.uint32(1))
            e = (b - _SQRT_HALF_BITS) >> 23
            mant_bits[j] = b - (e << 23)
            expo[j] = np.float32(e)
        for j in range(n_feat):
            z = row[j] * factor
            w = u[j]
            f = mant[j] - _ONE
            s = f / (_TWO + f)
            s2 = s * s
            series = s * (_TWO + s2 * (_C3 + s2 * (_C5 + s2 * (_C7 + s2 * _C9))))
            e = expo[j]
            correction = (z - (w - _ONE)) / w
            target[j] = e * _LN2_HI + (series + (e * _LN2_LO + correction)) - mean[j]
        if top > _FLOAT_MAX_BITS - np.uint32(1):
            for j in range(n_feat):
                target[j] = np.float32(math.log1p(row[j] * factor)) - mean[j]


@njit(nogil=True, cache=True, boundscheck=False)
def add_rows(x: np.ndarray, genes: np.ndarray, sums: np.ndarray) -> None:  # pragma: no cover
    """``sums[genes[k], :] += x[k, :]`` (float64 sums of float32 rows; genes may repeat)."""
    for k in range(x.shape[0]):
        target = sums[genes[k]]
        row = x[k]
        for j in range(x.shape[1]):
            target[j] += row[j]
