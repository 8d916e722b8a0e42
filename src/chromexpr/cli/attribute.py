"""``chromexpr attribute``: per-bin attributions of a model as bigWig tracks, links and tables."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, DeviceChoice, Force, Quiet, Threads


class MethodChoice(str, Enum):
    saliency = "saliency"
    input_x_gradient = "input_x_gradient"
    integrated_gradients = "integrated_gradients"
    deeplift = "deeplift"


class TargetChoice(str, Enum):
    prediction = "prediction"
    error = "error"


class BaselineChoice(str, Enum):
    zeros = "zeros"
    mean = "mean"


class LinkScoreChoice(str, Enum):
    contact = "contact"
    attribution = "attribution"


class CombineChoice(str, Enum):
    sum = "sum"
    mean = "mean"
    maxabs = "maxabs"


def _names(value: str | None) -> list[str] | None:
    """Comma-separated names, or ``@FILE`` with one name per line (``#`` comments allowed)."""
    if value is None:
        return None
    if value.startswith("@"):
        from chromexpr.io.text import data_lines

        return [line.split("\t")[0].strip() for _, line in data_lines(Path(value[1:]))]
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command("attribute")
def attribute_command(
    model_dir: Annotated[Path, typer.Argument(help="Model directory (from 'chromexpr train').")],
    dataset: Annotated[Path, typer.Argument(help="Binned dataset (from 'chromexpr bin').")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path(
        "attribution"
    ),
    method: Annotated[
        MethodChoice, typer.Option(help="Attribution method.")
    ] = MethodChoice.integrated_gradients,
    target: Annotated[
        TargetChoice,
        typer.Option(help="Attribute the prediction, or its squared error (needs expression)."),
    ] = TargetChoice.prediction,
    baseline: Annotated[
        BaselineChoice, typer.Option(help="Reference input: zeros, or the per-bin training mean.")
    ] = BaselineChoice.zeros,
    samples: Annotated[
        str | None,
        typer.Option("--samples", help="Samples to attribute: a,b,c or @file [default: all]."),
    ] = None,
    genes: Annotated[
        str | None,
        typer.Option("--genes", help="Gene ids or names: a,b,c or @file [default: all]."),
    ] = None,
    combine: Annotated[
        CombineChoice, typer.Option(help="Rule where several genes' windows cover a base.")
    ] = CombineChoice.sum,
    resolution: Annotated[
        int | None,
        typer.Option(
            "--resolution",
            min=0,
            help="Track grid in bp (0: exact segments) [default: the dataset's bin size].",
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Linked bins per gene.")] = 10,
    link_score: Annotated[
        LinkScoreChoice,
        typer.Option(
            "--link-score",
            help="Rank links by activity x contact x model evidence (contact), or by the "
            "attribution alone.",
        ),
    ] = LinkScoreChoice.contact,
    all_links: Annotated[
        bool,
        typer.Option(
            "--all-links", help="Write every bin with a non-zero link score, not the top-k."
        ),
    ] = False,
    contacts: Annotated[
        Path | None,
        typer.Option(
            "--contacts",
            help="Hi-C/Micro-C .cool/.mcool (file.mcool::resolutions/N): measured contacts "
            "replace the power law in the contact link score.",
        ),
    ] = None,
    per_group: Annotated[
        bool, typer.Option("--per-group", help="One track per sample group instead of per sample.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per forward/backward pass.")
    ] = 256,
    n_steps: Annotated[
        int, typer.Option("--n-steps", min=1, help="Integrated-gradients steps.")
    ] = 50,
    device: Annotated[
        DeviceChoice, typer.Option(help="Where torch models run.")
    ] = DeviceChoice.auto,
    chrom_sizes: Annotated[
        Path | None, typer.Option("--chrom-sizes", help="chrom<TAB>length for the track headers.")
    ] = None,
    expression: Annotated[
        Path | None,
        typer.Option("--expression", help="Expression matrix (needed for --target error)."),
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Attribute predictions (or errors) to bins: bigWig per sample, gene links, profiles."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.dataset.store import open_dataset
        from chromexpr.explain import adapters
        from chromexpr.explain.run import attribute
        from chromexpr.log import logger

        sizes = None
        if chrom_sizes is not None:
            from chromexpr.io.chroms import read_chrom_sizes

            sizes = read_chrom_sizes(chrom_sizes)
        data = open_dataset(dataset)
        model = adapters.attributable_from_model_dir(model_dir, data, expression=expression)
        paths = attribute(
            model,
            data,
            output,
            method=method.value,
            target=target.value,
            baseline=baseline.value,
            samples=_names(samples),
            genes=_names(genes),
            combine=combine.value,
            resolution=resolution,
            top_k=top_k,
            link_score=link_score.value,
            all_links=all_links,
            contacts=contacts,
            per_group=per_group,
            batch_size=batch_size,
            n_steps=n_steps,
            device=device.value,
            chrom_sizes=sizes,
            force=force,
        )
        logger.info(
            "wrote %d track(s), links and summaries to %s", len(paths.tracks), paths.directory
        )
