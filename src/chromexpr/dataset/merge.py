"""Merge datasets binned separately (e.g. one sample per machine) into one dataset.

A scatter/gather pipeline bins each sample into its own part (``chromexpr bin ... -o
parts/S.zarr``) and then gathers the parts with :func:`merge_datasets`. The parts must agree on
everything that gives a value its meaning: the genes (ids, chromosomes, TSS positions, strands,
in the same order) and the bin geometry (flank, bin size, aggregate). The merged dataset holds the
complete samples of every part, in the order the parts are given and, within a part, in its store
order; its values are those of the parts, bit for bit, so merging N one-sample parts gives the
dataset that binning the N samples in one run would have given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr.dataset import store
from chromexpr.dataset.store import Dataset
from chromexpr.errors import InputError

logger = logging.getLogger("chromexpr")

__all__ = ["check_compatible", "merge_datasets"]

#: Binning parameters (besides the geometry) whose difference between parts is worth a warning.
_VALUE_PARAMETERS = ("peak_value",)


@dataclass(frozen=True)
class _Part:
    path: Path
    data: Dataset
    incomplete: list[str]


def _describe_gene(genes: pd.DataFrame, i: int) -> str:
    row = genes.iloc[i]
    return f"{row['gene_id']} at {row['chrom']}:{int(row['tss'])} ({row['strand']})"


def _gene_difference(reference: pd.DataFrame, other: pd.DataFrame) -> str | None:
    """How two gene tables differ (ids, chromosomes, TSS, strands, order), or ``None``."""
    if len(reference) != len(other):
        return f"{len(other)} genes instead of {len(reference)}"
    columns = ("gene_id", "chrom", "tss", "strand")
    differs = np.zeros(len(reference), dtype=bool)
    for column in columns:
        differs |= reference[column].to_numpy() != other[column].to_numpy()
    if not differs.any():
        return None
    i = int(np.flatnonzero(differs)[0])
    same_ids = set(reference["gene_id"]) == set(other["gene_id"])
    where = f"gene {i + 1} is {_describe_gene(other, i)}, not {_describe_gene(reference, i)}"
    if same_ids and (reference["gene_id"].to_numpy() != other["gene_id"].to_numpy()).any():
        return f"same genes in another order ({where})"
    return f"{where}; {int(differs.sum())} gene(s) differ in all"


def check_compatible(reference: Dataset, other: Dataset) -> None:
    """Raise :class:`InputError` (one line) if ``other`` cannot be merged with ``reference``.

    Parts must have identical genes (ids, chromosomes, TSS positions, strands, and order) and
    identical geometry (flank, bin size, aggregate).
    """
    if reference.spec != other.spec:
        pairs = [
            (name, getattr(reference.spec, name), getattr(other.spec, name))
            for name in ("flank", "bin_size", "aggregate")
        ]
        diffs = ", ".join(f"{name} {b} vs {a}" for name, a, b in pairs if a != b)
        raise InputError(
            f"bin geometry differs from {reference.path}'s ({diffs})",
            path=other.path,
            fix="bin every part with the same --flank/--bin-size/--aggregate",
        )
    difference = _gene_difference(reference.genes, other.genes)
    if difference is not None:
        raise InputError(
            f"genes differ from {reference.path}'s: {difference}",
            path=other.path,
            fix="bin every part with the same TSS BED and --gene-type",
        )


def _bin_parameters(data: Dataset) -> dict[str, Any]:
    provenance = data.attrs.get("provenance") or {}
    parameters = provenance.get("parameters") if isinstance(provenance, dict) else None
    return parameters if isinstance(parameters, dict) else {}


def _warn_parameter_differences(parts: Sequence[_Part]) -> None:
    reference = _bin_parameters(parts[0].data)
    for part in parts[1:]:
        parameters = _bin_parameters(part.data)
        for key in _VALUE_PARAMETERS:
            if key in reference and key in parameters and reference[key] != parameters[key]:
                logger.warning(
                    "%s was binned with %s=%s, %s with %s=%s: their values may not be comparable",
                    parts[0].path,
                    key,
                    reference[key],
                    part.path,
                    key,
                    parameters[key],
                )


def _check_unique_samples(parts: Sequence[_Part]) -> None:
    seen: dict[str, Path] = {}
    for part in parts:
        for name in part.data.samples:
            if name in seen:
                raise InputError(
                    f"duplicate sample name {name!r} ({seen[name]} and {part.path})",
                    fix="give each sample a unique name, or leave one of the parts out",
                )
            seen[name] = part.path


def _merge_chrom_sizes(parts: Sequence[_Part]) -> dict[str, int]:
    """Union of the parts' chromosome sizes; where they differ, the largest.

    A part records a chromosome's true size when one of its inputs knew it, else a lower bound:
    the farthest TSS + 1 (a one-sample part whose signal lacks a chromosome). The largest value is
    therefore the best known; two different sizes that are both not that lower bound mean inputs
    from different assemblies, which is worth a warning.
    """
    genes = parts[0].data.genes
    floor = {str(c): int(t) + 1 for c, t in genes.groupby("chrom", sort=False)["tss"].max().items()}
    known: dict[str, set[int]] = {}
    merged: dict[str, int] = {}
    for part in parts:
        for chrom, size in (part.data.attrs.get("chrom_sizes") or {}).items():
            chrom, size = str(chrom), int(size)
            merged[chrom] = max(size, merged.get(chrom, 0))
            if size != floor.get(chrom):
                known.setdefault(chrom, set()).add(size)
    conflicts = sorted(c for c, sizes in known.items() if len(sizes) > 1)
    if conflicts:
        logger.warning(
            "the parts' inputs give different sizes for %d chromosome(s) (%s; different "
            "assemblies?); kept the largest",
            len(conflicts),
            ", ".join(conflicts[:6]),
        )
    order = [c for c in floor if c in merged]
    return {c: merged[c] for c in [*order, *sorted(set(merged) - set(order))]}


def _open_parts(paths: Sequence[Path]) -> list[_Part]:
    parts: list[_Part] = []
    for path in paths:
        data = store.open_dataset(path)
        parts.append(_Part(path=path, data=data, incomplete=store.incomplete_samples(path)))
    return parts


def _gene_table(data: Dataset) -> pd.DataFrame:
    """The dataset's genes in the column names :func:`store.create_store` takes."""
    return data.genes.rename(columns={"gene_id": "name", "tss": "start"})


