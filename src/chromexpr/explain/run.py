"""``chromexpr attribute``: attributions of a model over a dataset, as genome-browser tracks.

Streaming order: chromosome by chromosome (in chromosome-size order), the chosen samples in batches
of ``batch_size`` (gene, sample) rows. Memory is bounded by one chromosome's genes x bins (a few
accumulators) plus one batch; tracks go to per-track part files first and become bigWigs at the end,
so neither memory nor the number of open files grows with the number of samples.

Output directory (written atomically)::

    attribution.json   options, combine rule, provenance, file list
    tracks/*.bw        one bigWig per sample (or per group with per_group=True) + tracks/index.tsv
    links.bedpe        top bins per gene (BEDPE, lower coordinate first)
    links.interact     the same links as UCSC interact text (bed5+13) with a track line
    links.interact.bed the same rows without it, sorted for ``bedToBigBed`` (bigInteract)
    interact.as        autoSql for ``bedToBigBed -type=bed5+13 -as=interact.as``
    profile.tsv        mean |attribution| by bin offset, overall (group "all") and per group
    per_gene.tsv       per gene: total attribution, top bins and their share of it
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from chromexpr.atomic import atomic_path, check_writable
from chromexpr.binning.binner import BinSpec
from chromexpr.dataset.store import Dataset
from chromexpr.errors import InputError
from chromexpr.explain.attribution import (
    Attributable,
    AttributionOptions,
    Attributor,
    BaselineKind,
    Method,
    Target,
    attribute_pairs,
)
from chromexpr.explain.contact import (
    CALIBRATION,
    LinkScore,
    ScoreParams,
    contact_link_scores,
    model_evidence,
    power_law_contact,
)
from chromexpr.explain.coordinates import bin_intervals, bin_midpoints
from chromexpr.explain.links import (
    INTERACT_AS,
    interact_track_line,
    links_table,
    to_bedpe,
    to_interact,
)
from chromexpr.explain.summaries import ProfileAccumulator, per_gene_table, top_bins
from chromexpr.explain.tracks import COMBINE_RULES, Combine, Segmentation, resample
from chromexpr.log import logger, progress_bar
from chromexpr.naming import strip_version

__all__ = ["AttributionPaths", "attribute", "select_genes", "select_samples"]

FORMAT = "chromexpr-attribution"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class AttributionPaths:
    """Where :func:`attribute` wrote each output."""

    directory: Path
    tracks: tuple[Path, ...]
    track_index: Path
    links_bedpe: Path
    links_interact: Path
    interact_as: Path
    profile: Path
    per_gene: Path
    provenance: Path
    links_interact_bed: Path | None = None


@dataclass(frozen=True)
class _Unit:
    """One output track: a sample, or a group whose samples' attributions are averaged."""

    name: str
    kind: str
    group: str
    positions: np.ndarray


def select_samples(dataset: Dataset, samples: Sequence[str] | None) -> np.ndarray:
    """Positions of the chosen samples (all when ``None``), in order; unknown names raise, and so
    does a dataset without a complete sample (its outputs would be empty)."""
    if dataset.n_samples == 0:
        raise InputError(
            "the dataset has no complete sample",
            path=dataset.path,
            fix="finish binning it: rerun the same 'chromexpr bin' command to resume",
        )
    if samples is None:
        return np.arange(dataset.n_samples, dtype=np.int64)
    names = list(dict.fromkeys(samples))
    if not names:
        raise InputError("no samples selected")
    return dataset.sample_position(names)


