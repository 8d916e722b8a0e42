"""Files of ``chromexpr simulate``: the bundled layout (read), every output but bigWigs (written).

Tables arrive with named columns and 0-based, half-open coordinates; each writer converts to its
format's convention (GTF and featureCounts: 1-based, inclusive). Compressed outputs carry no file
name or time in their gzip header, so that equal inputs give byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.io.bedpe import BEDPE_STANDARD_COLUMNS

__all__ = [
    "BAM_SUFFIX",
    "NARROWPEAK_COLUMNS",
    "make_folders",
    "read_bundled_chrom_sizes",
    "read_bundled_genes",
    "write_bedpe",
    "write_chrom_sizes",
    "write_consensus_bed",
    "write_expression_matrix",
    "write_featurecounts",
    "write_gtf",
    "write_json",
    "write_narrowpeak",
    "write_table",
    "write_text",
]

#: Suffix nf-core/atacseq gives the BAM of each sample (featureCounts column names).
BAM_SUFFIX = ".mLb.clN.sorted.bam"

#: Columns of a narrowPeak frame, in file order (ENCODE narrowPeak, BED6+4).
NARROWPEAK_COLUMNS = [
    "chrom",
    "start",
    "end",
    "name",
    "score",
    "strand",
    "signal_value",
    "p_value",
    "q_value",
    "peak",
]

_BUNDLED_GENES = "hg38_genes.tsv.gz"
_BUNDLED_SIZES = "hg38.chrom.sizes"
_ROWS_PER_CHUNK = 50_000


def read_bundled_genes() -> pd.DataFrame:
    """The bundled hg38 protein-coding layout: ``chrom, tss, strand, gene_id, gene_name``.

    ``tss`` is 0-based; rows are sorted by chromosome (chr1..chr22, chrX, chrY) and TSS. See
    ``src/chromexpr/data/PROVENANCE.md``.
    """
    ref = resources.files("chromexpr").joinpath("data", _BUNDLED_GENES)
    with ref.open("rb") as raw:
        return pd.read_csv(
            raw,
            sep="\t",
            compression="gzip",
            dtype={"chrom": str, "tss": np.int64, "strand": str, "gene_id": str, "gene_name": str},
            keep_default_na=False,
        )


def read_bundled_chrom_sizes() -> dict[str, int]:
    """hg38 sizes of chr1-22, X, Y (GRCh38 no-alt analysis set), in that order."""
    ref = resources.files("chromexpr").joinpath("data", _BUNDLED_SIZES)
    sizes: dict[str, int] = {}
    for line in ref.read_text(encoding="utf-8").splitlines():
        if line.strip():
            chrom, size = line.split("\t")[:2]
            sizes[chrom] = int(size)
    return sizes


def make_folders(root: str | Path, names: Sequence[str]) -> None:
    """Create ``root`` (which must not exist yet) and the sub-folders ``names`` inside it."""
    root = Path(root)
    root.mkdir(parents=True)
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)


@contextmanager
def _open_text_out(path: str | Path) -> Iterator[IO[str]]:
    """Open ``path`` for writing text; gzip (without name or time stamp) when it ends in ``.gz``."""
    p = Path(path)
    if p.name.endswith(".gz"):
        with (
            p.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        ):
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            try:
                yield text
            finally:
                text.flush()
                text.detach()
    else:
        with p.open("w", encoding="utf-8", newline="\n") as handle:
            yield handle


def _write_frame(
    handle: IO[str], frame: pd.DataFrame, *, header: bool, float_format: str | None = None
) -> None:
    """Tab-separated rows in chunks (bounded memory for the formatted text)."""
    for lo in range(0, max(len(frame), 1), _ROWS_PER_CHUNK):
        chunk = frame.iloc[lo : lo + _ROWS_PER_CHUNK]
        chunk.to_csv(
            handle,
            sep="\t",
            index=False,
            header=header and lo == 0,
            float_format=float_format,
            lineterminator="\n",
        )


def _write_rows(handle: IO[str], columns: Sequence[Sequence[object]], row_format: str) -> None:
    """Rows formatted with one ``%``-format (about 4x faster than ``DataFrame.to_csv``)."""
    rows = zip(*columns, strict=True)
    while chunk := list(islice(rows, _ROWS_PER_CHUNK)):
        handle.write("".join(map(row_format.__mod__, chunk)))


def write_table(
    path: str | Path, frame: pd.DataFrame, *, float_format: str | None = "%.6g"
) -> None:
    """A tab-separated table with a header line (gzip when ``path`` ends in ``.gz``)."""
    with _open_text_out(path) as handle:
        _write_frame(handle, frame, header=True, float_format=float_format)


def write_chrom_sizes(path: str | Path, chrom_sizes: Mapping[str, int]) -> None:
    """``chrom<TAB>size`` lines, in the mapping's order (UCSC chrom.sizes)."""
    with _open_text_out(path) as handle:
        for chrom, size in chrom_sizes.items():
            handle.write(f"{chrom}\t{int(size)}\n")


