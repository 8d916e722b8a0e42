"""``chromexpr predict``: MODEL_DIR + dataset -> genes x samples expression table."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


class ScaleChoice(str, Enum):
    tpm = "tpm"
    transformed = "transformed"


@app.command("predict")
def predict_command(
    model_dir: Annotated[Path, typer.Argument(help="MODEL_DIR (from 'chromexpr train').")],
    dataset: Annotated[
        Path, typer.Argument(help="Dataset with the model's bin geometry and genes.")
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Predictions TSV ('-': stdout; NAME.gz: gzipped)."),
    ] = Path("predictions.tsv"),
    samples: Annotated[
        str | None,
        typer.Option("--samples", help="Only these samples, comma-separated [default: all]."),
    ] = None,
    scale: Annotated[
        ScaleChoice,
        typer.Option(help="tpm: back-transformed (e.g. 2^y - 1); transformed: the model's scale."),
    ] = ScaleChoice.tpm,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Predict expression (gene_id, gene_name, samples...) for samples with accessibility only."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.atomic import check_writable
        from chromexpr.io.expression import write_long_table
        from chromexpr.io.text import is_stdio
        from chromexpr.log import logger
        from chromexpr.models.predict import predict_table

        if not is_stdio(output):
            check_writable(output, force=force)
        names = (
            [s.strip() for s in samples.split(",") if s.strip()] if samples is not None else None
        )
        if names == []:
            raise typer.BadParameter(
                "--samples names no sample (leave the option out to predict them all)"
            )
        table = predict_table(model_dir, dataset, samples=names, scale=scale.value)
        write_long_table(output, table, force=force)
        logger.info("wrote %s", output)
