"""``chromexpr evaluate``: MODEL_DIR + dataset + expression -> EVAL_DIR (metrics, per gene, per
sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


@app.command("evaluate")
def evaluate_command(
    model_dir: Annotated[Path, typer.Argument(help="MODEL_DIR (from 'chromexpr train').")],
    dataset: Annotated[
        Path, typer.Argument(help="Dataset with the model's bin geometry and genes.")
    ],
    expression: Annotated[
        Path, typer.Option("--expression", "-e", help="Observed expression TSV.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="EVAL_DIR to write.")] = Path(
        "evaluation"
    ),
    splits: Annotated[
        str | None,
        typer.Option("--splits", help="Only these splits, comma-separated (train,dev,test,oof)."),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth", help="Planted links (simulate's truth/links.bedpe): AUPRC of recovery."
        ),
    ] = None,
    noise_free: Annotated[
        Path | None,
        typer.Option("--noise-free", help="Noise-free expression (truth/): the noise ceiling."),
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(
            "--baselines",
            help="Baselines refitted on the model's training samples and scored beside it "
            "(comma-separated, or 'none'; the mean baseline is always there).",
        ),
    ] = "activity,neighbors",
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Score a model beside the mean, activity and neighbors baselines: metrics.tsv, per_gene.tsv,
    per_sample.tsv, predictions.tsv, comparison.tsv, history.tsv, model.json (and truth.tsv),
    written together: EVAL_DIR appears complete or not at all."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.evaluate.run import evaluate
        from chromexpr.log import logger

        wanted = [s.strip() for s in (splits or "").split(",") if s.strip()] or None
        refit = [b.strip() for b in baselines.split(",") if b.strip() and b.strip() != "none"]
        unknown = sorted(set(refit) - {"activity", "neighbors"})
        if unknown:
            raise typer.BadParameter(
                f"unknown baseline(s) {', '.join(unknown)}: choose activity, neighbors or none",
                param_hint="--baselines",
            )
        paths = evaluate(
            model_dir,
            dataset,
            expression,
            output,
            force=force,
            splits=wanted,
            truth=truth,
            noise_free=noise_free,
            baselines=tuple(refit),
        )
        logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
