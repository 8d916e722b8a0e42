"""Peak universe and per-sample accessibility: openness, called peaks, per-base signal, counts.

All positions are global coordinates on the concatenated axis of
:func:`chromexpr.simulate.layout.chrom_offsets` unless a name says otherwise; intervals are 0-based,
half-open. The model is stated in ``docs/simulation.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from chromexpr.simulate.config import SimulationConfig
from chromexpr.simulate.layout import chrom_offsets
from chromexpr.simulate.lineage import LineageTree

PROMOTER, DISTAL = 0, 1
SHARED, GROUP, SAMPLE = 0, 1, 2
KIND_NAMES = ("promoter", "distal")
COMPONENT_NAMES = ("shared", "group", "sample")


@dataclass(frozen=True, eq=False)
class PeakUniverse:
    """Every candidate peak, sorted by global start; each sample calls a subset of them.

    Attributes
    ----------
    chroms : list of str
        Chromosome names; ``chrom_index`` points into it.
    chrom_index : numpy.ndarray
        ``int64 (n,)``.
    start, end, summit : numpy.ndarray
        ``int64 (n,)``, global coordinates; ``start <= summit < end``.
    kind : numpy.ndarray
        ``int8 (n,)``: :data:`PROMOTER` or :data:`DISTAL`.
    strength : numpy.ndarray
        ``float64 (n,)``, ``s_p``.
    component : numpy.ndarray
        ``int8 (n,)``: :data:`SHARED`, :data:`GROUP` or :data:`SAMPLE`.
    group_level : numpy.ndarray
        ``float32 (n, n_groups)``: log-level of group-specific peaks in each group (0 elsewhere).
    chrom_start, chrom_end : numpy.ndarray
        ``int64 (n,)``: global bounds of each peak's chromosome (local = global - chrom_start).
    """

    chroms: list[str]
    chrom_index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    summit: np.ndarray
    kind: np.ndarray
    strength: np.ndarray
    component: np.ndarray
    group_level: np.ndarray
    chrom_start: np.ndarray
    chrom_end: np.ndarray

    @property
    def n_peaks(self) -> int:
        """Number of peaks."""
        return int(self.start.shape[0])

    def frame(self) -> pd.DataFrame:
        """The universe as a table with chromosome-local coordinates (for the truth folder)."""
        return pd.DataFrame(
            {
                "chrom": np.asarray(self.chroms, dtype=object)[self.chrom_index],
                "start": self.start - self.chrom_start,
                "end": self.end - self.chrom_start,
                "summit": self.summit - self.chrom_start,
                "kind": np.asarray(KIND_NAMES, dtype=object)[self.kind],
                "component": np.asarray(COMPONENT_NAMES, dtype=object)[self.component],
                "strength": self.strength,
            }
        )


def _in_intervals(x: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each position lies in one of the sorted, disjoint intervals ``[starts, ends)``."""
    i = np.searchsorted(starts, x, side="right") - 1
    return (i >= 0) & (x < ends[np.maximum(i, 0)])


