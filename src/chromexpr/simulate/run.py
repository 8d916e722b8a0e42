"""``simulate``: build the layout and the planted model, then stream every sample to disk.

Memory stays bounded: per-base signal exists for one sample at a time; what is kept across samples
is per peak (reads per universe peak for the count matrix, consensus bounds) or per gene (the latent
openness of the peaks the expression model reads).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.atomic import atomic_path, check_writable
from chromexpr.simulate.accessibility import (
    PeakUniverse,
    SampleObservation,
    build_universe,
    latent_openness,
    observe_sample,
    peak_shape,
)
from chromexpr.simulate.config import SimulationConfig
from chromexpr.simulate.design import SampleDesign, design_samples
from chromexpr.simulate.expression import (
    RegulatoryTruth,
    noise_free_log_expression,
    observed_log_expression,
    plant_links,
    to_tpm,
    trans_programme,
)
from chromexpr.simulate.layout import (
    chrom_offsets,
    chrom_sizes_for,
    gene_models,
    genes_from_tss_table,
    order_genes,
    select_genes,
    territory,
)
from chromexpr.simulate.lineage import lineage_tree
from chromexpr.simulate.streams import Stage, stream

logger = logging.getLogger("chromexpr")

#: Paths inside the output directory.
ANNOTATION = "annotation.gtf.gz"
CHROM_SIZES = "chrom.sizes"
BIGWIG_DIR = "bigwig"
PEAKS_DIR = "peaks"
COUNTS = "counts/consensus_peaks.featureCounts.txt"
CONSENSUS_BED = "counts/consensus_peaks.bed"
EXPRESSION = "expression/salmon.merged.gene_tpm.tsv"
SAMPLES = "samples.tsv"
SAMPLES_PEAKS = "samples_peaks.tsv"
TRUTH_LINKS = "truth/links.bedpe"
TRUTH_GENES = "truth/genes.tsv"
TRUTH_SAMPLES = "truth/samples.tsv"
TRUTH_PEAKS = "truth/peaks.tsv.gz"
TRUTH_NOISE_FREE = "truth/expression_noise_free.tsv"
TRUTH_EXPRESSION_ALL = "truth/expression_all.tsv"
TRUTH_LINEAGE = "truth/lineage.nwk"
TRUTH_PROGRAMME = "truth/programme.tsv"
PROVENANCE = "provenance.json"


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` wrote.

    Attributes
    ----------
    output_dir
        The output directory.
    config
        The parameters used.
    chroms
        Chromosomes of the layout, in output order.
    n_genes, n_samples, n_expression_samples
        Sizes.
    outlier
        Name of the outlier sample, if one was planted.
    peaks_per_sample
        Target called peaks per sample (``K``).
    mean_called
        Mean number of peaks called per sample.
    n_universe_peaks, n_consensus_peaks, n_links
        Candidate peaks, peaks called in at least one sample, planted enhancer-gene links.
    territory_mb
        Length of the merged TSS ± window regions (Mb).
    seconds
        Wall time.
    lineage
        The groups' lineage tree in Newick format (a star with ``lineage="independent"``).
    """

    output_dir: Path
    config: SimulationConfig
    chroms: tuple[str, ...]
    n_genes: int
    n_samples: int
    n_expression_samples: int
    outlier: str | None
    peaks_per_sample: int
    mean_called: float
    n_universe_peaks: int
    n_consensus_peaks: int
    n_links: int
    territory_mb: float
    seconds: float
    lineage: str = ""

    def summary(self) -> str:
        """One paragraph for the log."""
        outlier = f"outlier sample {self.outlier}" if self.outlier else "no outlier sample"
        related = (
            "related by a lineage tree"
            if self.config.lineage == "tree"
            and self.config.n_groups > 2
            and self.config.lineage_strength > 0
            else "unrelated"
        )
        return (
            f"simulated {self.n_genes} genes on {len(self.chroms)} "
            f"chromosome{'s' if len(self.chroms) != 1 else ''} "
            f"({', '.join(self.chroms)}; {self.territory_mb:.0f} Mb of TSS windows) and "
            f"{self.n_samples} samples in {self.config.n_groups} groups ({related}; "
            f"{self.n_expression_samples} with expression; {outlier}): "
            f"{self.n_universe_peaks} candidate peaks, {self.mean_called:.0f} called per sample "
            f"on average, {self.n_consensus_peaks} consensus peaks, "
            f"{self.n_links} planted enhancer-gene links; "
            f"wrote {', '.join(self.config.formats)}, expression and truth to {self.output_dir} "
            f"in {self.seconds:.1f} s."
        )