def select_genes(dataset: Dataset, genes: Sequence[str] | None) -> np.ndarray:
    """Indices of the chosen genes, in dataset order.

    Each entry is matched to a gene id, then to a gene id without its Ensembl version, then to a
    gene name (every gene of that name). Unknown entries raise InputError.
    """
    if genes is None:
        return np.arange(dataset.n_genes, dtype=np.int64)
    table = dataset.genes
    by_id = {g: i for i, g in enumerate(table["gene_id"].astype(str))}
    by_stripped = {strip_version(g): i for i, g in enumerate(table["gene_id"].astype(str))}
    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(table["gene_name"].astype(str)):
        by_name.setdefault(name, []).append(i)
    chosen: set[int] = set()
    missing: list[str] = []
    for entry in genes:
        if entry in by_id:
            chosen.add(by_id[entry])
        elif strip_version(entry) in by_stripped:
            chosen.add(by_stripped[strip_version(entry)])
        elif entry in by_name:
            chosen.update(by_name[entry])
        else:
            missing.append(entry)
    if missing:
        raise InputError(
            f"gene(s) not in the dataset: {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}",
            path=dataset.path,
            fix="give gene ids or gene names of the dataset",
        )
    if not chosen:
        raise InputError("no genes selected")
    return np.asarray(sorted(chosen), dtype=np.int64)


def _chrom_sizes(
    dataset: Dataset, gene_idx: np.ndarray, override: Mapping[str, int] | None
) -> tuple[dict[str, int], str]:
    """Chromosome sizes for the track headers and clipping, and where they came from.

    Sizes come from ``override`` (``--chrom-sizes``) or the dataset (bigWig headers or the
    ``--chrom-sizes`` given to ``bin``); a chromosome of the genes without a known size is an
    error: a guessed size would be written into every bigWig header.
    """
    chroms = dataset.genes["chrom"].to_numpy()[gene_idx]
    if override is not None:
        sizes, source = {str(c): int(s) for c, s in override.items()}, "given"
    else:
        sizes, source = (
            {str(c): int(s) for c, s in dict(dataset.attrs.get("chrom_sizes") or {}).items()},
            "dataset",
        )
    missing = sorted(set(map(str, chroms)) - set(sizes))
    if missing and source == "given":
        raise InputError(
            f"chromosome(s) of the genes are missing from the chromosome sizes: "
            f"{', '.join(missing[:5])}"
        )
    if missing:
        raise InputError(
            f"no size known for chromosome(s) {', '.join(missing[:5])}: the dataset's inputs "
            "(peaks, bedGraph or counts) carry none",
            path=dataset.path,
            fix="pass --chrom-sizes genome.chrom.sizes (or the genome's .fai), or --genes on "
            "chromosomes with known sizes",
        )
    tss = dataset.genes["tss"].to_numpy(np.int64)[gene_idx]
    limit = np.asarray([sizes[str(c)] for c in chroms], dtype=np.int64)
    beyond = tss >= limit
    if beyond.any():  # their windows would cover no base of the tracks
        i = int(np.argmax(beyond))
        gene = dataset.genes["gene_id"].to_numpy()[gene_idx][i]
        where = "--chrom-sizes" if source == "given" else "the dataset's chromosome sizes"
        raise InputError(
            f"{int(beyond.sum())} gene TSS(s) lie beyond the end of their chromosome in {where} "
            f"(e.g. {gene} at {chroms[i]}:{int(tss[i]) + 1}, size {int(limit[i])})",
            path=None if source == "given" else dataset.path,
            fix="give the sizes of the genome the dataset was binned on",
        )
    return sizes, source


def _units(dataset: Dataset, sample_pos: np.ndarray, per_group: bool) -> list[_Unit]:
    groups = [dataset.groups[int(p)] or "" for p in sample_pos]
    if not per_group:
        return [
            _Unit(dataset.samples[int(p)], "sample", g, np.asarray([p], dtype=np.int64))
            for p, g in zip(sample_pos, groups, strict=True)
        ]
    units: dict[str, list[int]] = {}
    for p, g in zip(sample_pos, groups, strict=True):
        units.setdefault(g or "ungrouped", []).append(int(p))
    return [_Unit(g, "group", g, np.asarray(ps, dtype=np.int64)) for g, ps in units.items()]


