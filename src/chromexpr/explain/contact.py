"""Contact-aware link scores: a bin's activity x its contact with the TSS x the model's evidence.

For gene ``g`` and bin ``b`` of its window (distance ``d`` in bp from the TSS base to the bin's
middle), with ``A`` the bin's accessibility in the chosen samples, ``C`` the contact frequency
between the bin and the TSS, and ``E`` the model's evidence::

    raw[g, b]   = A[g, b] ** a  *  C[g, b]  *  (1 + w * E[g, b])
    score[g, b] = raw[g, b] / sum over the gene's bins of raw[g, :]

* ``C`` is the power law ``max(d, d_min) ** -gamma`` (ABC's form without Hi-C), or a measured
  contact (:func:`chromexpr.io.contacts.read_contacts`) when the user has Hi-C/Micro-C;
* ``E`` is the bin's mean |attribution| over the attributed samples divided by the gene's largest
  (0..1): what the trained model adds across samples;
* the per-gene normalisation (ABC's) turns a gene's scores into shares, so that genes with many or
  few open elements rank on one scale.

The exponents ``a``, ``gamma``, ``d_min`` and the weight ``w`` were fitted on data, not set by hand
(:data:`CALIBRATION`; docs/explain.md has the table). ``a < 1`` damps the few very open bins (the
promoter and strong peaks) that otherwise take a gene's whole share. ``score`` is 0 where ``A`` is 0
(no accessibility, no element) and where a bin is off the chromosome.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from chromexpr.errors import InputError

__all__ = [
    "CALIBRATION",
    "LinkScore",
    "ScoreParams",
    "contact_link_scores",
    "model_evidence",
    "power_law_contact",
]

#: How links are scored: ``contact`` (this module, the default) or ``attribution`` (mean
#: |attribution| alone, the earlier behaviour).
LinkScore = Literal["contact", "attribution"]

#: Where the defaults of :class:`ScoreParams` come from.
CALIBRATION = (
    "grid search maximising AUPRC against K562 CRISPRi (EPCrisprBenchmark, hg19 lift) on the odd "
    "chromosomes only, with erythroid population P5's ATAC as activity and lasso-gene "
    "attributions (12 erythroid populations) as evidence; the even chromosomes and X were held "
    "out for reporting (benchmarks/bench_links.py, docs/explain.md)"
)


@dataclass(frozen=True)
class ScoreParams:
    """Parameters of the contact-aware link score (see the module docs for the formula).

    Attributes
    ----------
    activity_exponent
        ``a``: exponent of the accessibility.
    gamma
        Power-law exponent of contact with distance (used without measured contacts).
    min_distance
        ``d_min`` (bp): distances below it count as ``d_min`` (the TSS's own bins).
    evidence_weight
        ``w``: weight of the model's evidence (0: activity x contact alone).
    """

    activity_exponent: float = 0.25
    gamma: float = 0.5
    min_distance: float = 2_000.0
    evidence_weight: float = 0.5

    def __post_init__(self) -> None:
        if not self.activity_exponent > 0:
            raise InputError(f"activity_exponent must be > 0, got {self.activity_exponent}")
        if self.gamma < 0:
            raise InputError(f"gamma must be >= 0, got {self.gamma}")
        if not self.min_distance > 0:
            raise InputError(f"min_distance must be > 0 bp, got {self.min_distance}")
        if self.evidence_weight < 0:
            raise InputError(f"evidence_weight must be >= 0, got {self.evidence_weight}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (recorded in the output's provenance)."""
        return asdict(self)


def power_law_contact(distance: np.ndarray, *, gamma: float, min_distance: float) -> np.ndarray:
    """Contact expected from distance alone: ``max(d, d_min) ** -gamma`` (float64, same shape).

    Examples
    --------
    >>> power_law_contact(np.array([0.0, 1000.0, 10_000.0]), gamma=1.0, min_distance=5000.0)
    array([0.0002, 0.0002, 0.0001])
    """
    d = np.maximum(np.asarray(distance, dtype=np.float64), float(min_distance))
    return np.power(d, -float(gamma))


def model_evidence(importance: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Each bin's mean |attribution| divided by its gene's largest: ``(n_genes, n_bins)`` in 0..1.

    Genes with no attribution at all get 0 everywhere.

    Examples
    --------
    >>> model_evidence(np.array([[1.0, 4.0, 2.0], [0.0, 0.0, 0.0]])).tolist()
    [[0.25, 1.0, 0.5], [0.0, 0.0, 0.0]]
    """
    imp = np.abs(np.asarray(importance, dtype=np.float64))
    if valid is not None:
        imp = np.where(valid, imp, 0.0)
    top = imp.max(axis=1, keepdims=True) if imp.size else np.zeros((imp.shape[0], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top > 0, imp / np.where(top > 0, top, 1.0), 0.0)


def contact_link_scores(
    activity: np.ndarray,
    distance: np.ndarray,
    *,
    params: ScoreParams | None = None,
    evidence: np.ndarray | None = None,
    contact: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-gene normalised link scores from activity, contact and model evidence.

    Parameters
    ----------
    activity
        ``(n_genes, n_bins)`` accessibility of each bin (mean over the chosen samples); negative or
        NaN values count as 0.
    distance
        ``(n_genes, n_bins)`` distance (bp) from the TSS base to the bin's middle.
    params
        Exponents and weight (default: the calibrated :class:`ScoreParams`).
    evidence
        ``(n_genes, n_bins)`` model evidence in 0..1 (:func:`model_evidence`); ``None``: none.
    contact
        ``(n_genes, n_bins)`` measured contact frequencies (replace the power law); NaN where the
        contact map has no value: the power law fills those.
    valid
        ``(n_genes, n_bins)`` bool, bins inside the chromosome; others score 0.

    Returns
    -------
    dict
        ``score`` (per-gene shares, each gene's valid bins sum to 1 unless all are 0), and the
        components ``activity``, ``contact``, ``evidence`` (all ``(n_genes, n_bins)`` float64).

    Examples
    --------
    Two open bins at the same distance on either side; the model's evidence favours the second:

    >>> p = ScoreParams(activity_exponent=1.0, gamma=1.0, min_distance=1000.0, evidence_weight=1.0)
    >>> out = contact_link_scores(np.array([[2.0, 0.0, 2.0]]), np.array([[5000.0, 0, 5000.0]]),
    ...                           params=p, evidence=np.array([[0.0, 0.0, 1.0]]))
    >>> out["score"].round(3).tolist()
    [[0.333, 0.0, 0.667]]
    """
    p = params or ScoreParams()
    a = np.nan_to_num(np.asarray(activity, dtype=np.float64), nan=0.0)
    a = np.clip(a, 0.0, None)
    d = np.asarray(distance, dtype=np.float64)
    if a.shape != d.shape:
        raise InputError(f"activity {a.shape} and distance {d.shape} differ in shape")
    c = power_law_contact(d, gamma=p.gamma, min_distance=p.min_distance)
    if contact is not None:
        measured = np.asarray(contact, dtype=np.float64)
        if measured.shape != a.shape:
            raise InputError(f"contact {measured.shape} and activity {a.shape} differ in shape")
        c = np.where(np.isfinite(measured), np.clip(measured, 0.0, None), c)
    e = (
        np.zeros_like(a)
        if evidence is None
        else np.clip(np.nan_to_num(np.asarray(evidence, dtype=np.float64)), 0.0, 1.0)
    )
    raw = np.power(a, p.activity_exponent) * c * (1.0 + p.evidence_weight * e)
    if valid is not None:
        raw = np.where(valid, raw, 0.0)
    total = raw.sum(axis=1, keepdims=True)
    score = np.where(total > 0, raw / np.where(total > 0, total, 1.0), 0.0)
    return {"score": score, "activity": a, "contact": c, "evidence": e}
