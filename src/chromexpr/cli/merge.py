"""``chromexpr merge``: datasets binned separately (e.g. one per sample) -> one dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


@app.command("merge")
def merge_command(
    parts: Annotated[
        list[Path],
        typer.Argument(help="Datasets from 'chromexpr bin' with the same genes and geometry."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Merged dataset directory (Zarr).")
    ],
    chunk_genes: Annotated[
        int | None,
        typer.Option("--chunk-genes", help="Genes per storage chunk [default: the first part's]."),
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Merge the complete samples of PARTS (in the order given) into one dataset.

    The parts need identical genes and bin geometry; values are copied sample by sample.
    """
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.dataset.merge import merge_datasets

        merge_datasets(parts, output, force=force, chunk_genes=chunk_genes)
