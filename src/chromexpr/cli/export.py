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
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (matrix.gz).")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="Output format.")
    ] = ExportFormat.deeptools,
    samples: Annotated[
        str | None, typer.Option("--samples", help="Comma-separated samples [default: all].")
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Write the deepTools matrix format, for plotHeatmap/plotProfile on chromexpr's bins."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.atomic import atomic_path
        from chromexpr.dataset import open_dataset
        from chromexpr.io.deeptools_matrix import write_deeptools_matrix

        data = open_dataset(dataset)
        names = [s.strip() for s in samples.split(",")] if samples else list(data.samples)
        positions = data.sample_position(names)
        with atomic_path(output, force=force) as tmp:
            write_deeptools_matrix(
                tmp, data.genes, data.iter_gene_blocks(positions), data.spec, names
            )
