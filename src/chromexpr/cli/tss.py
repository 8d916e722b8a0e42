"""``chromexpr tss``: annotation (GTF/GFF3) -> sorted BED of one TSS per gene."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from chromexpr.cli._app import app, command_context
from chromexpr.cli._options import Debug, Force, Quiet, Threads


class LevelChoice(str, Enum):
    gene = "gene"
    transcript = "transcript"


class SelectChoice(str, Enum):
    canonical = "canonical"
    longest = "longest"
    all = "all"


class IdChoice(str, Enum):
    gene_id = "gene_id"
    gene_name = "gene_name"


def parse_chroms(value: str | None) -> tuple[str, ...] | None:
    """``None``/``"primary"`` -> primary assembly; ``"all"`` -> empty filter; else a comma list."""
    if value is None or value == "primary":
        return None
    if value == "all":
        return ()
    return tuple(c.strip() for c in value.split(",") if c.strip())


@app.command("tss")
def tss_command(
    annotation: Annotated[
        Path,
        typer.Argument(
            help="GTF or GFF3 (plain or .gz), or a gene BED; '-' reads standard input (format"
            " detected from the content)."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Output BED ('-': stdout; NAME.gz: gzipped) [default: stdout]."
        ),
    ] = None,
    level: Annotated[
        LevelChoice, typer.Option(help="TSS of the gene feature or of transcripts.")
    ] = LevelChoice.gene,
    select: Annotated[
        SelectChoice, typer.Option(help="With --level transcript: which transcripts.")
    ] = SelectChoice.canonical,
    gene_type: Annotated[
        list[str] | None,
        typer.Option(
            "--gene-type", help="Keep this gene_type/gene_biotype (repeatable) [default: all]."
        ),
    ] = None,
    chroms: Annotated[
        str | None,
        typer.Option(
            help=(
                "Comma-separated chromosomes to keep, 'primary' (chr1-22,X,Y; the default)"
                " or 'all'."
            )
        ),
    ] = None,
    id_field: Annotated[
        IdChoice, typer.Option("--id", help="Attribute that names each row.")
    ] = IdChoice.gene_id,
    keep_version: Annotated[
        bool, typer.Option("--keep-version", help="Keep Ensembl version suffixes (ENSG...15).")
    ] = False,
    force: Force = False,
    quiet: Quiet = False,
    debug: Debug = False,
    threads: Threads = None,
) -> None:
    """Derive one TSS per gene (1-bp BED6 + gene_name + gene_type, 0-based, sorted)."""
    with command_context(quiet=quiet, debug=debug, threads=threads):
        from chromexpr.annotation.tss import TssOptions, load_tss
        from chromexpr.atomic import check_writable
        from chromexpr.io.text import is_stdio, open_output, spooled_input
        from chromexpr.io.tss_bed import write_tss_bed
        from chromexpr.log import logger

        options = TssOptions(
            level=level.value,
            select=select.value,
            gene_types=tuple(gene_type or ()),
            chroms=parse_chroms(chroms),
            id_field=id_field.value,
            keep_version=keep_version,
        )
        if output is not None and not is_stdio(output):
            check_writable(output, force=force)
        with spooled_input(annotation) as source:
            table = load_tss(source, options)
        with open_output(output, force=force) as handle:
            write_tss_bed(table, handle)
        logger.info("%d TSSs on %d chromosomes", len(table), table["chrom"].nunique())
