"""``chromexpr info``: shape, samples, provenance and a per-sample summary of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Quiet, Threads


@app.command("info")
def info_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset directory (from 'chromexpr bin').")],
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Print a dataset's shape, samples, provenance and per-sample summary (to stdout)."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.dataset.summary import describe, format_description

        description = describe(dataset)
        if json_output:
            import json

            typer.echo(json.dumps(description, indent=2, default=str))
        else:
            typer.echo(format_description(description))
