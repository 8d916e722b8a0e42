"""Bin many samples into a dataset.

Read (prefetched in a thread) -> match chromosomes -> kernel -> store.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec, bin_track
from chromexpr.binning.chroms import match_chroms
from chromexpr.binning.signal import SignalTrack
from chromexpr.dataset import store
from chromexpr.errors import InputError
from chromexpr.io.peaks import PeakValue
from chromexpr.io.samples import SampleSource
from chromexpr.log import progress_bar
from chromexpr.provenance import file_checksum, record

logger = logging.getLogger("chromexpr")


@dataclass(frozen=True)
class BinOptions:
    """Everything that changes binned values (recorded in the dataset's provenance)."""

    spec: BinSpec = field(default_factory=BinSpec)
    peak_value: PeakValue = "auto"
    chrom_alias: dict[str, str] | None = None
    chrom_sizes: dict[str, int] | None = None
    regions: Path | None = None
    chunk_genes: int = store.DEFAULT_CHUNK_GENES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.spec.to_dict(),
            "peak_value": self.peak_value,
            "chrom_alias": self.chrom_alias,
            "regions": str(self.regions) if self.regions else None,
        }


def check_tss_within(genes: pd.DataFrame, sizes: dict[str, int], source: str) -> None:
    """A TSS at or past its chromosome's end means a different assembly: stop with a clear error."""
    size = genes["chrom"].map(sizes).to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isnan(size) & (genes["start"].to_numpy() >= size))
    if bad.size:
        i = int(bad[0])
        row = genes.iloc[i]
        raise InputError(
            f"TSS of {row['name']} at {row['chrom']}:{int(row['start'])} "
            "is beyond the chromosome end "
            f"({int(size[i])} bp in {source}); {bad.size} TSS(s) in all",
            fix="use an annotation and signal from the same assembly",
        )


@dataclass
class _Loaded:
    source: SampleSource
    track: SignalTrack
    checksum: str


def _load(source: SampleSource, options: BinOptions) -> _Loaded:
    from chromexpr.io.signal import load_signal

    track = load_signal(
        source,
        peak_value=options.peak_value,
        chrom_sizes=options.chrom_sizes,
        regions=options.regions,
    )
    return _Loaded(source=source, track=track, checksum=file_checksum(source.path))


def _prefetch(sources: list[SampleSource], options: BinOptions) -> Iterator[_Loaded]:
    """Load sample i+1 in a background thread while sample i is binned and written."""
    if not sources:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromexpr-read") as pool:
        pending: Future[_Loaded] = pool.submit(_load, sources[0], options)
        for nxt in [*sources[1:], None]:
            loaded = pending.result()
            if nxt is not None:
                pending = pool.submit(_load, nxt, options)
            yield loaded


class _ChromReport:
    """Collects chromosome-name findings so that each is reported once, not per gene or sample."""

    def __init__(self) -> None:
        self.renamed: set[tuple[str, str]] = set()
        self.missing: Counter[str] = Counter()
        self.samples_missing: set[str] = set()

    def emit(self) -> None:
        if self.renamed:
            pairs = sorted(self.renamed)
            preview = ", ".join(f"{a} -> {b}" for a, b in pairs[:4])
            logger.warning(
                "renamed %d signal chromosome(s) to the annotation's naming (%s%s)",
                len(pairs),
                preview,
                ", ..." if len(pairs) > 4 else "",
            )
        if self.missing:
            chroms = ", ".join(sorted(self.missing)[:6])
            logger.warning(
                "%d gene window(s) on chromosome(s) absent from the signal of %d sample(s) "
                "were set to 0 (%s)",
                sum(self.missing.values()),
                len(self.samples_missing),
                chroms,
            )