def attribute(
    model: Attributable,
    dataset: Dataset,
    output_dir: str | Path,
    *,
    method: Method = "integrated_gradients",
    target: Target = "prediction",
    baseline: BaselineKind = "zeros",
    samples: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    combine: Combine = "sum",
    resolution: int | None = None,
    top_k: int = 10,
    link_score: LinkScore = "contact",
    score_params: ScoreParams | None = None,
    all_links: bool = False,
    contacts: str | Path | None = None,
    per_group: bool = False,
    batch_size: int = 256,
    n_steps: int = 50,
    device: str = "auto",
    chrom_sizes: Mapping[str, int] | None = None,
    force: bool = False,
) -> AttributionPaths:
    """Attribute a model's predictions (or errors) to the bins of every chosen (gene, sample).

    Parameters
    ----------
    model
        The model, through the :class:`~chromexpr.explain.attribution.Attributable` adapter.
    dataset
        The binned dataset (genes, samples, window geometry, chromosome sizes).
    output_dir
        Output directory (see the module docs); replaced only with ``force``.
    method, target, baseline, n_steps, batch_size, device
        See :class:`~chromexpr.explain.attribution.AttributionOptions`.
    samples
        Sample names to attribute (default all complete samples).
    genes
        Gene ids or names to attribute (default all).
    combine
        Rule for bases covered by several genes' windows: ``sum``, ``mean`` or ``maxabs``
        (:mod:`chromexpr.explain.tracks`).
    resolution
        Track grid (bp): each bigWig interval is a genome bin ``[k * resolution, (k + 1) *
        resolution)`` holding the mean of the per-base combined track over its covered bases.
        ``None``: the dataset's bin size; ``0``: the exact elementary segments cut by every gene
        bin edge (about twice as many intervals as gene bins: large files genome-wide).
    top_k
        Bins per gene in the links and in ``per_gene.tsv``.
    link_score
        How links are scored and ranked: ``contact`` (default): the chosen samples' mean
        accessibility at the bin x its contact with the TSS x the model's evidence (mean
        |attribution|), normalised per gene (:mod:`chromexpr.explain.contact`; it scored best
        against CRISPRi); ``attribution``: the mean |attribution| alone.
    score_params
        Exponents and weight of the ``contact`` score (default: the calibrated ones).
    all_links
        Write every bin with a non-zero link score (``contact``: every bin with accessibility)
        instead of the ``top_k`` best per gene, so that a benchmark can rank every element.
    contacts
        A Hi-C/Micro-C contact map (``.cool``, ``.mcool``, ``file.mcool::resolutions/N``) whose
        contacts replace the power law in the ``contact`` score
        (:func:`chromexpr.io.contacts.read_contacts`); needs ``pip install cooler``.
    per_group
        One track per sample group (the mean attribution over the group's samples, then combined
        over genes) instead of one per sample.
    chrom_sizes
        Chromosome sizes for the bigWig headers and clipping (default: the dataset's).
    force
        Replace an existing output directory.

    Returns
    -------
    AttributionPaths
        The files written.
    """
    options = AttributionOptions(
        method=method,
        target=target,
        baseline=baseline,
        n_steps=n_steps,
        batch_size=batch_size,
        device=device,
    )
    if combine not in get_args(Combine):
        raise InputError(
            f"unknown combine rule {combine!r}; use one of {', '.join(get_args(Combine))}"
        )
    if resolution is not None and resolution < 0:
        raise InputError(
            f"resolution must be 0 (exact) or a positive number of bp, got {resolution}"
        )
    grid = dataset.spec.bin_size if resolution is None else int(resolution)
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if link_score not in get_args(LinkScore):
        raise InputError(
            f"unknown link score {link_score!r}; use one of {', '.join(get_args(LinkScore))}"
        )
    params = score_params or ScoreParams()
    contact_map = None
    if contacts is not None:
        if link_score != "contact":
            raise InputError("a contact map is used by the 'contact' link score only")
        from chromexpr.io.contacts import open_contact_map

        contact_map = open_contact_map(contacts, bin_size=dataset.spec.bin_size)
    if dataset.n_samples == 0:
        raise InputError("the dataset has no complete samples", path=dataset.path)
    final = check_writable(output_dir, force=force)
    sample_pos = select_samples(dataset, samples)
    gene_idx = select_genes(dataset, genes)
    sizes, size_source = _chrom_sizes(dataset, gene_idx, chrom_sizes)
    units = _units(dataset, sample_pos, per_group)
    attributor = Attributor(model, options)
    spec = dataset.spec
    gene_chrom = dataset.genes["chrom"].astype(str).to_numpy()[gene_idx]
    chroms = [c for c in sizes if np.any(gene_chrom == c)]
    sample_group = {int(p): dataset.groups[int(p)] for p in sample_pos}
    logger.info(
        "attributing %d genes x %d samples (%s, target %s, baseline %s) on %s",
        gene_idx.size,
        sample_pos.size,
        method,
        target,
        baseline,
        attributor.device,
    )

    with atomic_path(final, force=force) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "tracks").mkdir()
        from chromexpr.io.attribution_files import TrackParts, safe_file_names

        parts = TrackParts(tmp / ".parts", len(units), sizes)
        profile = ProfileAccumulator(spec.n_bins, [g for g in dataset.groups if g])
        link_frames: list[pd.DataFrame] = []
        gene_frames: list[pd.DataFrame] = []
        run = _Run(
            model=model,
            dataset=dataset,
            attributor=attributor,
            units=units,
            flat=np.concatenate([u.positions for u in units]),
            flat_unit=np.concatenate([np.full(u.positions.size, i) for i, u in enumerate(units)]),
            sample_group=sample_group,
            combine=combine,
            resolution=grid,
            top_k=top_k,
            link_score=link_score,
            score_params=params,
            all_links=all_links,
            contact_map=contact_map,
            parts=parts,
            profile=profile,
            link_frames=link_frames,
            gene_frames=gene_frames,
        )
        with progress_bar("attributing", len(chroms) * sample_pos.size) as bar:
            for chrom in chroms:
                genes_c = gene_idx[gene_chrom == chrom]
                table_c = dataset.genes.iloc[genes_c].reset_index(drop=True)
                _attribute_chromosome(run, chrom, sizes[chrom], genes_c, table_c, bar)
        file_names = safe_file_names([u.name for u in units], ".bw")
        track_paths = [tmp / "tracks" / f for f in file_names]
        parts.write_bigwigs(track_paths)
        shutil.rmtree(parts.directory, ignore_errors=True)
        _write_tables(
            tmp,
            final,
            units,
            file_names,
            link_frames,
            gene_frames,
            profile,
            spec,
            sizes,
            f"{method}/{target}",
        )
        from chromexpr.io.attribution_files import write_json
        from chromexpr.provenance import record

        parameters: dict[str, Any] = {
            **options.to_dict(),
            "combine": combine,
            "resolution": grid,
            "top_k": top_k,
            "link_score": link_score,
            "score_params": params.to_dict() if link_score == "contact" else None,
            "all_links": all_links,
            "contacts": None if contacts is None else str(contacts),
            "per_group": per_group,
            "samples": [dataset.samples[int(p)] for p in sample_pos],
            "genes": None if genes is None else list(genes),
            "chrom_sizes": size_source,
        }
        write_json(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": str(getattr(model, "name", type(model).__name__)),
                "dataset": str(dataset.path),
                "n_genes": int(gene_idx.size),
                "n_samples": int(sample_pos.size),
                "linear_closed_form": attributor.linear,
                "device": attributor.device,
                "combine_rule": COMBINE_RULES[combine],
                "track_resolution": (
                    "exact elementary segments"
                    if grid == 0
                    else f"{grid} bp genome grid; each bin holds the mean of the per-base combined "
                    "track over its covered bases"
                ),
                "off_chromosome_bins": (
                    "bins wholly outside their chromosome are left out of tracks, links and "
                    "summaries; partly outside bins are clipped"
                ),
                "link_score": (
                    "contact: per-gene share of activity ** a x max(distance, d_min) ** -gamma x "
                    "(1 + w x evidence), activity = mean accessibility of the attributed samples, "
                    "evidence = mean |attribution| / the gene's largest; parameters in "
                    f"provenance.parameters.score_params; calibration: {CALIBRATION}"
                    if link_score == "contact"
                    else "attribution: mean |attribution| over the attributed samples"
                ),
                "coordinates": (
                    "0-based half-open; bin 0 farthest upstream; bin_offset = bin start relative "
                    "to the TSS in the gene's orientation (bp)"
                ),
                "provenance": record(step="attribute", parameters=parameters),
            },
            tmp / "attribution.json",
        )

    return AttributionPaths(
        directory=final,
        tracks=tuple(final / "tracks" / f for f in file_names),
        track_index=final / "tracks" / "index.tsv",
        links_bedpe=final / "links.bedpe",
        links_interact=final / "links.interact",
        interact_as=final / "interact.as",
        profile=final / "profile.tsv",
        per_gene=final / "per_gene.tsv",
        provenance=final / "attribution.json",
        links_interact_bed=final / "links.interact.bed",
    )


