"""``chromexpr simulate``: paired accessibility + expression with planted regulatory truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, OutputDir, Quiet, Seed, Threads


@app.command("simulate")
def simulate_command(
    output: OutputDir,
    genes: Annotated[int, typer.Option("--genes", help="Genes to simulate.")] = 400,
    samples: Annotated[int, typer.Option("--samples", help="Samples to simulate.")] = 24,
    groups: Annotated[
        int, typer.Option("--groups", help="Cell-type families the samples fall into.")
    ] = 4,
    peaks_per_sample: Annotated[
        int | None,
        typer.Option(
            "--peaks-per-sample",
            help="Peaks called per sample (default: 50 per Mb of TSS ± 1 Mb windows).",
        ),
    ] = None,
    seed: Seed = 0,
    annotation: Annotated[
        Path | None,
        typer.Option(
            "--annotation",
            help="GTF/GFF3/BED whose genes (positions, strands, ids) replace the bundled layout.",
        ),
    ] = None,
    formats: Annotated[
        str,
        typer.Option(
            "--format", help="Comma-separated accessibility outputs: bigwig, peaks, counts."
        ),
    ] = "bigwig,peaks,counts",
    no_expression: Annotated[
        int,
        typer.Option(
            "--no-expression",
            help="Samples with accessibility only (their expression goes to truth/).",
        ),
    ] = 2,
    lineage: Annotated[
        str,
        typer.Option(
            "--lineage",
            help="How groups are related: tree (balanced lineage tree) or independent.",
        ),
    ] = "tree",
    lineage_strength: Annotated[
        float,
        typer.Option(
            "--lineage-strength", help="Share of variance sibling groups have in common (0-1)."
        ),
    ] = 0.95,
    programme_share: Annotated[
        float,
        typer.Option(
            "--programme-share",
            help="Share of noise-free expression variance from a trans programme along the "
            "lineage (0-1).",
        ),
    ] = 0.5,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Simulate accessibility (bigWig, narrowPeak, featureCounts) and expression (TPM) with known
    links.

    Outputs under DIR: annotation.gtf.gz, chrom.sizes, bigwig/, peaks/, counts/, expression/,
    samples.tsv, samples_peaks.tsv, truth/ and provenance.json (see docs/simulation.md).
    """
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.log import logger
        from chromexpr.simulate import SimulationConfig, parse_formats, simulate

        config = SimulationConfig(
            n_genes=genes,
            n_samples=samples,
            n_groups=groups,
            n_no_expression=no_expression,
            peaks_per_sample=peaks_per_sample,
            seed=seed,
            annotation=str(annotation) if annotation is not None else None,
            formats=parse_formats(formats),
            lineage=lineage,  # type: ignore[arg-type]  # validated by SimulationConfig
            lineage_strength=lineage_strength,
            programme_share=programme_share,
        )
        result = simulate(config, output, force=force, workers=threads)
        logger.info(result.summary())