def _bin_one(
    loaded: _Loaded,
    genes: pd.DataFrame,
    options: BinOptions,
    report: _ChromReport,
    out: np.ndarray | None = None,
) -> np.ndarray:
    gene_chroms = genes["chrom"].to_numpy(dtype=object)
    match = match_chroms(
        set(gene_chroms),
        loaded.track.chroms,
        alias=options.chrom_alias,
        source=str(loaded.source.path),
    )
    track = loaded.track.renamed(match.mapping) if match.mapping else loaded.track
    report.renamed.update(match.renamed)
    if track.chrom_sizes:
        check_tss_within(genes, track.chrom_sizes, str(loaded.source.path))
    present = set(track.chroms)
    absent = ~np.isin(gene_chroms, list(present))
    if absent.any():
        report.samples_missing.add(loaded.source.name)
        for chrom, n in Counter(gene_chroms[absent]).items():
            report.missing[str(chrom)] += n
    minus = genes["strand"].to_numpy() == "-"
    return bin_track(
        track,
        gene_chroms,
        genes["start"].to_numpy(dtype=np.int64),
        genes["end"].to_numpy(dtype=np.int64),
        minus,
        options.spec,
        out=out,
    )


def _store_one(path: Path, index: int, values: np.ndarray, source: dict[str, Any]) -> None:
    """Write one sample's values, then mark it complete (runs in the writer thread)."""
    store.write_sample(path, index, values)
    store.mark_complete(path, index, source)


def _fill(
    path: Path, genes: pd.DataFrame, sources: list[SampleSource], options: BinOptions
) -> None:
    indices = store.add_samples(path, [s.name for s in sources], [s.group for s in sources])
    report = _ChromReport()
    sizes: dict[str, int] = dict(options.chrom_sizes or {})
    # Three stages overlap: the next sample is read (prefetch thread) while this one is binned
    # (numba threads) and the previous one is compressed and written (writer thread). Two output
    # buffers take turns, so memory stays at two samples' values whatever the number of samples.
    shape = (len(genes), options.spec.n_bins)
    buffers = [np.empty(shape, dtype=np.float32) for _ in range(min(2, len(sources)))]
    with (
        progress_bar("binning samples", len(sources)) as bar,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromexpr-write") as writer,
    ):
        pending: Future[None] | None = None
        loads = _prefetch(sources, options)
        for turn, (index, loaded) in enumerate(zip(indices, loads, strict=True)):
            # reuses the buffer of sample turn - 2: its write ended before turn - 1's was queued
            values = _bin_one(loaded, genes, options, report, out=buffers[turn % 2])
            for chrom, size in loaded.track.chrom_sizes.items():
                sizes.setdefault(chrom, size)
            source = {
                "path": str(loaded.source.path),
                "kind": loaded.source.kind,
                "column": loaded.source.column,
                "checksum": loaded.checksum,
            }
            logger.debug("binned %s (%d segments)", loaded.source.name, loaded.track.n_segments)
            del loaded
            if pending is not None:
                pending.result()  # at most one sample in the writer: errors surface here, in order
                bar.advance(1)  # type: ignore[attr-defined]
            pending = writer.submit(_store_one, path, index, values, source)
        if pending is not None:
            pending.result()
            bar.advance(1)  # type: ignore[attr-defined]
    report.emit()
    store.update_attrs(path, {"chrom_sizes": _chrom_sizes_for(genes, sizes)})


def _chrom_sizes_for(genes: pd.DataFrame, sizes: dict[str, int]) -> dict[str, int]:
    """Known sizes of the genes' chromosomes (from bigWig headers or ``--chrom-sizes``).

    A chromosome whose size no input gives is left out, never guessed: its size is unknown, and
    readers of the dataset (``attribute``) ask for ``--chrom-sizes`` rather than write a made-up
    size into a file.
    """
    out: dict[str, int] = {}
    for chrom in genes["chrom"].astype(str).unique():
        if chrom in sizes:
            out[chrom] = int(sizes[chrom])
    return out


def _validate_genes(genes: pd.DataFrame, options: BinOptions) -> pd.DataFrame:
    if genes.empty:
        raise InputError("no TSS to bin")
    if genes["name"].duplicated().any():
        raise InputError(
            f"duplicated gene id {genes.loc[genes['name'].duplicated(), 'name'].iloc[0]!r} "
            "in the TSS table"
        )
    if options.chrom_sizes:
        check_tss_within(genes, options.chrom_sizes, "--chrom-sizes")
    return genes.reset_index(drop=True)


