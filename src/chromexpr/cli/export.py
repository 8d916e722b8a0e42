"""``chromexpr export``: a dataset in other tools' formats (deepTools computeMatrix)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


class ExportFormat(str, Enum):
    deeptools = "deeptools"


@app.command("export")
def export_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output file ('-': stdout); gzip whatever the name, as deepTools needs.",
        ),
    ],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="Output format.")
    ] = ExportFormat.deeptools,
    samples: Annotated[
        str | None, typer.Option("--samples", help="Samples: a,b,c or @file [default: all].")
    ] = None,
    genes: Annotated[
        str | None,
        typer.Option("--genes", help="Gene ids or names: a,b,c or @file [default: all]."),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            help="Only the bins within this many bp of the TSS (a multiple of the bin size)"
            " [default: the whole flank].",
        ),
    ] = None,
    rebin: Annotated[
        int,
        typer.Option(
            "--rebin", help="Merge this many neighbouring bins (mean/sum/max as the dataset's)."
        ),
    ] = 1,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Write the deepTools matrix format, for plotHeatmap/plotProfile on chromexpr's bins."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.dataset import open_dataset
        from chromexpr.dataset.export import export_deeptools
        from chromexpr.io.text import name_list

        export_deeptools(
            open_dataset(dataset),
            output,
            samples=name_list(samples),
            genes=name_list(genes),
            window=window,
            factor=rebin,
            force=force,
        )
