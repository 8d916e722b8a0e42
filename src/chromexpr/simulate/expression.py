"""Planted regulatory truth and expression from openness.

On the log2 scale, for gene ``g`` and sample ``s`` (``o`` is depth-free latent openness)::

    y[g, s] = b_g + w_g * log1p(o[promoter(g), s])
              + sum_{e in links(g)} beta_e * exp(-|d_e| / d0) * log1p(o[e, s])   (cis part c)
              + t[g, group(s)]                                                  (trans programme)
              + eps[g, s]
    eps[g, s] ~ N(0, sigma_g^2)
    TPM[g, s] = 1e6 * max(2^y - 1, 0) / sum_g max(2^y - 1, 0)

See ``docs/simulation.md`` for the distributions of every term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chromexpr.simulate.accessibility import DISTAL, PeakUniverse
from chromexpr.simulate.config import SimulationConfig
from chromexpr.simulate.design import SampleDesign
from chromexpr.simulate.lineage import LineageTree

#: Columns of the links table (universe/gene indices, signed distance, effect, effective weight).
LINK_COLUMNS = ["gene", "peak", "distance", "effect", "weight"]


@dataclass(frozen=True, eq=False)
class RegulatoryTruth:
    """The planted model.

    Attributes
    ----------
    links : pandas.DataFrame
        :data:`LINK_COLUMNS`, sorted by gene then distance: ``gene`` (row of the layout), ``peak``
        (universe index), ``distance`` (summit - TSS in the gene's orientation, bp; negative =
        upstream), ``effect`` (``beta``), ``weight`` (``beta * exp(-|distance| / d0)``).
    promoter : numpy.ndarray
        ``int64 (n_genes,)``: universe index of each gene's promoter peak (``-1``: none).
    baseline, promoter_weight, noise_sd : numpy.ndarray
        ``float64 (n_genes,)``: ``b_g``, ``w_g``, ``sigma_g``.
    reference_level : numpy.ndarray
        ``float64 (n_genes,)``: ``r_g``, the cis part ``c`` of the noise-free ``y`` when every
        element of the gene is at its strength (``o_p = s_p``);
        ``b_g = r_g - w_g log1p(s_promoter) - sum_e weight_e log1p(s_e)``.
    tracked : numpy.ndarray
        ``int64``: sorted universe indices whose openness the expression model reads.
    """

    links: pd.DataFrame
    promoter: np.ndarray
    baseline: np.ndarray
    reference_level: np.ndarray
    promoter_weight: np.ndarray
    noise_sd: np.ndarray
    tracked: np.ndarray

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return int(self.baseline.shape[0])


def plant_links(
    genes: pd.DataFrame,
    tss_global: np.ndarray,
    universe: PeakUniverse,
    promoter: np.ndarray,
    *,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> RegulatoryTruth:
    """Draw each gene's enhancer links and parameters.

    Gene ``g`` gets ``n_g = min(1 + Poisson(links_per_gene), candidates)`` distal peaks whose summit
    lies within ``window`` of its TSS on its chromosome, drawn without replacement with weights
    ``exp(-|d| / link_selection_scale)`` (Gumbel top-k). Effects ``beta = sign * LogNormal(log
    effect_median, effect_sigma)`` with ``sign = -1`` with probability ``negative_fraction``.

    Parameters
    ----------
    genes
        Layout table (``strand`` is read).
    tss_global
        ``int64 (n_genes,)``: TSSs on the global axis.
    universe
        The peak universe.
    promoter
        ``int64 (n_genes,)``: promoter peak of each gene (``-1``: none).
    config
        Simulation parameters.
    rng
        The links' random stream.
    """
    n_genes = tss_global.shape[0]
    minus = genes["strand"].to_numpy() == "-"
    distal = np.flatnonzero(universe.kind == DISTAL)
    d_summit = universe.summit[distal]
    d_chrom = universe.chrom_index[distal]
    gene_chrom = _gene_chrom_index(genes, universe)
    lo = np.searchsorted(d_summit, tss_global - config.window, side="left")
    hi = np.searchsorted(d_summit, tss_global + config.window, side="right")
    n_wanted = 1 + np.asarray(rng.poisson(config.links_per_gene, size=n_genes))
    gene_col: list[np.ndarray] = []
    peak_col: list[np.ndarray] = []
    dist_col: list[np.ndarray] = []
    for g in range(n_genes):
        cand = np.arange(lo[g], hi[g])
        cand = cand[d_chrom[cand] == gene_chrom[g]]
        if cand.size == 0:
            continue
        d = d_summit[cand] - tss_global[g]
        keys = -np.abs(d) / config.link_selection_scale + rng.gumbel(size=cand.size)
        k = min(int(n_wanted[g]), cand.size)
        pick = np.argsort(-keys, kind="stable")[:k]
        signed = -d[pick] if minus[g] else d[pick]
        order = np.argsort(np.abs(signed), kind="stable")
        gene_col.append(np.full(k, g, dtype=np.int64))
        peak_col.append(distal[cand[pick]][order])
        dist_col.append(signed[order])
    gene_idx = np.concatenate(gene_col) if gene_col else np.zeros(0, np.int64)
    peak_idx = np.concatenate(peak_col) if peak_col else np.zeros(0, np.int64)
    distance = np.concatenate(dist_col) if dist_col else np.zeros(0, np.int64)
    n_links = gene_idx.shape[0]
    sign = np.where(rng.random(n_links) < config.negative_fraction, -1.0, 1.0)
    effect = sign * rng.lognormal(math.log(config.effect_median), config.effect_sigma, n_links)
    weight = effect * np.exp(-np.abs(distance) / config.link_decay)
    links = pd.DataFrame(
        {
            "gene": gene_idx,
            "peak": peak_idx,
            "distance": distance,
            "effect": effect,
            "weight": weight,
        }
    )
    silent = rng.random(n_genes) < config.silent_fraction
    reference = np.where(
        silent, config.silent_level, rng.normal(config.reference_mean, config.reference_sd, n_genes)
    )
    promoter_weight = np.asarray(
        rng.lognormal(
            math.log(config.promoter_weight_median), config.promoter_weight_sigma, size=n_genes
        )
    )
    # The intercept b_g puts the gene at `reference` when every element sits at its strength s_p.
    has = promoter >= 0
    at_reference = np.zeros(n_genes)
    at_reference[has] = promoter_weight[has] * np.log1p(universe.strength[promoter[has]])
    at_reference += np.bincount(
        gene_idx, weights=weight * np.log1p(universe.strength[peak_idx]), minlength=n_genes
    )
    baseline = reference - at_reference
    noise_sd = np.asarray(
        rng.lognormal(math.log(config.noise_sd_median), config.noise_sd_sigma, size=n_genes)
    )
    tracked = np.unique(np.concatenate([promoter[promoter >= 0], peak_idx]))
    return RegulatoryTruth(
        links=links,
        promoter=promoter,
        baseline=baseline,
        reference_level=reference,
        promoter_weight=promoter_weight,
        noise_sd=noise_sd,
        tracked=tracked.astype(np.int64),
    )


def _gene_chrom_index(genes: pd.DataFrame, universe: PeakUniverse) -> np.ndarray:
    code = {c: i for i, c in enumerate(universe.chroms)}
    return genes["chrom"].map(code).to_numpy(dtype=np.int64)


def noise_free_log_expression(truth: RegulatoryTruth, openness: np.ndarray) -> np.ndarray:
    """The cis part ``c`` of the noise-free ``y`` (log2 scale) from tracked latent openness.

    The noise-free ``y*`` adds the trans programme (:func:`trans_programme`) to it.

    Parameters
    ----------
    truth
        The planted model.
    openness
        ``float64 (len(truth.tracked), n_samples)``: latent openness of the tracked peaks.

    Returns
    -------
    numpy.ndarray
        ``float64 (n_genes, n_samples)``.
    """
    n_samples = openness.shape[1]
    lp = np.log1p(openness)
    y = np.repeat(truth.baseline[:, None], n_samples, axis=1)
    has = truth.promoter >= 0
    rows = np.searchsorted(truth.tracked, truth.promoter[has])
    y[has] += truth.promoter_weight[has, None] * lp[rows]
    links = truth.links
    if len(links):
        rows = np.searchsorted(truth.tracked, links["peak"].to_numpy())
        contrib = links["weight"].to_numpy()[:, None] * lp[rows]
        gene = links["gene"].to_numpy()
        first = np.flatnonzero(np.concatenate([[True], gene[1:] != gene[:-1]]))
        y[gene[first]] += np.add.reduceat(contrib, first, axis=0)
    return y


def trans_programme(
    cis: np.ndarray,
    group_index: np.ndarray,
    tree: LineageTree,
    *,
    share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Each gene's trans-acting expression programme: one value per group, evolved along the tree.

    A unit trait per gene is drawn along ``tree`` (:meth:`LineageTree.draw`), centred so that its
    mean over the samples is 0 (it moves no gene's mean level) and scaled so that its variance over
    the samples is ``share / (1 - share)`` times that of the gene's cis part: the programme then
    makes up ``share`` of ``var(c) + var(t)``. It depends on no peak, so no model of the gene's own
    window can explain it; related groups share it, as the tree says.

    Parameters
    ----------
    cis
        ``float64 (n_genes, n_samples)``: the cis part of the noise-free expression
        (:func:`noise_free_log_expression`).
    group_index
        ``int64 (n_samples,)``: group of each sample (a leaf of ``tree``).
    tree
        The lineage tree.
    share
        Programme share of the noise-free variance, in ``[0, 1)``.
    rng
        The programme's random stream.

    Returns
    -------
    numpy.ndarray
        ``float64 (n_genes, n_groups)``: ``t[g, k]``; a sample of group ``k`` gets ``t[:, k]``.
    """
    raw = tree.draw(rng, cis.shape[0])
    raw -= raw[:, group_index].mean(axis=1, keepdims=True)
    raw_var = raw[:, group_index].var(axis=1)
    target = share / (1.0 - share) * cis.var(axis=1)
    scale = np.sqrt(np.divide(target, raw_var, out=np.zeros_like(target), where=raw_var > 1e-12))
    return raw * scale[:, None]