def bin_dataset(
    genes: pd.DataFrame,
    sources: list[SampleSource],
    output: str | Path,
    *,
    options: BinOptions | None = None,
    append: bool = False,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    task_threads: int | None = None,
) -> Path:
    """Bin every sample into the dataset at ``output``.

    Parameters
    ----------
    genes
        TSS table from :func:`chromexpr.annotation.tss.load_tss` (1-bp TSS, 0-based), in dataset
        order.
    sources
        Samples to bin.
    output
        Dataset directory (``.zarr``).
    options
        Geometry, peak value, chromosome names.
    append
        Add samples to an existing dataset (its genes and geometry must match); samples left
        incomplete by an interrupted run are recomputed.
    force
        Replace an existing dataset (without ``append``).
    provenance
        Extra provenance to record (e.g. the TSS options).
    scheduler
        Run one task per sample on this ``dask.distributed`` scheduler (``tcp://host:port`` or
        a scheduler JSON file); see :func:`chromexpr.binning.distributed.bin_dataset_on_dask`.
    workers
        Run one task per sample on a local cluster of this many single-threaded worker
        processes.
    retries
        With ``scheduler``/``workers``: times a failed task is retried.
    task_threads
        With ``scheduler``/``workers``: numba threads per task (default: see
        :func:`~chromexpr.binning.distributed.bin_dataset_on_dask`).

    Returns
    -------
    pathlib.Path
        The dataset path.
    """
    if scheduler is not None or workers is not None:
        from chromexpr.binning.distributed import bin_dataset_on_dask

        return bin_dataset_on_dask(
            genes,
            sources,
            output,
            options=options,
            append=append,
            force=force,
            provenance=provenance,
            address=scheduler,
            workers=workers,
            retries=retries,
            task_threads=task_threads,
        ).path
    options = options or BinOptions()
    output = Path(output)
    genes = _validate_genes(genes, options)
    if append:
        return _append(genes, sources, output, options)
    from chromexpr.atomic import atomic_path

    with atomic_path(output, force=force) as tmp:
        attrs = {
            "provenance": record(
                step="bin", parameters={**options.to_dict(), **(provenance or {})}
            ),
        }
        store.create_store(tmp, genes, options.spec, attrs=attrs, chunk_genes=options.chunk_genes)
        _fill(tmp, genes, sources, options)
    return output


def _append(
    genes: pd.DataFrame, sources: list[SampleSource], output: Path, options: BinOptions
) -> Path:
    _fill(output, genes, _append_todo(genes, sources, output, options), options)
    return output


def _append_todo(
    genes: pd.DataFrame, sources: list[SampleSource], output: Path, options: BinOptions
) -> list[SampleSource]:
    """Check that ``sources`` can be appended to the dataset; return those still to bin."""
    existing = store.open_dataset(output)
    if existing.spec != options.spec:
        raise InputError(
            f"bin geometry differs from the dataset's ({existing.spec} vs {options.spec})",
            path=output,
            fix="use the dataset's --flank/--bin-size/--aggregate",
        )
    same = (
        len(existing.genes) == len(genes)
        and (existing.genes["gene_id"].to_numpy() == genes["name"].astype(str).to_numpy()).all()
        and (existing.genes["tss"].to_numpy() == genes["start"].to_numpy()).all()
    )
    if not same:
        raise InputError(
            "the TSS table differs from the one the dataset was built with",
            path=output,
            fix="append with the same TSS BED/annotation and options",
        )
    recorded = existing.attrs.get("sources", {})
    todo: list[SampleSource] = []
    for source in sources:
        if source.name not in existing.samples:
            todo.append(source)  # new, or left incomplete by an interrupted run
            continue
        previous = recorded.get(source.name, {})
        if (
            previous.get("checksum") != file_checksum(source.path)
            or previous.get("column") != source.column
        ):
            raise InputError(
                f"sample {source.name!r} is already in the dataset, from different input",
                path=output,
                fix="rename the sample, or rebuild the dataset with --force",
            )
        logger.info("sample %s is already complete; skipped", source.name)
    return todo