@dataclass
class _Run:
    """State shared by the chromosomes of one attribution run."""

    model: Attributable
    dataset: Dataset
    attributor: Attributor
    units: list[_Unit]
    flat: np.ndarray
    flat_unit: np.ndarray
    sample_group: dict[int, str]
    combine: Combine
    resolution: int
    top_k: int
    link_score: LinkScore
    score_params: ScoreParams
    all_links: bool
    contact_map: Any
    parts: Any
    profile: ProfileAccumulator
    link_frames: list[pd.DataFrame]
    gene_frames: list[pd.DataFrame]


def _attribute_chromosome(
    run: _Run, chrom: str, chrom_size: int, genes_c: np.ndarray, table_c: pd.DataFrame, bar: Any
) -> None:
    """Attribute every chosen sample for one chromosome's genes; append tracks and summaries."""
    spec, options, units, flat = run.dataset.spec, run.attributor.options, run.units, run.flat
    n_genes = genes_c.size
    tss = table_c["tss"].to_numpy(dtype=np.int64)
    minus = table_c["strand"].to_numpy() == "-"
    starts, ends = bin_intervals(tss, minus, spec, chrom_size=chrom_size)
    valid = ends > starts
    segments = Segmentation(starts.ravel(), ends.ravel())  # the same for every sample
    abs_sum = np.zeros((n_genes, spec.n_bins), dtype=np.float64)
    signed_sum = np.zeros((n_genes, spec.n_bins), dtype=np.float64)
    activity_sum = np.zeros((n_genes, spec.n_bins), dtype=np.float64)
    in_flight: dict[int, np.ndarray] = {}
    seen: dict[int, int] = {}
    per_chunk = max(1, options.batch_size // n_genes)
    for lo in range(0, flat.size, per_chunk):
        chunk = flat[lo : lo + per_chunk]
        attr = attribute_pairs(
            run.model,
            run.dataset,
            np.tile(genes_c, chunk.size),
            np.repeat(chunk, n_genes),
            options,
            attributor=run.attributor,
        ).reshape(chunk.size, n_genes, spec.n_bins)
        if run.link_score == "contact":
            rows = run.dataset.read_rows(np.tile(genes_c, chunk.size), np.repeat(chunk, n_genes))
            activity_sum += rows.reshape(chunk.size, n_genes, spec.n_bins).sum(axis=0)
        for j, pos in enumerate(chunk):
            a = np.where(valid, attr[j], np.float32(0.0))
            abs_sum += np.abs(a)
            signed_sum += a
            run.profile.add(a, valid, group=run.sample_group[int(pos)])
            u = int(run.flat_unit[lo + j])
            in_flight[u] = a.astype(np.float64) if u not in in_flight else in_flight[u] + a
            seen[u] = seen.get(u, 0) + 1
            if seen[u] == units[u].positions.size:
                mean = in_flight.pop(u) / seen[u]
                s, e, v = segments.combine(mean.ravel(), combine=run.combine)
                if run.resolution:
                    s, e, v = resample(s, e, v, resolution=run.resolution, chrom_size=chrom_size)
                run.parts.append(u, chrom, s, e, v)
            bar.advance(1)
    n = flat.size
    importance, signed = abs_sum / n, signed_sum / n
    top = top_bins(importance, run.top_k, valid=valid)
    components: dict[str, np.ndarray] = {"mean_abs_attribution": importance}
    link = importance
    if run.link_score == "contact":
        mids = bin_midpoints(starts, ends)
        distance = np.abs(mids - (tss[:, None].astype(np.float64) + 0.5))
        measured = None
        if run.contact_map is not None:
            from chromexpr.io.contacts import read_contacts

            p = run.score_params
            measured = read_contacts(
                run.contact_map,
                chrom,
                tss,
                mids,
                power_law=power_law_contact(distance, gamma=p.gamma, min_distance=p.min_distance),
            )
        scored = contact_link_scores(
            activity_sum / n,
            distance,
            params=run.score_params,
            evidence=model_evidence(importance, valid),
            contact=measured,
            valid=valid,
        )
        link = scored.pop("score")
        components.update(scored)
    if run.all_links:
        keep = valid & (link > 0)
        width = max(int(keep.sum(axis=1).max()) if keep.size else 0, 1)
        link_top = top_bins(link, width, valid=keep)
    elif run.link_score == "attribution":
        link_top = top
    else:
        link_top = top_bins(link, run.top_k, valid=valid)
    run.link_frames.append(
        links_table(
            table_c,
            link_top,
            link,
            signed,
            spec,
            chrom_size=np.full(n_genes, chrom_size, dtype=np.int64),
            components=components,
        )
    )
    run.gene_frames.append(
        per_gene_table(table_c, importance, signed, top, spec, valid=valid, n_samples=n)
    )


def _write_tables(
    tmp: Path,
    final: Path,
    units: list[_Unit],
    file_names: list[str],
    link_frames: list[pd.DataFrame],
    gene_frames: list[pd.DataFrame],
    profile: ProfileAccumulator,
    spec: BinSpec,
    sizes: Mapping[str, int],
    experiment: str,
) -> None:
    from chromexpr.io.attribution_files import write_bedpe, write_interact, write_text, write_tsv

    index = pd.DataFrame(
        {
            "track": [u.name for u in units],
            "kind": [u.kind for u in units],
            "group": [u.group for u in units],
            "n_samples": [u.positions.size for u in units],
            "file": file_names,
        }
    )
    write_tsv(index, tmp / "tracks" / "index.tsv")
    links = pd.concat(link_frames, ignore_index=True)
    order = {c: i for i, c in enumerate(sizes)}
    bedpe = to_bedpe(links)
    bedpe = (
        bedpe.assign(_c=bedpe["chrom1"].map(order))
        .sort_values(["_c", "start1", "start2", "rank"], kind="stable")
        .drop(columns="_c")
    )
    write_bedpe(bedpe, tmp / "links.bedpe")
    interact = to_interact(links, experiment=experiment)
    write_interact(interact, tmp / "links.interact.bed", track_line=None)
    write_interact(
        interact,
        tmp / "links.interact",
        track_line=interact_track_line(
            f"chromexpr links {final.name}", f"top bins per gene ({experiment})"
        ),
    )
    write_text(INTERACT_AS, tmp / "interact.as")
    write_tsv(profile.table(spec), tmp / "profile.tsv")
    write_tsv(pd.concat(gene_frames, ignore_index=True), tmp / "per_gene.tsv")