def _load_layout(
    config: SimulationConfig,
) -> tuple[pd.DataFrame, dict[str, int], list[str], list[Path]]:
    """Genes (sorted), known chromosome sizes, chromosome order, and input files."""
    from chromexpr.io.simulation_files import read_bundled_chrom_sizes, read_bundled_genes

    known = read_bundled_chrom_sizes()
    if config.annotation is None:
        genes = read_bundled_genes()
        order = list(known)
        return order_genes(genes, order), known, order, []
    from chromexpr.annotation.tss import load_tss
    from chromexpr.naming import natural_sorted

    genes = genes_from_tss_table(load_tss(config.annotation))
    order = natural_sorted(genes["chrom"])
    return order_genes(genes, order), known, order, [Path(config.annotation)]


def _local(universe: PeakUniverse, idx: np.ndarray, coords: np.ndarray) -> np.ndarray:
    return coords - universe.chrom_start[idx]


def _narrowpeak_frame(
    universe: PeakUniverse, obs: SampleObservation, sample: str, config: SimulationConfig
) -> pd.DataFrame:
    idx = obs.called
    start = _local(universe, idx, obs.start)
    score = np.minimum(np.floor(10.0 * obs.neg_log10_q), 1000).astype(np.int64)
    return pd.DataFrame(
        {
            "chrom": np.asarray(universe.chroms, dtype=object)[universe.chrom_index[idx]],
            "start": start,
            "end": _local(universe, idx, obs.end),
            "name": [f"{sample}_peak_{i}" for i in range(1, idx.shape[0] + 1)],
            "score": score,
            "strand": ".",
            "signal_value": obs.signal[idx] / config.background_signal,
            "p_value": obs.neg_log10_p,
            "q_value": obs.neg_log10_q,
            "peak": obs.summit - obs.start,
        }
    )


def _write_sample(
    out: Path,
    universe: PeakUniverse,
    obs: SampleObservation,
    sample: str,
    chrom_sizes: dict[str, int],
    config: SimulationConfig,
) -> None:
    from chromexpr.io.bigwig_writer import write_bigwig
    from chromexpr.io.simulation_files import write_narrowpeak

    if "bigwig" in config.formats:
        idx = obs.called
        rows, starts, ends, values = peak_shape(
            obs.start, obs.end, obs.summit, obs.signal[idx], levels=config.summit_levels
        )
        peak = idx[rows]
        chrom_names = np.asarray(universe.chroms, dtype=object)[universe.chrom_index[peak]]
        offset = universe.chrom_start[peak]
        write_bigwig(
            out / BIGWIG_DIR / f"{sample}.bw",
            chrom_sizes,
            chrom_names,
            starts - offset,
            ends - offset,
            values,
        )
    if "peaks" in config.formats:
        write_narrowpeak(
            out / PEAKS_DIR / f"{sample}.narrowPeak",
            _narrowpeak_frame(universe, obs, sample, config),
        )


@dataclass(frozen=True, eq=False)
class _SampleContext:
    """Everything a sample needs (pickled once per task when samples run in worker processes)."""

    out: Path
    universe: PeakUniverse
    design: SampleDesign
    tracked: np.ndarray
    chrom_sizes: dict[str, int]
    config: SimulationConfig