def write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8, newlines unchanged (gzip when ``path`` ends in ``.gz``)."""
    with _open_text_out(path) as handle:
        handle.write(text)


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Pretty-printed JSON with a final newline."""
    with _open_text_out(path) as handle:
        handle.write(json.dumps(data, indent=2) + "\n")


def write_gtf(path: str | Path, models: pd.DataFrame, *, source: str = "chromexpr") -> None:
    """GENCODE-style GTF of gene, transcript and exon rows.

    Parameters
    ----------
    path
        Output (``.gtf`` or ``.gtf.gz``).
    models
        Columns ``chrom, start, end, strand, feature, gene_id, transcript_id, gene_name,
        transcript_name, exon_number, canonical`` (0-based, half-open ``start``/``end``), rows in
        output order (see :func:`chromexpr.simulate.layout.gene_models`). Every gene is
        ``protein_coding``; canonical transcripts and their exons get ``tag "Ensembl_canonical"``.
    source
        Column 2 of every row.
    """
    gene_part = 'gene_id "' + models["gene_id"].astype(str) + '";'
    tx_part = ' transcript_id "' + models["transcript_id"].astype(str) + '";'
    gene_type = ' gene_type "protein_coding";'
    name_part = ' gene_name "' + models["gene_name"].astype(str) + '";'
    tx_type = (
        ' transcript_type "protein_coding"; transcript_name "'
        + models["transcript_name"].astype(str)
        + '";'
    )
    exon_part = (
        " exon_number "
        + models["exon_number"].astype(str)
        + '; exon_id "'
        + models["transcript_id"].str.replace("ENST", "ENSE", regex=False)
        + "."
        + models["exon_number"].astype(str)
        + '";'
    )
    level = " level 2;"
    tag = pd.Series(
        np.where(models["canonical"].to_numpy(dtype=bool), ' tag "Ensembl_canonical";', ""),
        index=models.index,
    )
    is_gene = models["feature"] == "gene"
    is_exon = models["feature"] == "exon"
    transcript_attrs = gene_part + tx_part + gene_type + name_part + tx_type
    transcript_attrs = transcript_attrs + exon_part.where(is_exon, "") + level + tag
    attributes = (gene_part + gene_type + name_part + level).where(is_gene, transcript_attrs)
    lines = (
        models["chrom"].astype(str)
        + f"\t{source}\t"
        + models["feature"].astype(str)
        + "\t"
        + (models["start"].astype(np.int64) + 1).astype(str)
        + "\t"
        + models["end"].astype(np.int64).astype(str)
        + "\t.\t"
        + models["strand"].astype(str)
        + "\t.\t"
        + attributes
    )
    with _open_text_out(path) as handle:
        handle.write("##description: simulated gene models (chromexpr simulate)\n")
        handle.write("##format: gtf\n")
        for lo in range(0, len(lines), _ROWS_PER_CHUNK):
            handle.write("\n".join(lines.iloc[lo : lo + _ROWS_PER_CHUNK]) + "\n")


def write_narrowpeak(path: str | Path, peaks: pd.DataFrame) -> None:
    """ENCODE narrowPeak (BED6+4) from a frame with :data:`NARROWPEAK_COLUMNS` (0-based, half-open).

    ``score`` must be integers in [0, 1000]; ``peak`` is the summit offset from ``start``.
    """
    missing = [c for c in NARROWPEAK_COLUMNS if c not in peaks.columns]
    if missing:
        raise InputError(f"narrowPeak writer: missing column {missing[0]!r}")
    score = peaks["score"].to_numpy()
    if len(score) and (score.min() < 0 or score.max() > 1000):
        raise InputError("narrowPeak writer: score outside [0, 1000]")
    columns = [
        peaks["chrom"].astype(str).tolist(),
        peaks["start"].to_numpy(dtype=np.int64).tolist(),
        peaks["end"].to_numpy(dtype=np.int64).tolist(),
        peaks["name"].astype(str).tolist(),
        score.astype(np.int64).tolist(),
        peaks["strand"].astype(str).tolist(),
        *(peaks[c].to_numpy(dtype=np.float64).tolist() for c in NARROWPEAK_COLUMNS[6:9]),
        peaks["peak"].to_numpy(dtype=np.int64).tolist(),
    ]
    with _open_text_out(path) as handle:
        _write_rows(handle, columns, "%s\t%d\t%d\t%s\t%d\t%s\t%.5f\t%.5f\t%.5f\t%d\n")


