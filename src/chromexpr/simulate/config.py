"""Every parameter of the simulator, in one frozen dataclass that round-trips through JSON.

The generative model these parameters drive is stated in ``docs/simulation.md``; the attribute docs
below name the symbol each parameter has there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from chromexpr.errors import InputError
from chromexpr.simulate.lineage import LINEAGES, Lineage

Format = Literal["bigwig", "peaks", "counts"]
#: Accessibility outputs ``--format`` can choose, in the order they are written.
FORMATS: tuple[Format, ...] = get_args(Format)


def parse_formats(text: str | tuple[str, ...] | list[str]) -> tuple[Format, ...]:
    """``"bigwig,peaks"`` -> ``("bigwig", "peaks")`` (canonical order, duplicates dropped).

    Examples
    --------
    >>> parse_formats("peaks, bigwig")
    ('bigwig', 'peaks')
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise InputError(
            f"unknown output format {unknown[0]!r}", fix=f"choose from {', '.join(FORMATS)}"
        )
    if not wanted:
        raise InputError("no output format given", fix=f"choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in wanted)


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of ``chromexpr simulate``. Defaults give a quick demo (about 5 s).

    Attributes
    ----------
    n_genes
        Genes simulated (a contiguous subset of the layout, see :mod:`chromexpr.simulate.layout`).
    n_samples, n_groups
        Samples, split into ``n_groups`` cell-type families of near-equal size.
    n_no_expression
        Samples with accessibility only: their expression is written to ``truth/`` only.
    peaks_per_sample
        Target number of called peaks per sample (``K``); ``None``: ``peak_density_per_mb`` times
        the simulated territory.
    seed
        Random seed; the same seed gives byte-identical outputs (except the provenance time stamp).
    annotation
        GTF/GFF3/BED path whose genes replace the bundled hg38 layout (``None``: bundled layout).
    formats
        Accessibility outputs: any of ``bigwig``, ``peaks``, ``counts``.
    outlier
        Plant one outlier sample (needs at least 3 samples with expression).
    lineage
        How groups are related: ``"tree"`` (a balanced binary lineage tree over the groups in
        order, so ``ct01`` and ``ct02`` are siblings) or ``"independent"`` (unrelated groups).
    lineage_strength
        ``rho``: covariance of sibling groups' latent traits on the tree, in ``[0, 1]`` (groups
        that meet only at the root share nothing). Unused with ``lineage="independent"``.
    programme_share
        ``pi``: share of each gene's noise-free variance across samples that comes from a
        trans-acting expression programme evolved along the lineage, in ``[0, 1)``.

    window
        Half-width of each gene's regulatory window (bp; the TSS ± ``window`` region).
    genes_per_segment
        Target genes per chromosome segment when choosing a subset of the layout.
    gene_length_median, gene_length_sigma
        Log-normal gene body length (bp) for the GTF (the layout holds TSSs only).

    peak_density_per_mb
        Called peaks per sample per Mb of territory, used when ``peaks_per_sample`` is ``None``.
    universe_factor
        Universe size / ``K``: each peak is called in about ``1 / universe_factor`` of the samples.
    promoter_fraction
        Fraction of TSS clusters with a promoter peak.
    tss_cluster_distance
        TSSs closer than this (bp) share one promoter peak.
    promoter_width_median, promoter_width_sigma, distal_width_median, distal_width_sigma
        Log-normal peak widths (bp), clipped to ``[min_width, max_width]``.
    min_gap
        Minimum distance between two peaks of the universe (bp).
    near_gene_fraction, near_gene_scale
        Fraction of distal peaks placed at a Laplace(``near_gene_scale``) offset from a random TSS
        (the rest are uniform over the territory), so peak density follows gene density.
    promoter_strength_median, promoter_strength_sigma, distal_strength_median, distal_strength_sigma
        Log-normal peak strengths ``s_p`` (signal units).
    promoter_components, distal_components
        Probabilities of the (shared, group-specific, sample-specific) variability component.
    shared_sd
        Log-scale sd of a shared peak across samples.
    group_on_probability, group_off_level, group_sd, within_group_sd
        Group-specific peaks are on in each group with this probability (at least one group on and
        one off); off groups scale the peak by ``group_off_level``; per-group log-levels get N(0,
        ``group_sd``) jitter, samples N(0, ``within_group_sd``) around their group's level. With
        ``lineage="tree"`` the switches and the jitter are correlated along the lineage tree;
        ``group_on_probability`` stays the probability of being on in each group.
    sample_sd
        Log-scale sd of a sample-specific peak.
    measurement_sd
        Log-scale technical noise between the latent openness and the observed signal.
    depth_sd
        Log-scale sd of the per-sample depth factor.
    peak_count_depth_exponent
        Sample ``s`` calls ``round(K * depth_s ** exponent)`` peaks.
    summit_levels
        Steps of the per-base peak shape (rising to the summit and falling back).
    boundary_jitter
        Per-sample jitter (bp) of called peak boundaries (< ``min_gap / 2`` keeps peaks disjoint).
    background_signal
        Background signal level: ``signalValue`` (fold enrichment) = summit height / this.
    reads_per_signal_bp, background_reads_per_bp
        Expected featureCounts reads per unit of signal area and per bp of background.

    links_per_gene
        Mean number of planted enhancer links beyond the first (``n_g = 1 + Poisson``).
    link_selection_scale
        Linked enhancers are drawn with weights ``exp(-|d| / scale)`` within the window (bp).
    link_decay
        ``d0`` of the effect decay ``exp(-|d| / d0)`` (bp).
    negative_fraction
        Fraction of links with a negative effect (repressive).
    effect_median, effect_sigma
        Log-normal ``|beta|`` (log2 expression per unit of ``log1p`` openness).
    promoter_weight_median, promoter_weight_sigma
        Log-normal promoter weight ``w_g``.
    reference_mean, reference_sd
        Normal reference level ``r_g`` (log2 scale): the noise-free ``y`` of a gene whose elements
        all sit at their strength; the intercept ``b_g`` is derived from it.
    silent_fraction, silent_level
        Fraction of genes with reference level ``silent_level`` (not expressed anywhere).
    noise_sd_median, noise_sd_sigma
        Log-normal per-gene noise sd ``sigma_g`` (log2 scale).
    outlier_noise_sd
        Extra noise sd added to the outlier sample's expression.
    """

    n_genes: int = 400
    n_samples: int = 24
    n_groups: int = 4
    n_no_expression: int = 2
    peaks_per_sample: int | None = None
    seed: int = 0
    annotation: str | None = None
    formats: tuple[str, ...] = FORMATS
    outlier: bool = True
    lineage: Lineage = "tree"
    lineage_strength: float = 0.95
    programme_share: float = 0.5

    window: int = 1_000_000
    genes_per_segment: int = 150
    gene_length_median: float = 25_000.0
    gene_length_sigma: float = 1.0

    peak_density_per_mb: float = 50.0
    universe_factor: float = 2.0
    promoter_fraction: float = 0.85
    tss_cluster_distance: int = 1_000
    promoter_width_median: float = 1_000.0
    promoter_width_sigma: float = 0.3
    distal_width_median: float = 450.0
    distal_width_sigma: float = 0.5
    min_width: int = 150
    max_width: int = 2_000
    min_gap: int = 100
    near_gene_fraction: float = 0.5
    near_gene_scale: float = 50_000.0
    promoter_strength_median: float = 12.0
    promoter_strength_sigma: float = 0.6
    distal_strength_median: float = 4.0
    distal_strength_sigma: float = 0.8
    promoter_components: tuple[float, float, float] = (0.65, 0.30, 0.05)
    distal_components: tuple[float, float, float] = (0.40, 0.45, 0.15)
    shared_sd: float = 0.2
    group_on_probability: float = 0.4
    group_off_level: float = 0.1
    group_sd: float = 0.3
    within_group_sd: float = 0.25
    sample_sd: float = 0.8
    measurement_sd: float = 0.15
    depth_sd: float = 0.3
    peak_count_depth_exponent: float = 0.5
    summit_levels: int = 4
    boundary_jitter: int = 40
    background_signal: float = 0.5
    reads_per_signal_bp: float = 0.05
    background_reads_per_bp: float = 0.01

    links_per_gene: float = 2.0
    link_selection_scale: float = 30_000.0
    link_decay: float = 100_000.0
    negative_fraction: float = 0.2
    effect_median: float = 1.0
    effect_sigma: float = 0.3
    promoter_weight_median: float = 1.0
    promoter_weight_sigma: float = 0.3
    reference_mean: float = 4.0
    reference_sd: float = 1.5
    silent_fraction: float = 0.05
    silent_level: float = -10.0
    noise_sd_median: float = 0.25
    noise_sd_sigma: float = 0.35
    outlier_noise_sd: float = 0.5

    def __post_init__(self) -> None:
        # Normalise containers so that a config read back from JSON compares equal.
        object.__setattr__(self, "formats", parse_formats(tuple(self.formats)))
        for name in ("promoter_components", "distal_components"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, message: str, fix: str | None = None) -> None:
            if not ok:
                raise InputError(message, fix=fix)

        need(self.n_genes >= 1, f"--genes must be at least 1 (got {self.n_genes})")
        need(self.n_samples >= 1, f"--samples must be at least 1 (got {self.n_samples})")
        need(self.n_groups >= 1, f"--groups must be at least 1 (got {self.n_groups})")
        need(
            self.n_groups <= self.n_samples,
            f"--groups ({self.n_groups}) exceeds --samples ({self.n_samples})",
            "every group needs at least one sample",
        )
        need(
            0 <= self.n_no_expression < self.n_samples,
            f"--no-expression must be in [0, {self.n_samples - 1}] (got {self.n_no_expression})",
            "at least one sample needs expression",
        )
        need(
            self.peaks_per_sample is None or self.peaks_per_sample >= 1,
            f"--peaks-per-sample must be at least 1 (got {self.peaks_per_sample})",
        )
        need(0 <= self.seed < 2**63, f"--seed must be in [0, 2^63) (got {self.seed})")
        need(
            self.lineage in LINEAGES,
            f"unknown --lineage {self.lineage!r}",
            f"choose from {', '.join(LINEAGES)}",
        )
        need(
            0.0 <= self.lineage_strength <= 1.0,
            f"--lineage-strength must be in [0, 1] (got {self.lineage_strength})",
        )
        need(
            0.0 <= self.programme_share < 1.0,
            f"--programme-share must be in [0, 1) (got {self.programme_share})",
        )
        need(self.window >= 1_000, f"window must be at least 1000 bp (got {self.window})")
        need(self.genes_per_segment >= 1, "genes_per_segment must be at least 1")
        need(self.universe_factor >= 1.0, "universe_factor must be at least 1")
        need(self.peak_density_per_mb > 0, "peak_density_per_mb must be positive")
        for name in (
            "promoter_fraction",
            "near_gene_fraction",
            "group_on_probability",
            "negative_fraction",
            "silent_fraction",
        ):
            value = getattr(self, name)
            need(0.0 <= value <= 1.0, f"{name} must be in [0, 1] (got {value})")
        for name in ("promoter_components", "distal_components"):
            probs = getattr(self, name)
            sums_to_one = math.isclose(sum(probs), 1.0, abs_tol=1e-9)
            need(
                len(probs) == 3 and min(probs) >= 0 and sums_to_one,
                f"{name} must be 3 probabilities (shared, group, sample) summing to 1 "
                f"(got {probs})",
            )
        need(0 < self.min_width <= self.max_width, "need 0 < min_width <= max_width")
        need(self.min_gap >= 2, "min_gap must be at least 2 bp")
        need(
            0 <= 2 * self.boundary_jitter < self.min_gap,
            "boundary_jitter must be below min_gap / 2 (called peaks must stay disjoint)",
        )
        need(1 <= self.summit_levels <= 32, "summit_levels must be in [1, 32]")
        need(0 < self.group_off_level <= 1, "group_off_level must be in (0, 1]")
        need(self.background_signal > 0, "background_signal must be positive")
        for name in (
            "gene_length_median",
            "promoter_width_median",
            "distal_width_median",
            "near_gene_scale",
            "promoter_strength_median",
            "distal_strength_median",
            "link_selection_scale",
            "link_decay",
            "effect_median",
            "promoter_weight_median",
            "noise_sd_median",
        ):
            need(getattr(self, name) > 0, f"{name} must be positive")
        for name in (
            "gene_length_sigma",
            "promoter_width_sigma",
            "distal_width_sigma",
            "promoter_strength_sigma",
            "distal_strength_sigma",
            "shared_sd",
            "group_sd",
            "within_group_sd",
            "sample_sd",
            "measurement_sd",
            "depth_sd",
            "effect_sigma",
            "promoter_weight_sigma",
            "reference_sd",
            "noise_sd_sigma",
            "outlier_noise_sd",
            "links_per_gene",
            "reads_per_signal_bp",
            "background_reads_per_bp",
            "peak_count_depth_exponent",
        ):
            need(getattr(self, name) >= 0, f"{name} must not be negative")

    @property
    def n_expression_samples(self) -> int:
        """Samples whose expression goes to the expression matrix."""
        return self.n_samples - self.n_no_expression

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults.

        Examples
        --------
        >>> c = SimulationConfig(n_genes=10, formats=("peaks",))
        >>> SimulationConfig.from_dict(c.to_dict()) == c
        True
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown simulation parameter {unknown[0]!r}")
        values = dict(data)
        for key in ("formats", "promoter_components", "distal_components"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_json(self) -> str:
        """The configuration as a JSON object (keys in field order)."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SimulationConfig:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"simulation parameters are not valid JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise InputError("simulation parameters must be a JSON object")
        return cls.from_dict(data)
