"""numba kernels for window binning. Arrays and scalars in, preallocated output written in place.

Conventions: coordinates are 0-based, half-open. A signal is a set of **disjoint** segments per
chromosome, sorted by start, concatenated over chromosomes
(``chrom_offsets[c]:chrom_offsets[c + 1]`` are chromosome ``c``'s segments). Bases without a
segment have signal 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

AGGREGATE_MEAN = 0
AGGREGATE_SUM = 1
AGGREGATE_MAX = 2


@njit(cache=True, nogil=True)
def _first_segment_ending_after(ends: np.ndarray, lo: int, hi: int, position: int) -> int:
    """Index of the first segment in ``[lo, hi)`` whose end is > ``position`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if ends[mid] <= position:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _sum_row(
    seg_starts: np.ndarray,
    seg_ends: np.ndarray,
    seg_values: np.ndarray,
    j: int,
    hi: int,
    window_start: int,
    bin_size: int,
    n_bins: int,
    acc: np.ndarray,
) -> None:
    """Add ``overlap bases * value`` of every segment from ``j`` on to the bins of one window.

    ``acc`` (float64, ``n_bins + 1`` slots, zeroed by the caller) receives each bin's integral in
    its first ``n_bins`` slots. Segments are visited once each, in genome order, so each bin's total
    is summed in the same order as a per-bin scan would sum it. A segment of at most one bin touches
    at most two bins; both are updated without a branch (the second by 0 when it is not touched).
    """
    window_end = window_start + n_bins * bin_size
    inverse = 1.0 / bin_size
    i = j
    while i < hi:
        s = seg_starts[i]
        if s >= window_end:
            break
        e = seg_ends[i]
        v = seg_values[i]
        i += 1
        s = max(s, window_start)
        e = min(e, window_end)
        offset = s - window_start
        # bin of the first base, without an integer division; the float estimate is off by at most 1
        k = np.int64(offset * inverse)
        k += np.int64((k + 1) * bin_size <= offset)
        k -= np.int64(k * bin_size > offset)
        bin_end = window_start + (k + 1) * bin_size
        if e - s <= bin_size:
            first = min(e, bin_end) - s
            acc[k] += first * v
            acc[k + 1] += (e - s - first) * v
        else:
            acc[k] += (bin_end - s) * v
            m = k + 1
            m_end = bin_end + bin_size
            while m_end < e:
                acc[m] += bin_size * v
                m += 1
                m_end += bin_size
            acc[m] += (e - (m_end - bin_size)) * v


@njit(cache=True, nogil=True)
def _max_row(
    seg_starts: np.ndarray,
    seg_ends: np.ndarray,
    seg_values: np.ndarray,
    j: int,
    hi: int,
    window_start: int,
    bin_size: int,
    n_bins: int,
    acc: np.ndarray,
) -> None:
    """Largest per-base value of each bin of one window (bases without a segment count as 0)."""
    for k in range(n_bins):
        b0 = window_start + k * bin_size
        b1 = b0 + bin_size
        covered = 0
        peak = -np.inf
        i = j
        while i < hi and seg_starts[i] < b1:
            s = seg_starts[i] if seg_starts[i] > b0 else b0
            e = seg_ends[i] if seg_ends[i] < b1 else b1
            if e > s:
                covered += e - s
                if seg_values[i] > peak:
                    peak = seg_values[i]
            i += 1
        while j < hi and seg_ends[j] <= b1:
            j += 1
        if covered < bin_size and peak < 0.0:
            peak = 0.0
        acc[k] = peak if covered > 0 else 0.0


@njit(parallel=True, cache=True, nogil=True)
def bin_windows_kernel(
    seg_starts: np.ndarray,
    seg_ends: np.ndarray,
    seg_values: np.ndarray,
    chrom_offsets: np.ndarray,
    gene_chrom: np.ndarray,
    gene_anchor: np.ndarray,
    gene_minus: np.ndarray,
    flank: int,
    bin_size: int,
    aggregate: int,
    out: np.ndarray,
) -> None:
    """Fill ``out[g, k]`` with the aggregate signal of bin ``k`` of gene ``g``'s window.

    Gene ``g``'s window is ``[anchor - flank, anchor + flank)`` in genome order, cut into
    ``out.shape[1]`` bins of ``bin_size``; for minus-strand genes the bins are written in reverse so
    that bin 0 is the farthest upstream. ``gene_chrom[g] < 0`` (chromosome absent from the signal)
    gives zeros.
    Cost: O(bins + segments overlapping the window) per gene (mean and sum visit each segment once
    and spread it over the bins it covers); blocks of genes run in parallel (each gene writes only
    its own row).
    """
    n_genes = out.shape[0]
    n_bins = out.shape[1]
    per_task = 64  # genes per parallel task, which reuses one scratch row for all of them
    n_tasks = (n_genes + per_task - 1) // per_task
    for task in prange(n_tasks):
        acc = np.empty(n_bins + 1, dtype=np.float64)
        for g in range(task * per_task, min(n_genes, (task + 1) * per_task)):
            c = gene_chrom[g]
            if c < 0:
                for k in range(n_bins):
                    out[g, k] = 0.0
                continue
            lo = chrom_offsets[c]
            hi = chrom_offsets[c + 1]
            window_start = gene_anchor[g] - flank
            j = _first_segment_ending_after(seg_ends, lo, hi, window_start)
            acc[:] = 0.0
            args = (seg_starts, seg_ends, seg_values, j, hi, window_start, bin_size, n_bins, acc)
            if aggregate == AGGREGATE_MAX:
                _max_row(*args)
            else:
                _sum_row(*args)
            divisor = bin_size if aggregate == AGGREGATE_MEAN else 1
            if gene_minus[g]:
                for k in range(n_bins):
                    out[g, n_bins - 1 - k] = acc[k] / divisor
            else:
                for k in range(n_bins):
                    out[g, k] = acc[k] / divisor


@njit(cache=True)
def flatten_overlaps_kernel(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn possibly overlapping intervals of one chromosome into disjoint, summed segments.

    Each output segment's value is the sum of the intervals covering it. Input need not be sorted.
    Output segments are sorted, disjoint, have non-zero length, and zero-valued gaps are dropped.
    """
    n = starts.shape[0]
    positions = np.empty(2 * n, dtype=np.int64)
    deltas = np.empty(2 * n, dtype=np.float64)
    for i in range(n):
        positions[2 * i] = starts[i]
        deltas[2 * i] = values[i]
        positions[2 * i + 1] = ends[i]
        deltas[2 * i + 1] = -values[i]
    order = np.argsort(positions, kind="mergesort")
    out_s = np.empty(2 * n, dtype=np.int64)
    out_e = np.empty(2 * n, dtype=np.int64)
    out_v = np.empty(2 * n, dtype=np.float64)
    m = 0
    level = 0.0
    depth = 0
    i = 0
    while i < 2 * n:
        pos = positions[order[i]]
        while i < 2 * n and positions[order[i]] == pos:
            k = order[i]
            level += deltas[k]
            depth += 1 if (k % 2) == 0 else -1
            i += 1
        if i < 2 * n:
            nxt = positions[order[i]]
            if depth > 0 and nxt > pos:
                out_s[m] = pos
                out_e[m] = nxt
                out_v[m] = level if depth > 0 else 0.0
                m += 1
        if depth == 0:
            level = 0.0  # reset accumulated rounding error between islands
    return out_s[:m], out_e[:m], out_v[:m]