def observed_log_expression(
    truth: RegulatoryTruth,
    y_free: np.ndarray,
    design: SampleDesign,
    *,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Observed ``y``: noise-free plus per-gene noise; the outlier follows its donor's
    accessibility.

    Returns
    -------
    numpy.ndarray
        ``float64 (n_genes, n_samples)``; every sample, including those without expression.
    """
    eps = rng.standard_normal(y_free.shape) * truth.noise_sd[:, None]
    extra = rng.standard_normal(y_free.shape[0]) * config.outlier_noise_sd
    y = y_free + eps
    if design.outlier is not None and design.donor is not None:
        y[:, design.outlier] = y_free[:, design.donor] + eps[:, design.outlier] + extra
    return y


def to_tpm(y: np.ndarray) -> np.ndarray:
    """Back-transform ``log2(TPM + 1)``-scale values and renormalise each sample (column) to 1e6.

    Examples
    --------
    >>> to_tpm(np.array([[1.0], [1.0], [-3.0]])).ravel().tolist()
    [500000.0, 500000.0, 0.0]
    """
    raw = np.maximum(np.exp2(y) - 1.0, 0.0)
    total = raw.sum(axis=0, keepdims=True)
    return np.divide(raw * 1e6, total, out=np.zeros_like(raw), where=total > 0)