def write_consensus_bed(path: str | Path, regions: pd.DataFrame) -> None:
    """Consensus peaks as BED6 (``chrom start end name 0 +``), as nf-core/atacseq writes them."""
    out = pd.DataFrame(
        {
            "chrom": regions["chrom"],
            "start": regions["start"],
            "end": regions["end"],
            "name": regions["name"],
            "score": 0,
            "strand": "+",
        }
    )
    with _open_text_out(path) as handle:
        _write_frame(handle, out, header=False)


def write_featurecounts(
    path: str | Path,
    regions: pd.DataFrame,
    counts: np.ndarray,
    samples: Sequence[str],
    *,
    program_version: str = "2.0.1",
) -> None:
    """A featureCounts table in the nf-core/atacseq layout.

    Parameters
    ----------
    path
        Output file.
    regions
        ``chrom, start, end, name`` (0-based, half-open), one row per consensus peak.
    counts
        ``int (n_regions, n_samples)``.
    samples
        Sample names; columns are named ``<sample>.mLb.clN.sorted.bam``.
    program_version
        featureCounts version written on the program line.

    Notes
    -----
    Line 1 is ``# Program:featureCounts v... ; Command:...``; the header is ``Geneid Chr Start End
    Strand Length <bams>``; ``Start`` is 1-based and inclusive, ``Length = end - start``, ``Strand``
    is ``+``.
    """
    counts = np.asarray(counts)
    if counts.shape != (len(regions), len(samples)):
        raise InputError(
            f"featureCounts writer: counts shape {counts.shape} != ({len(regions)}, {len(samples)})"
        )
    bams = [f"{s}{BAM_SUFFIX}" for s in samples]
    command = " ".join(
        f'"{a}"'
        for a in [
            "featureCounts",
            "-F",
            "SAF",
            "-O",
            "--fracOverlap",
            "0.2",
            "-p",
            "-a",
            "consensus_peaks.mLb.clN.saf",
            "-s",
            "0",
            "-o",
            "consensus_peaks.mLb.clN.featureCounts.txt",
            *bams,
        ]
    )
    start = regions["start"].to_numpy(dtype=np.int64)
    end = regions["end"].to_numpy(dtype=np.int64)
    annotation = pd.DataFrame(
        {
            "Geneid": regions["name"].astype(str).to_numpy(),
            "Chr": regions["chrom"].astype(str).to_numpy(),
            "Start": start + 1,
            "End": end,
            "Strand": "+",
            "Length": end - start,
        }
    )
    with _open_text_out(path) as handle:
        handle.write(f"# Program:featureCounts v{program_version}; Command:{command} (simulated)\n")
        handle.write("\t".join([*annotation.columns, *bams]) + "\n")
        for lo in range(0, len(annotation), _ROWS_PER_CHUNK):
            hi = lo + _ROWS_PER_CHUNK
            chunk = annotation.iloc[lo:hi].reset_index(drop=True)
            values = pd.DataFrame(counts[lo:hi], columns=bams)
            pd.concat([chunk, values], axis=1).to_csv(
                handle, sep="\t", index=False, header=False, lineterminator="\n"
            )


def write_expression_matrix(
    path: str | Path,
    gene_ids: Sequence[str],
    gene_names: Sequence[str],
    samples: Sequence[str],
    values: np.ndarray,
) -> None:
    """nf-core/rnaseq ``salmon.merged.gene_tpm.tsv`` layout: ``gene_id gene_name <samples...>``.

    ``values`` is ``float (n_genes, n_samples)``; written with 4 decimals.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(gene_ids), len(samples)):
        raise InputError(
            f"expression writer: values shape {values.shape} != ({len(gene_ids)}, {len(samples)})"
        )
    frame = pd.DataFrame(values, columns=list(samples))
    frame.insert(0, "gene_name", list(gene_names))
    frame.insert(0, "gene_id", list(gene_ids))
    with _open_text_out(path) as handle:
        _write_frame(handle, frame, header=True, float_format="%.4f")


#: Columns of a BEDPE links frame, in file order (BEDPE 10 columns + 4 named extras).
BEDPE_COLUMNS = [
    *BEDPE_STANDARD_COLUMNS,
    "gene_id",
    "gene_name",
    "effect",
    "distance",
]


def write_bedpe(path: str | Path, links: pd.DataFrame) -> None:
    """BEDPE (0-based, half-open) with a ``#``-prefixed header line naming :data:`BEDPE_COLUMNS`."""
    missing = [c for c in BEDPE_COLUMNS if c not in links.columns]
    if missing:
        raise InputError(f"BEDPE writer: missing column {missing[0]!r}")
    with _open_text_out(path) as handle:
        handle.write("#" + "\t".join(BEDPE_COLUMNS) + "\n")
        _write_frame(handle, links[BEDPE_COLUMNS], header=False, float_format="%.6g")
