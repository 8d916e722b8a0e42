"""``chromexpr bin``: accessibility files -> binned dataset (gene x sample x bin)."""

from __future__ import annotations

from contextlib import ExitStack
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


class AggregateChoice(str, Enum):
    mean = "mean"
    sum = "sum"
    max = "max"


class PeakValueChoice(str, Enum):
    auto = "auto"
    signal = "signal"
    score = "score"
    presence = "presence"


@app.command("bin")
def bin_command(
    tss: Annotated[
        Path, typer.Argument(help="TSS BED (from 'chromexpr tss') or a GTF/GFF3 annotation.")
    ],
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="bigWig, bedGraph, BED/narrowPeak/broadPeak (.gz ok) or *.featureCounts.txt files."
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Dataset directory (Zarr).")
    ] = Path("dataset.zarr"),
    samples: Annotated[
        Path | None, typer.Option("--samples", help="Sample sheet: sample<TAB>path[<TAB>group].")
    ] = None,
    flank: Annotated[
        int, typer.Option(help="Bases upstream and downstream of the TSS.")
    ] = 1_000_000,
    bin_size: Annotated[int, typer.Option("--bin-size", help="Bin width (bp).")] = 1000,
    aggregate: Annotated[
        AggregateChoice, typer.Option(help="Per-bin statistic over bases.")
    ] = AggregateChoice.mean,
    peak_value: Annotated[
        PeakValueChoice,
        typer.Option(
            "--peak-value",
            help=(
                "Value of a peak: column 7 (signal), column 5 (score), or 1 (presence); auto ="
                " signal for narrowPeak/broadPeak, presence for other BED (whose column 7 may be"
                " thickStart)."
            ),
        ),
    ] = PeakValueChoice.auto,
    regions: Annotated[
        Path | None,
        typer.Option("--regions", help="Regions BED for a count matrix whose rows are named."),
    ] = None,
    chrom_alias: Annotated[
        Path | None,
        typer.Option("--chrom-alias", help="Two columns: signal chromosome name, annotation name."),
    ] = None,
    chrom_sizes: Annotated[
        Path | None,
        typer.Option("--chrom-sizes", help="chrom<TAB>length, to validate coordinates."),
    ] = None,
    gene_type: Annotated[
        list[str] | None,
        typer.Option("--gene-type", help="With an annotation: keep this gene type (repeatable)."),
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Add samples to an existing dataset.")
    ] = False,
    chunk_genes: Annotated[
        int, typer.Option("--chunk-genes", help="Genes per storage chunk.")
    ] = 256,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Bin on this Dask scheduler: tcp://HOST:PORT or a scheduler JSON file "
            "(needs chromexpr[dask]; inputs and output on a shared file system).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Bin on a local Dask cluster of N worker processes (needs chromexpr[dask]).",
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="With --scheduler/--workers: retries of a failed task.")
    ] = 2,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Bin accessibility into 2*FLANK/BIN_SIZE bins around each TSS
    (deepTools reference-point semantics)."""
    with command_context(quiet=quiet, debug=debug, threads=threads), ExitStack() as stack:
        from chromexpr.annotation.tss import TssOptions, load_tss
        from chromexpr.binning.binner import BinSpec
        from chromexpr.binning.pipeline import BinOptions, bin_dataset
        from chromexpr.errors import InputError
        from chromexpr.io.chroms import read_chrom_alias, read_chrom_sizes
        from chromexpr.io.samples import read_sample_sheet, samples_from_paths
        from chromexpr.log import logger

        if scheduler is not None and workers is not None:
            raise InputError("--scheduler and --workers are exclusive", fix="give one of them")
        if not inputs and samples is None:
            raise InputError("no accessibility input", fix="give files, or --samples sheet.tsv")
        from chromexpr.io.samples import content_suffix
        from chromexpr.io.text import is_stream, spooled_input

        streams = [p for p in [tss, *(inputs or [])] if is_stream(p)]
        if sum(str(p) in ("-", "/dev/stdin") for p in streams) > 1:
            raise InputError("standard input can be read once", fix="give '-' for one input only")
        # standard input and pipes are read once into a temporary file named by their content
        named = [
            stack.enter_context(spooled_input(p, suffix=content_suffix)) if is_stream(p) else p
            for p in inputs or []
        ]
        tss = stack.enter_context(spooled_input(tss)) if is_stream(tss) else tss
        sources = samples_from_paths(named, regions=regions)
        if samples is not None:
            sources += read_sample_sheet(samples, regions=regions)
            from chromexpr.io.samples import check_unique

            check_unique(sources)
        tss_options = TssOptions(gene_types=tuple(gene_type or ()))
        genes = load_tss(tss, tss_options)
        options = BinOptions(
            spec=BinSpec(flank=flank, bin_size=bin_size, aggregate=aggregate.value),
            peak_value=peak_value.value,
            chrom_alias=read_chrom_alias(chrom_alias) if chrom_alias else None,
            chrom_sizes=read_chrom_sizes(chrom_sizes) if chrom_sizes else None,
            regions=regions,
            chunk_genes=chunk_genes,
        )
        logger.info(
            "binning %d sample(s) x %d genes x %d bins",
            len(sources),
            len(genes),
            options.spec.n_bins,
        )
        path = bin_dataset(
            genes,
            sources,
            output,
            options=options,
            append=append,
            force=force,
            provenance={"tss": str(tss), "tss_options": tss_options.to_dict()},
            scheduler=scheduler,
            workers=workers,
            retries=retries,
            task_threads=threads,
        )
        logger.info("wrote %s", path)
