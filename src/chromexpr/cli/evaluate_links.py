"""``chromexpr evaluate-links``: links.bedpe + a CRISPRi table -> AUPRC beside distance alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Seed, Threads


def _named_paths(values: list[str] | None) -> dict[str, Path]:
    """``NAME=PATH`` entries (a bare PATH is named after its parent directory)."""
    from chromexpr.errors import InputError

    out: dict[str, Path] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).parent.name or Path(value).stem, value
        if not name or not path:
            raise InputError(f"--compare {value!r}: give NAME=PATH")
        if name in out:
            raise InputError(f"--compare: the name {name!r} is given twice")
        out[name] = Path(path)
    return out


@app.command("evaluate-links")
def evaluate_links_command(
    links: Annotated[Path, typer.Argument(help="links.bedpe (from 'chromexpr attribute').")],
    crispr: Annotated[
        Path,
        typer.Argument(help="CRISPRi pairs: EPCrisprBenchmark table (GRCh38 or the hg19 lift)."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path(
        "links_eval"
    ),
    name: Annotated[str, typer.Option("--name", help="Name of these links in the outputs.")] = (
        "links"
    ),
    compare: Annotated[
        list[str] | None,
        typer.Option("--compare", help="More links on the same pairs: NAME=links.bedpe (repeat)."),
    ] = None,
    score_column: Annotated[
        str | None,
        typer.Option("--score-column", help="Links column to rank by [default: the raw score]."),
    ] = None,
    max_distance: Annotated[
        int, typer.Option("--max-distance", help="Largest TSS-element distance kept (bp).")
    ] = 1_000_000,
    recall: Annotated[
        float, typer.Option("--recall", help="Recall at which precision is reported.")
    ] = 0.7,
    n_boot: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap resamples over pairs (0: none).")
    ] = 1000,
    seed: Seed = 0,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Score links against CRISPRi perturbations: AUPRC, precision at 70% recall, distance
    baseline, bootstrap interval, PR curve, per-pair table."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.evaluate.crispr import evaluate_links_files
        from chromexpr.log import logger

        paths = evaluate_links_files(
            links,
            crispr,
            output,
            compare=_named_paths(compare),
            name=name,
            score_column=score_column,
            max_distance=max_distance,
            recall=recall,
            n_boot=n_boot,
            seed=seed,
            force=force,
        )
        logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
