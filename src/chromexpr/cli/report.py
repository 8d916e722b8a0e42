"""``chromexpr report``: a self-contained HTML report (+ PNG/SVG figures) from evaluations."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


class EmbedChoice(str, Enum):
    png = "png"
    svg = "svg"


@app.command("report")
def report_command(
    eval_dirs: Annotated[
        list[Path],
        typer.Argument(help="Directories from 'chromexpr evaluate' (models side by side)."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file.")] = Path(
        "report.html"
    ),
    attribution: Annotated[
        list[Path] | None,
        typer.Option(
            "--attribution", "-a", help="Directory from 'chromexpr attribute' (repeatable)."
        ),
    ] = None,
    embed: Annotated[
        EmbedChoice, typer.Option(help="How figures are embedded in the HTML.")
    ] = EmbedChoice.png,
    title: Annotated[str, typer.Option(help="Page title.")] = "chromexpr report",
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Write REPORT.html (opens offline) and the same figures as PNG and SVG in REPORT_figures/."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.log import logger
        from chromexpr.report.run import make_report

        path = make_report(
            eval_dirs,
            output,
            attribution_dirs=attribution or (),
            force=force,
            embed=embed.value,
            title=title,
        )
        logger.info("wrote %s", path)