def _promoter_peaks(
    tss_global: np.ndarray,
    chrom_of_tss: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Promoter peaks of TSS clusters.

    Returns ``(cluster_of_tss, start, end, summit)`` where ``cluster_of_tss`` maps each input TSS to
    its promoter peak (``-1``: its cluster has none). Clusters chain TSSs closer than
    ``tss_cluster_distance`` on one chromosome; a peak is centred on its cluster's median TSS, and
    its half-widths are shrunk so that neighbouring promoter peaks keep ``min_gap`` between them.
    """
    order = np.argsort(tss_global, kind="stable")
    t = tss_global[order]
    c = chrom_of_tss[order]
    new = np.concatenate([[True], (np.diff(t) >= config.tss_cluster_distance) | (c[1:] != c[:-1])])
    cluster_sorted = np.cumsum(new) - 1
    n_clusters = int(cluster_sorted[-1]) + 1 if t.size else 0
    firsts = np.flatnonzero(new)
    lasts = np.concatenate([firsts[1:] - 1, [t.size - 1]]) if t.size else firsts
    center = (t[firsts] + t[lasts]) // 2
    has_peak = rng.random(n_clusters) < config.promoter_fraction
    width = np.clip(
        rng.lognormal(
            math.log(config.promoter_width_median), config.promoter_width_sigma, n_clusters
        ),
        config.min_width,
        config.max_width,
    )
    center = center + np.round(rng.normal(0.0, 30.0, n_clusters)).astype(np.int64)
    center = np.clip(center, t[firsts], t[lasts])  # the peak covers its cluster's TSS span
    center, width = center[has_peak], width[has_peak]
    half = np.ceil(width / 2).astype(np.int64)
    room = (np.diff(center) - config.min_gap) // 2  # between neighbouring promoter centres
    left_room = np.concatenate([[half.max(initial=0)], room])
    right_room = np.concatenate([room, [half.max(initial=0)]])
    half = np.maximum(np.minimum(half, np.minimum(left_room, right_room)), 1)
    start, end = center - half, center + half
    peak_of_cluster = np.full(n_clusters, -1, dtype=np.int64)
    peak_of_cluster[has_peak] = np.arange(int(has_peak.sum()))
    cluster_of_tss = np.empty_like(order)
    cluster_of_tss[order] = peak_of_cluster[cluster_sorted]
    return cluster_of_tss, start, end, center


def _greedy_disjoint(start: np.ndarray, end: np.ndarray, gap: int) -> np.ndarray:
    """Indices kept by a left-to-right sweep dropping intervals within ``gap`` of the last kept."""
    keep = np.zeros(start.shape[0], dtype=bool)
    last_end = -(10**18)
    for i in range(start.shape[0]):  # sequential by nature; ~1 µs per peak
        if start[i] >= last_end + gap:
            keep[i] = True
            last_end = int(end[i])
    return np.flatnonzero(keep)


def build_universe(
    genes: pd.DataFrame,
    chrom_sizes: Mapping[str, int],
    territory_starts: np.ndarray,
    territory_ends: np.ndarray,
    *,
    n_peaks: int,
    tree: LineageTree,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[PeakUniverse, np.ndarray]:
    """Place promoter and distal peaks and draw their strengths, variability components and
    group levels.

    Parameters
    ----------
    genes
        Layout table (``chrom``, ``tss``, ``strand``...).
    chrom_sizes
        Chromosomes of the layout, in output order.
    territory_starts, territory_ends
        Global, merged regulatory windows (:func:`chromexpr.simulate.layout.territory`).
    n_peaks
        Target universe size (promoter peaks + distal peaks).
    tree
        Lineage tree over the sample groups (its leaves are the columns of ``group_level``):
        group-specific peaks switch on where a latent trait evolved along it exceeds the
        ``1 - group_on_probability`` normal quantile, and their jitter evolves along it too.
    config
        Simulation parameters.
    rng
        The universe's random stream.

    Returns
    -------
    universe : PeakUniverse
    promoter_of_gene : numpy.ndarray
        ``int64 (n_genes,)``: index into the universe of each gene's promoter peak, ``-1`` if none.
    """
    chroms = list(chrom_sizes)
    offsets = chrom_offsets(chrom_sizes)
    chrom_code = {c: i for i, c in enumerate(chroms)}
    gene_chrom = genes["chrom"].map(chrom_code).to_numpy(dtype=np.int64)
    tss_global = genes["chrom"].map(offsets).to_numpy(dtype=np.int64) + genes["tss"].to_numpy(
        np.int64
    )
    starts_of_chrom = np.asarray([offsets[c] for c in chroms], dtype=np.int64)
    ends_of_chrom = starts_of_chrom + np.asarray(
        [int(chrom_sizes[c]) for c in chroms], dtype=np.int64
    )
    cluster_of_gene, p_start, p_end, p_summit = _promoter_peaks(tss_global, gene_chrom, config, rng)
    p_chrom = np.searchsorted(starts_of_chrom, p_summit, side="right") - 1
    p_start = np.maximum(p_start, starts_of_chrom[p_chrom])
    p_end = np.minimum(p_end, ends_of_chrom[p_chrom])
    n_prom = p_start.shape[0]

    # Distal peaks: half near TSSs (Laplace offsets), half uniform over the territory.
    n_distal = max(n_peaks - n_prom, 0)
    n_draw = math.ceil(n_distal * 1.25) + 16
    n_near = int(rng.binomial(n_draw, config.near_gene_fraction))
    anchor = tss_global[rng.integers(0, tss_global.shape[0], n_near)]
    near = anchor + np.round(rng.laplace(0.0, config.near_gene_scale, n_near)).astype(np.int64)
    lengths = territory_ends - territory_starts
    cum = np.concatenate([[0], np.cumsum(lengths)])
    u = rng.integers(0, int(cum[-1]), n_draw - n_near)
    seg = np.searchsorted(cum, u, side="right") - 1
    uniform = territory_starts[seg] + (u - cum[seg])
    d_center = np.concatenate([near, uniform])
    d_width = np.clip(
        rng.lognormal(math.log(config.distal_width_median), config.distal_width_sigma, n_draw),
        config.min_width,
        config.max_width,
    ).astype(np.int64)
    d_start = d_center - d_width // 2
    d_end = d_start + d_width
    ok = _in_intervals(d_start, territory_starts, territory_ends) & _in_intervals(
        d_end - 1, territory_starts, territory_ends
    )
    # Both ends on one chromosome (a territory never spans two, but adjacent ones may touch).
    ok &= np.searchsorted(starts_of_chrom, d_start, side="right") == np.searchsorted(
        starts_of_chrom, d_end - 1, side="right"
    )
    d_start, d_end = d_start[ok], d_end[ok]
    # No distal peak within min_gap of a promoter peak.
    pi = np.searchsorted(p_start, d_end + config.min_gap, side="left") - 1
    if n_prom:
        near_prom = (pi >= 0) & (p_end[np.maximum(pi, 0)] + config.min_gap > d_start)
    else:
        near_prom = np.zeros(d_start.shape[0], dtype=bool)
    d_start, d_end = d_start[~near_prom], d_end[~near_prom]
    order = np.argsort(d_start, kind="stable")
    d_start, d_end = d_start[order], d_end[order]
    kept = _greedy_disjoint(d_start, d_end, config.min_gap)
    if kept.shape[0] > n_distal:
        kept = np.sort(rng.choice(kept, size=n_distal, replace=False))
    d_start, d_end = d_start[kept], d_end[kept]
    d_width = d_end - d_start
    # Summits: near the centre (triangular offset within the middle half).
    d_summit = (
        d_start
        + d_width // 2
        + np.round(rng.triangular(-0.25, 0.0, 0.25, d_width.shape[0]) * d_width)
    )
    d_summit = np.clip(d_summit.astype(np.int64), d_start, d_end - 1)

    start = np.concatenate([p_start, d_start])
    end = np.concatenate([p_end, d_end])
    summit = np.concatenate([p_summit, d_summit])
    kind = np.concatenate(
        [np.full(n_prom, PROMOTER, np.int8), np.full(d_start.shape[0], DISTAL, np.int8)]
    )
    order = np.argsort(start, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    start, end, summit, kind = start[order], end[order], summit[order], kind[order]
    n = start.shape[0]

    is_prom = kind == PROMOTER
    strength = np.where(
        is_prom,
        rng.lognormal(math.log(config.promoter_strength_median), config.promoter_strength_sigma, n),
        rng.lognormal(math.log(config.distal_strength_median), config.distal_strength_sigma, n),
    )
    u = rng.random(n)
    cum_p = np.cumsum(config.promoter_components)
    cum_d = np.cumsum(config.distal_components)
    component = np.where(
        is_prom,
        np.searchsorted(cum_p[:-1], u, side="right"),
        np.searchsorted(cum_d[:-1], u, side="right"),
    ).astype(np.int8)
    n_groups = tree.n_leaves
    threshold = _upper_quantile(config.group_on_probability)
    on = tree.draw(rng, n) > threshold
    if n_groups >= 2:  # at least one group on and one off
        # Redraw peaks on (or off) everywhere: keeps the tree's structure among the rest.
        for _ in range(_REDRAWS if math.isfinite(threshold) else 0):
            flat = np.flatnonzero(on.all(axis=1) | ~on.any(axis=1))
            if flat.size == 0:
                break
            on[flat] = tree.draw(rng, flat.size) > threshold
        # Left after the redraws (only with group_on_probability at or near 0 or 1): one group
        # switched at random.
        none_on = ~on.any(axis=1)
        on[none_on, rng.integers(0, n_groups, int(none_on.sum()))] = True
        all_on = on.all(axis=1)
        on[all_on, rng.integers(0, n_groups, int(all_on.sum()))] = False
    else:
        on[:] = True
    level = np.where(on, 0.0, math.log(config.group_off_level)) + config.group_sd * tree.draw(
        rng, n
    )
    level[component != GROUP] = 0.0

    chrom_index = np.searchsorted(starts_of_chrom, start, side="right") - 1
    universe = PeakUniverse(
        chroms=chroms,
        chrom_index=chrom_index.astype(np.int64),
        start=start,
        end=end,
        summit=summit,
        kind=kind,
        strength=strength,
        component=component,
        group_level=level.astype(np.float32),
        chrom_start=starts_of_chrom[chrom_index],
        chrom_end=ends_of_chrom[chrom_index],
    )
    promoter_of_gene = np.where(cluster_of_gene >= 0, rank[np.maximum(cluster_of_gene, 0)], -1)
    return universe, promoter_of_gene.astype(np.int64)


#: Rounds of redrawing group-specific peaks that are on (or off) in every group.
_REDRAWS = 20


def _upper_quantile(p: float) -> float:
    """``t`` with ``P(Z > t) = p`` for a standard normal ``Z`` (infinite at ``p`` = 0 or 1).

    Examples
    --------
    >>> round(_upper_quantile(0.5), 6), _upper_quantile(0.0), _upper_quantile(1.0)
    (0.0, inf, -inf)
    """
    if p <= 0.0:
        return math.inf
    if p >= 1.0:
        return -math.inf
    return NormalDist().inv_cdf(1.0 - p)


def latent_openness(
    universe: PeakUniverse, group: int, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Depth-free openness ``o[p, s]`` of every peak in one sample of group ``group``.

    ``o = s_p * exp(x)`` with ``x ~ N(0, shared_sd)`` for shared peaks, ``N(level[p, group],
    within_group_sd)`` for group-specific ones and ``N(0, sample_sd)`` for sample-specific ones.

    Returns
    -------
    numpy.ndarray
        ``float64 (n_peaks,)``.
    """
    z = rng.standard_normal(universe.n_peaks)
    comp = universe.component
    x = np.where(
        comp == SHARED,
        config.shared_sd * z,
        np.where(
            comp == GROUP,
            universe.group_level[:, group].astype(np.float64) + config.within_group_sd * z,
            config.sample_sd * z,
        ),
    )
    return universe.strength * np.exp(x)


@dataclass(frozen=True, eq=False)
class SampleObservation:
    """What one sample's assays observe.

    Attributes
    ----------
    signal : numpy.ndarray
        ``float64 (n_peaks,)``: observed summit height ``a = o * depth * exp(N(0,
        measurement_sd))``.
    called : numpy.ndarray
        ``int64 (k,)``: sorted universe indices of the peaks called in this sample.
    start, end, summit : numpy.ndarray
        ``int64 (k,)``: global coordinates of the called peaks (boundaries jittered per sample).
    neg_log10_p, neg_log10_q : numpy.ndarray
        ``float64 (k,)``: peak-calling statistics.
    counts : numpy.ndarray
        ``int32 (n_peaks,)``: reads in every universe peak (featureCounts), called or not.
    """

    signal: np.ndarray
    called: np.ndarray
    start: np.ndarray
    end: np.ndarray
    summit: np.ndarray
    neg_log10_p: np.ndarray
    neg_log10_q: np.ndarray
    counts: np.ndarray


def _poisson_neg_log10_sf(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Chernoff bound of ``-log10 P(X >= k)`` for ``X ~ Poisson(lam)`` (0 when ``k <= lam``)."""
    ratio = np.maximum(k, 1e-12) / lam
    nats = k * np.log(ratio) - k + lam
    return np.where(k > lam, nats / math.log(10.0), 0.0)


def observe_sample(
    universe: PeakUniverse,
    openness: np.ndarray,
    *,
    depth: float,
    n_called: int,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> SampleObservation:
    """Observe one sample: signal with depth and technical noise, called peaks, statistics, counts.

    The ``n_called`` peaks with the highest observed signal are called (at most the universe). Their
    boundaries move by up to ``boundary_jitter`` bp and their summits by up to 10 bp. ``-log10 p``
    is a Poisson tail (Chernoff bound) of the expected reads in the peak against the background
    reads; ``-log10 q`` applies Benjamini-Hochberg over the called peaks.
    """
    n = universe.n_peaks
    signal = openness * depth * np.exp(config.measurement_sd * rng.standard_normal(n))
    width = (universe.end - universe.start).astype(np.float64)
    area_fraction = (config.summit_levels + 1) / (2.0 * config.summit_levels)
    background = config.background_reads_per_bp * depth * width
    expected = config.reads_per_signal_bp * signal * width * area_fraction + background
    counts = rng.poisson(expected).astype(np.int32)

    k = min(max(n_called, 0), n)
    if k == n:
        called = np.arange(n)
    else:
        called = np.sort(np.argpartition(-signal, k - 1)[:k]) if k > 0 else np.zeros(0, np.int64)
    j = config.boundary_jitter
    start = universe.start[called] + rng.integers(-j, j + 1, k)
    end = universe.end[called] + rng.integers(-j, j + 1, k)
    start = np.maximum(start, universe.chrom_start[called])
    end = np.minimum(end, universe.chrom_end[called])
    end = np.maximum(end, start + 1)
    summit = np.clip(universe.summit[called] + rng.integers(-10, 11, k), start, end - 1)

    neg_log10_p = _poisson_neg_log10_sf(expected[called], background[called])
    order = np.argsort(-neg_log10_p, kind="stable")  # most significant first
    ranks = np.empty(k, dtype=np.float64)
    ranks[order] = np.arange(1, k + 1)
    q = neg_log10_p - np.log10(max(k, 1) / ranks)
    # BH: q_(i) = min_{j >= i} p_(j) n / j, i.e. a running maximum of -log10 from the least
    # significant.
    q_sorted = np.maximum.accumulate(q[order][::-1])[::-1]
    neg_log10_q = np.empty(k, dtype=np.float64)
    neg_log10_q[order] = q_sorted
    neg_log10_q = np.maximum(neg_log10_q, 0.0)
    return SampleObservation(
        signal=signal,
        called=called.astype(np.int64),
        start=start,
        end=end,
        summit=summit,
        neg_log10_p=neg_log10_p,
        neg_log10_q=neg_log10_q,
        counts=counts,
    )


def peak_shape(
    start: np.ndarray, end: np.ndarray, summit: np.ndarray, height: np.ndarray, *, levels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-base step shape of peaks: ``levels`` steps rising to the summit and falling back.

    Level ``k`` (1..``levels``) has height ``height * k / levels`` and covers the nested interval
    ``[start + floor((summit - start) (k-1) / levels), end - floor((end - 1 - summit) (k-1) /
    levels))``; the flattened steps are disjoint.

    Parameters
    ----------
    start, end, summit
        ``int64 (n,)``, 0-based, half-open peaks with ``start <= summit < end``.
    height
        ``float64 (n,)``, summit heights.
    levels
        Number of steps.

    Returns
    -------
    rows : numpy.ndarray
        ``int64 (m,)``: the peak (row of the inputs) of each interval.
    starts, ends, values : numpy.ndarray
        ``(m,)``: disjoint intervals, sorted by start when the peaks are (at most ``2 * levels - 1``
        per peak; empty steps dropped).

    Examples
    --------
    >>> one = np.array([0]), np.array([8]), np.array([4]), np.array([4.0])
    >>> r, s, e, v = peak_shape(*one, levels=2)
    >>> r.tolist(), s.tolist(), e.tolist(), v.tolist()
    ([0, 0, 0], [0, 2, 7], [2, 7, 8], [2.0, 4.0, 2.0])
    """
    k = np.arange(levels, dtype=np.int64)  # level - 1
    left = (
        start[:, None] + ((summit - start)[:, None] * k[None, :]) // levels
    )  # (n, levels), rising
    right = end[:, None] - ((end - 1 - summit)[:, None] * k[None, :]) // levels  # falling
    frac = (k + 1) / levels
    # Left steps [left_k, left_{k+1}) at level k+1 for k < levels-1, centre [left_L, right_L), right
    # steps.
    l_s, l_e = left[:, :-1], left[:, 1:]
    c_s, c_e = left[:, -1:], right[:, -1:]
    r_s, r_e = right[:, 1:][:, ::-1], right[:, :-1][:, ::-1]
    starts = np.concatenate([l_s, c_s, r_s], axis=1)
    ends = np.concatenate([l_e, c_e, r_e], axis=1)
    vals = np.concatenate([frac[:-1], frac[-1:], frac[:-1][::-1]])[None, :] * height[:, None]
    keep = ends > starts
    rows = np.broadcast_to(np.arange(start.shape[0], dtype=np.int64)[:, None], keep.shape)
    return rows[keep], starts[keep], ends[keep], vals[keep]