@dataclass(frozen=True, eq=False)
class _SampleOutcome:
    """What the main process keeps of one sample: per-peak and per-tracked-peak values only."""

    tracked_openness: np.ndarray
    counts: np.ndarray | None
    called: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _run_sample(context: _SampleContext, s: int) -> _SampleOutcome:
    """Draw sample ``s`` from its stream, write its files, return what cross-sample outputs need."""
    config, design, universe = context.config, context.design, context.universe
    rng = stream(config.seed, Stage.SAMPLE, s)
    openness = latent_openness(universe, int(design.group_index[s]), config, rng)
    tracked_openness = openness[context.tracked]
    obs = observe_sample(
        universe,
        openness,
        depth=float(design.depth[s]),
        n_called=int(design.n_called[s]),
        config=config,
        rng=rng,
    )
    _write_sample(context.out, universe, obs, design.names[s], context.chrom_sizes, config)
    return _SampleOutcome(
        tracked_openness=tracked_openness,
        counts=obs.counts if "counts" in config.formats else None,
        called=obs.called,
        start=obs.start,
        end=obs.end,
    )


#: Below this many called peaks in all (samples x K), samples run in this process.
PARALLEL_MIN_PEAKS = 2_000_000
#: Worker processes used by default for large simulations (each holds one sample at a time).
DEFAULT_WORKERS = 4


def _n_workers(workers: int | None, n_samples: int, peaks_per_sample: int) -> int:
    if workers is None:
        if n_samples * peaks_per_sample < PARALLEL_MIN_PEAKS:
            return 1
        workers = min(DEFAULT_WORKERS, os.cpu_count() or 1)
    return max(1, min(int(workers), n_samples))


@contextmanager
def _sample_outcomes(
    context: _SampleContext, n_samples: int, workers: int
) -> Iterator[Iterator[_SampleOutcome]]:
    """Outcomes of samples ``0..n-1`` in order, computed here or in spawned worker processes."""
    work = partial(_run_sample, context)
    if workers == 1:
        yield map(work, range(n_samples))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool.map(work, range(n_samples))


def _links_frame(
    genes: pd.DataFrame, universe: PeakUniverse, truth: RegulatoryTruth
) -> pd.DataFrame:
    """BEDPE rows of the planted links (lower coordinate first)."""
    links = truth.links
    g = links["gene"].to_numpy()
    p = links["peak"].to_numpy()
    chrom = np.asarray(universe.chroms, dtype=object)[universe.chrom_index[p]]
    e_start = universe.start[p] - universe.chrom_start[p]
    e_end = universe.end[p] - universe.chrom_start[p]
    tss = genes["tss"].to_numpy(dtype=np.int64)[g]
    strand = genes["strand"].to_numpy()[g]
    enhancer_first = e_start < tss
    gene_id = genes["gene_id"].to_numpy()[g]
    gene_name = genes["gene_name"].to_numpy()[g]
    return pd.DataFrame(
        {
            "chrom1": chrom,
            "start1": np.where(enhancer_first, e_start, tss),
            "end1": np.where(enhancer_first, e_end, tss + 1),
            "chrom2": chrom,
            "start2": np.where(enhancer_first, tss, e_start),
            "end2": np.where(enhancer_first, tss + 1, e_end),
            "name": [
                f"{n}|{c}:{s}-{e}"
                for n, c, s, e in zip(gene_name, chrom, e_start, e_end, strict=True)
            ],
            "score": np.abs(links["weight"].to_numpy()),
            "strand1": np.where(enhancer_first, ".", strand),
            "strand2": np.where(enhancer_first, strand, "."),
            "gene_id": gene_id,
            "gene_name": gene_name,
            "effect": links["effect"].to_numpy(),
            "distance": links["distance"].to_numpy(),
        }
    )


