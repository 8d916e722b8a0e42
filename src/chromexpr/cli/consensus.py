"""``chromexpr consensus``: per-sample peak files -> consensus regions + region x sample matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads
from chromexpr.cli.bin import PeakValueChoice


@app.command("consensus")
def consensus_command(
    peaks: Annotated[
        list[Path] | None, typer.Argument(help="Peak files (BED/narrowPeak/broadPeak, .gz ok).")
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output prefix: PREFIX.bed and PREFIX.counts.tsv."),
    ] = Path("consensus"),
    samples: Annotated[
        Path | None, typer.Option("--samples", help="Sample sheet: sample<TAB>path[<TAB>group].")
    ] = None,
    min_samples: Annotated[
        int,
        typer.Option(
            "--min-samples", help="Keep regions with peaks in at least this many samples."
        ),
    ] = 1,
    merge_distance: Annotated[
        int, typer.Option("--merge-distance", help="Merge peaks closer than this (bp).")
    ] = 0,
    peak_value: Annotated[
        PeakValueChoice, typer.Option("--peak-value", help="Value tabulated per sample.")
    ] = PeakValueChoice.auto,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Merge peaks across samples (bedtools merge, nf-core/atacseq style) into a matrix
    'chromexpr bin' reads."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.atomic import atomic_path
        from chromexpr.errors import InputError
        from chromexpr.io.consensus import consensus_peaks, write_consensus
        from chromexpr.io.samples import check_unique, read_sample_sheet, samples_from_paths
        from chromexpr.log import logger

        sources = samples_from_paths(list(peaks or []))
        if samples is not None:
            sources += read_sample_sheet(samples)
        check_unique(sources)
        if not sources:
            raise InputError("no peak files given", fix="pass peak files or --samples sheet.tsv")
        result = consensus_peaks(
            sources,
            min_samples=min_samples,
            merge_distance=merge_distance,
            peak_value=peak_value.value,
        )
        bed = Path(f"{output}.bed")
        matrix = Path(f"{output}.counts.tsv")
        with (
            atomic_path(bed, force=force) as tmp_bed,
            atomic_path(matrix, force=force) as tmp_matrix,
        ):
            write_consensus(result, tmp_bed, tmp_matrix)
        logger.info(
            "%d consensus regions from %d samples -> %s, %s",
            len(result.regions),
            len(sources),
            bed,
            matrix,
        )