def merge_datasets(
    parts: Sequence[str | Path],
    output: str | Path,
    *,
    force: bool = False,
    chunk_genes: int | None = None,
) -> Path:
    """Merge binned datasets into one, sample by sample.

    Parameters
    ----------
    parts
        Datasets from ``chromexpr bin`` with identical genes (ids, chromosomes, TSS positions,
        strands, order) and geometry (flank, bin size, aggregate). Only complete samples are
        taken; samples left incomplete by an interrupted run are skipped with a warning.
    output
        Merged dataset (``.zarr`` directory) to create; written to a temporary sibling and renamed
        into place when complete.
    force
        Replace an existing ``output``.
    chunk_genes
        Genes per storage chunk of the output [default: the first part's].

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    InputError
        No parts, a part that is not a dataset, parts that differ in genes or geometry, duplicate
        sample names, no complete sample at all, or ``output`` among the parts.
    OutputExistsError
        ``output`` exists and ``force`` is false.

    Notes
    -----
    Memory holds one sample's ``(n_genes, n_bins)`` float32 values at a time. The provenance
    records this merge and, per part, its path, the samples taken from it and its own provenance;
    ``sources`` (input paths and checksums per sample) are carried over; ``chrom_sizes`` are the
    union of the parts'.
    """
    from chromexpr.atomic import atomic_path, check_writable
    from chromexpr.log import progress_bar
    from chromexpr.provenance import record

    paths = [Path(p) for p in parts]
    out = Path(output)
    if not paths:
        raise InputError("no dataset to merge", fix="give one or more PART.zarr")
    check_writable(out, force=force)
    resolved = [p.resolve() for p in paths]
    if out.resolve() in resolved:
        raise InputError("the output is also one of the parts", path=out, fix="write to a new path")
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise InputError("part given twice", path=paths[i], fix="give each PART.zarr once")
    opened = _open_parts(paths)
    reference = opened[0].data
    for part in opened[1:]:
        check_compatible(reference, part.data)
    _check_unique_samples(opened)
    _warn_parameter_differences(opened)
    for part in opened:
        if part.incomplete:
            logger.warning(
                "%s: skipped %d incomplete sample(s) (%s)",
                part.path,
                len(part.incomplete),
                ", ".join(part.incomplete[:5]),
            )
    names = [s for part in opened for s in part.data.samples]
    groups = [g for part in opened for g in part.data.groups]
    if not names:
        raise InputError("no complete sample in the parts", fix="finish binning them first")

    provenance = record(step="merge", parameters={"parts": [str(p) for p in paths]})
    provenance["parts"] = [
        {
            "path": str(part.path),
            "samples": list(part.data.samples),
            "provenance": part.data.attrs.get("provenance", {}),
        }
        for part in opened
    ]
    attrs = {"provenance": provenance, "chrom_sizes": _merge_chrom_sizes(opened)}
    chunk = chunk_genes if chunk_genes is not None else reference.chunk_genes
    logger.info(
        "merging %d sample(s) from %d part(s): %d genes x %d bins",
        len(names),
        len(paths),
        reference.n_genes,
        reference.n_bins,
    )
    with atomic_path(out, force=force) as tmp:
        genes = _gene_table(reference)
        store.create_store(tmp, genes, reference.spec, attrs=attrs, chunk_genes=chunk)
        indices = iter(store.add_samples(tmp, names, groups))
        with progress_bar("merging samples", len(names)) as bar:
            for part in opened:
                sources = part.data.attrs.get("sources") or {}
                for position, name in enumerate(part.data.samples):
                    index = next(indices)
                    store.write_sample(tmp, index, part.data.read_sample(position))
                    store.mark_complete(tmp, index, sources.get(name, {"part": str(part.path)}))
                    bar.advance(1)  # type: ignore[attr-defined]
    logger.info("wrote %s", out)
    return out