def _genes_frame(
    genes: pd.DataFrame,
    universe: PeakUniverse,
    truth: RegulatoryTruth,
    y_free: np.ndarray,
    programme: np.ndarray,
    design: SampleDesign,
    config: SimulationConfig,
) -> pd.DataFrame:
    has = truth.promoter >= 0
    pidx = np.maximum(truth.promoter, 0)
    p_start = np.where(has, universe.start[pidx] - universe.chrom_start[pidx], -1)
    p_end = np.where(has, universe.end[pidx] - universe.chrom_start[pidx], -1)
    n_links = np.bincount(truth.links["gene"].to_numpy(), minlength=truth.n_genes)
    expr = y_free[:, design.has_expression]
    return pd.DataFrame(
        {
            "gene_id": genes["gene_id"].to_numpy(),
            "baseline": truth.baseline,
            "promoter_weight": truth.promoter_weight,
            "noise_sd": truth.noise_sd,
            "reference_level": truth.reference_level,
            "gene_name": genes["gene_name"].to_numpy(),
            "chrom": genes["chrom"].to_numpy(),
            "tss": genes["tss"].to_numpy(),
            "strand": genes["strand"].to_numpy(),
            "promoter_start": p_start,
            "promoter_end": p_end,
            "n_links": n_links,
            "silent": truth.reference_level == config.silent_level,
            "noise_free_sd": expr.std(axis=1) if expr.shape[1] else np.zeros(truth.n_genes),
            "cis_sd": (y_free - programme).std(axis=1),
            "programme_sd": programme.std(axis=1),
        }
    )


def _programme_frame(
    genes: pd.DataFrame, programme: np.ndarray, design: SampleDesign
) -> pd.DataFrame:
    """``truth/programme.tsv``: gene_id, gene_name and the programme ``t[g, k]`` of each group."""
    frame = pd.DataFrame(
        {"gene_id": genes["gene_id"].to_numpy(), "gene_name": genes["gene_name"].to_numpy()}
    )
    names = list(dict.fromkeys(design.groups))  # group order: group k is the k-th name
    for k, name in enumerate(names):
        frame[name] = programme[:, k]
    return frame


