"""``chromexpr demo``: the whole pipeline on a small built-in simulated data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Seed, Threads


@app.command("demo")
def demo_command(
    output: Annotated[Path, typer.Argument(help="Directory for the demo's outputs.")] = Path(
        "chromexpr-demo"
    ),
    seed: Seed = 0,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Simulate -> tss -> bin -> train -> evaluate -> attribute -> report, in under two minutes."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.demo import run_demo

        result = run_demo(output, force=force, seed=seed, echo=lambda m: typer.echo(m, err=True))
        typer.echo(f"report: {result.report.resolve()}")
        for line in result.summary:
            typer.echo(f"  {line}")