def simulate(
    config: SimulationConfig,
    output_dir: str | Path,
    *,
    force: bool = False,
    workers: int | None = None,
) -> SimulationResult:
    """Simulate paired accessibility and expression with planted regulatory truth.

    Parameters
    ----------
    config
        Every parameter (see :class:`SimulationConfig` and ``docs/simulation.md``).
    output_dir
        Directory to create; it is built in a temporary sibling and renamed into place at the end.
    force
        Replace an existing ``output_dir``.
    workers
        Processes that draw and write samples (outputs do not depend on it). ``None``: 1 for small
        simulations, else ``min(4, CPUs)``; each worker holds one sample's arrays at a time.
        Workers are spawned, so a script calling this with several workers needs the usual
        ``if __name__ == "__main__":`` guard.

    Returns
    -------
    SimulationResult
        Sizes and a summary of what was written.

    Raises
    ------
    chromexpr.errors.OutputExistsError
        ``output_dir`` exists and ``force`` is false.
    chromexpr.errors.InputError
        The layout has fewer genes than asked for, or the annotation cannot be read.
    """
    from chromexpr.io.simulation_files import (
        make_folders,
        write_bedpe,
        write_chrom_sizes,
        write_consensus_bed,
        write_expression_matrix,
        write_featurecounts,
        write_gtf,
        write_json,
        write_table,
        write_text,
    )
    from chromexpr.log import track
    from chromexpr.provenance import record

    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    check_writable(output_dir, force=force)
    seed = config.seed

    all_genes, known_sizes, chrom_order, inputs = _load_layout(config)
    genes = select_genes(
        all_genes,
        config.n_genes,
        genes_per_segment=config.genes_per_segment,
        rng=stream(seed, Stage.LAYOUT),
    )
    chrom_sizes = chrom_sizes_for(genes, known_sizes, window=config.window, chrom_order=chrom_order)
    terr_start, terr_end = territory(genes, chrom_sizes, window=config.window)
    territory_mb = float((terr_end - terr_start).sum()) / 1e6
    k = config.peaks_per_sample or max(1, round(config.peak_density_per_mb * territory_mb))
    design = design_samples(config, peaks_per_sample=k, rng=stream(seed, Stage.DESIGN))
    tree = lineage_tree(config.lineage, config.n_groups, strength=config.lineage_strength)
    group_names = list(dict.fromkeys(design.groups))
    universe, promoter = build_universe(
        genes,
        chrom_sizes,
        terr_start,
        terr_end,
        n_peaks=math.ceil(k * config.universe_factor),
        tree=tree,
        config=config,
        rng=stream(seed, Stage.UNIVERSE),
    )
    offsets = chrom_offsets(chrom_sizes)
    tss_global = genes["chrom"].map(offsets).to_numpy(dtype=np.int64) + genes["tss"].to_numpy(
        np.int64
    )
    truth = plant_links(
        genes, tss_global, universe, promoter, config=config, rng=stream(seed, Stage.LINKS)
    )
    models = gene_models(
        genes,
        chrom_sizes,
        length_median=config.gene_length_median,
        length_sigma=config.gene_length_sigma,
        rng=stream(seed, Stage.GENE_MODELS),
    )
    logger.info(
        "layout: %d genes on %s; %d candidate peaks; %d planted links; %d peaks per sample",
        len(genes),
        ", ".join(chrom_sizes),
        universe.n_peaks,
        len(truth.links),
        k,
    )

    n_samples = design.n_samples
    tracked = np.empty((truth.tracked.shape[0], n_samples), dtype=np.float64)
    want_counts = "counts" in config.formats
    counts = np.zeros((universe.n_peaks, n_samples) if want_counts else (0, 0), dtype=np.int32)
    cons_start = np.full(universe.n_peaks, np.iinfo(np.int64).max, dtype=np.int64)
    cons_end = np.full(universe.n_peaks, -1, dtype=np.int64)
    n_called = np.zeros(n_samples, dtype=np.int64)
    called_in = np.zeros(universe.n_peaks, dtype=np.int64)

    with atomic_path(output_dir, force=force) as tmp:
        folders = {
            "truth": True,
            "expression": True,
            BIGWIG_DIR: "bigwig" in config.formats,
            PEAKS_DIR: "peaks" in config.formats,
            "counts": want_counts,
        }
        make_folders(tmp, [name for name, wanted in folders.items() if wanted])
        write_gtf(tmp / ANNOTATION, models)
        write_chrom_sizes(tmp / CHROM_SIZES, chrom_sizes)

        context = _SampleContext(
            out=tmp,
            universe=universe,
            design=design,
            tracked=truth.tracked,
            chrom_sizes=chrom_sizes,
            config=config,
        )
        n_workers = _n_workers(workers, n_samples, k)
        t_samples = time.perf_counter()
        logger.debug(
            "setup took %.1f s; drawing %d samples in %d process(es)",
            t_samples - t0,
            n_samples,
            n_workers,
        )
        with _sample_outcomes(context, n_samples, n_workers) as outcomes:
            for s, outcome in enumerate(track(outcomes, "simulating samples", total=n_samples)):
                tracked[:, s] = outcome.tracked_openness
                idx = outcome.called
                cons_start[idx] = np.minimum(cons_start[idx], outcome.start)
                cons_end[idx] = np.maximum(cons_end[idx], outcome.end)
                n_called[s] = idx.shape[0]
                called_in[idx] += 1
                if outcome.counts is not None:
                    counts[:, s] = outcome.counts

        logger.debug(
            "samples took %.1f s (%.2f s each)",
            time.perf_counter() - t_samples,
            (time.perf_counter() - t_samples) / n_samples,
        )
        consensus = np.flatnonzero(cons_end >= 0)
        cons_names = np.full(universe.n_peaks, "", dtype=object)
        cons_names[consensus] = [f"Interval_{i}" for i in range(1, consensus.shape[0] + 1)]
        if want_counts:
            regions = pd.DataFrame(
                {
                    "chrom": np.asarray(universe.chroms, dtype=object)[
                        universe.chrom_index[consensus]
                    ],
                    "start": cons_start[consensus] - universe.chrom_start[consensus],
                    "end": cons_end[consensus] - universe.chrom_start[consensus],
                    "name": cons_names[consensus],
                }
            )
            write_consensus_bed(tmp / CONSENSUS_BED, regions)
            counts = counts[consensus]
            write_featurecounts(tmp / COUNTS, regions, counts, design.names)
            del counts

        y_cis = noise_free_log_expression(truth, tracked)
        programme = trans_programme(
            y_cis,
            design.group_index,
            tree,
            share=config.programme_share,
            rng=stream(seed, Stage.PROGRAMME),
        )
        per_sample_programme = programme[:, design.group_index]
        y_free = y_cis + per_sample_programme
        y_obs = observed_log_expression(
            truth, y_free, design, config=config, rng=stream(seed, Stage.EXPRESSION)
        )
        tpm_obs = to_tpm(y_obs)
        gene_ids = genes["gene_id"].tolist()
        gene_names = genes["gene_name"].tolist()
        expr_cols = np.flatnonzero(design.has_expression)
        write_expression_matrix(
            tmp / EXPRESSION,
            gene_ids,
            gene_names,
            [design.names[i] for i in expr_cols],
            tpm_obs[:, expr_cols],
        )
        write_expression_matrix(
            tmp / TRUTH_EXPRESSION_ALL, gene_ids, gene_names, design.names, tpm_obs
        )
        write_expression_matrix(
            tmp / TRUTH_NOISE_FREE, gene_ids, gene_names, design.names, to_tpm(y_free)
        )
        write_bedpe(tmp / TRUTH_LINKS, _links_frame(genes, universe, truth))
        write_table(
            tmp / TRUTH_GENES,
            _genes_frame(genes, universe, truth, y_free, per_sample_programme, design, config),
        )
        write_table(tmp / TRUTH_PROGRAMME, _programme_frame(genes, programme, design))
        newick = tree.newick(group_names)
        write_text(tmp / TRUTH_LINEAGE, newick + "\n")
        write_table(tmp / TRUTH_SAMPLES, design.frame())
        peaks_truth = universe.frame()
        peaks_truth["consensus_name"] = cons_names
        peaks_truth["samples_called"] = called_in
        write_table(tmp / TRUTH_PEAKS, peaks_truth)

        sheet = pd.DataFrame({"sample": design.names, "path": "", "group": design.groups})
        if "bigwig" in config.formats:
            sheet["path"] = [f"{BIGWIG_DIR}/{n}.bw" for n in design.names]
            write_table(tmp / SAMPLES, sheet)
        if "peaks" in config.formats:
            sheet["path"] = [f"{PEAKS_DIR}/{n}.narrowPeak" for n in design.names]
            write_table(tmp / SAMPLES_PEAKS, sheet)

        result = SimulationResult(
            output_dir=output_dir,
            config=config,
            chroms=tuple(chrom_sizes),
            n_genes=len(genes),
            n_samples=n_samples,
            n_expression_samples=int(design.has_expression.sum()),
            outlier=design.names[design.outlier] if design.outlier is not None else None,
            peaks_per_sample=k,
            mean_called=float(n_called.mean()),
            n_universe_peaks=universe.n_peaks,
            n_consensus_peaks=int(consensus.shape[0]),
            n_links=len(truth.links),
            territory_mb=territory_mb,
            seconds=time.perf_counter() - t0,
            lineage=newick,
        )
        provenance = record(step="simulate", parameters=config.to_dict(), inputs=inputs)
        provenance["derived"] = {
            "chromosomes": list(chrom_sizes),
            "territory_mb": round(territory_mb, 3),
            "peaks_per_sample": k,
            "universe_peaks": universe.n_peaks,
            "consensus_peaks": int(consensus.shape[0]),
            "links": len(truth.links),
            "outlier": result.outlier,
            "lineage": newick,
        }
        write_json(tmp / PROVENANCE, provenance)
    return result
