"""Consensus peak set across samples with bedtools (through pybedtools).

Built as nf-core/atacseq builds it: peaks of all samples are pooled, sorted and merged
(``bedtools merge``, optionally bridging gaps of ``merge_distance`` bp); a merged region is kept
when peaks of at least ``min_samples`` distinct samples support it. Each sample's value in a region
is the largest value of its peaks overlapping the region (``bedtools intersect``), 0 if none: a
region x sample matrix that ``chromexpr bin`` reads as a count matrix.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.errors import ChromexprError, InputError
from chromexpr.io.peaks import PeakValue, read_peaks, resolve_peak_value
from chromexpr.io.samples import SampleSource
from chromexpr.naming import natural_key


class BedtoolsMissingError(ChromexprError):
    """The bedtools program that pybedtools drives is not installed."""

    exit_code = 2

    def __init__(self) -> None:
        super().__init__(
            "bedtools is not installed (pybedtools needs it): apt-get install bedtools,"
            " or conda install -c bioconda bedtools"
        )


def require_bedtools() -> None:
    """Raise :class:`BedtoolsMissingError` unless ``bedtools`` is on PATH."""
    if shutil.which("bedtools") is None:
        raise BedtoolsMissingError()


@dataclass(frozen=True)
class Consensus:
    """Merged regions (0-based, half-open) with support counts, and per-sample values."""

    regions: pd.DataFrame  # chrom, start, end, name, n_samples
    values: pd.DataFrame  # one column per sample, rows aligned with regions


def _sample_frame(source: SampleSource, index: int, peak_value: PeakValue) -> pd.DataFrame:
    peak_value = resolve_peak_value(source.path, peak_value)
    track = read_peaks(source.path, value=peak_value)  # validates the file (one-line errors)
    del track
    frame = pd.read_csv(
        source.path,
        sep="\t",
        header=None,
        comment="#",
        usecols=[0, 1, 2, 4, 6]
        if peak_value != "presence" and _n_columns(source.path) >= 7
        else [0, 1, 2],
        dtype={0: str},
        compression="infer",
    )
    value = {"signal": 6, "score": 4}.get(peak_value)
    values = frame[value].to_numpy(np.float64) if value in frame.columns else np.ones(len(frame))
    return pd.DataFrame(
        {"chrom": frame[0], "start": frame[1], "end": frame[2], "sample": index, "value": values}
    )


def _n_columns(path: Path) -> int:
    from chromexpr.io.text import data_lines

    for _, line in data_lines(path):
        return len(line.split("\t"))
    return 0


def consensus_peaks(
    sources: list[SampleSource],
    *,
    min_samples: int = 1,
    merge_distance: int = 0,
    peak_value: PeakValue = "auto",
) -> Consensus:
    """Merge peaks of many samples into a consensus set and tabulate each sample's value per region.

    Parameters
    ----------
    sources
        Peak files (BED/narrowPeak/broadPeak), one per sample.
    min_samples
        Keep regions supported by peaks of at least this many samples.
    merge_distance
        Merge peaks closer than this (``bedtools merge -d``).
    peak_value
        Which peak value goes into the matrix.
    """
    require_bedtools()
    import pybedtools

    if min_samples < 1 or min_samples > len(sources):
        raise InputError(f"--min-samples must be between 1 and {len(sources)}, got {min_samples}")
    bad = [s for s in sources if s.kind != "peaks"]
    if bad:
        raise InputError("consensus needs peak files (BED/narrowPeak/broadPeak)", path=bad[0].path)
    pooled = pd.concat(
        [_sample_frame(s, i, peak_value) for i, s in enumerate(sources)], ignore_index=True
    )
    try:
        peaks = pybedtools.BedTool.from_dataframe(
            pooled[["chrom", "start", "end", "sample", "value"]]
        ).sort()
        merged = peaks.merge(d=merge_distance, c=4, o="count_distinct")
        regions = merged.to_dataframe(
            names=["chrom", "start", "end", "n_samples"], dtype={"chrom": str}
        )
        regions = regions[regions["n_samples"] >= min_samples].reset_index(drop=True)
        regions["name"] = [
            f"{c}:{s}-{e}"
            for c, s, e in zip(regions["chrom"], regions["start"], regions["end"], strict=True)
        ]
        kept = pybedtools.BedTool.from_dataframe(regions[["chrom", "start", "end", "name"]])
        hits = kept.intersect(peaks, wa=True, wb=True).to_dataframe(
            names=[
                "chrom",
                "start",
                "end",
                "name",
                "p_chrom",
                "p_start",
                "p_end",
                "sample",
                "value",
            ],
            dtype={"chrom": str, "p_chrom": str},
        )
    finally:
        pybedtools.cleanup()
    table = np.zeros((len(regions), len(sources)), dtype=np.float64)
    if len(hits):
        row = pd.Index(regions["name"]).get_indexer(hits["name"])
        best = pd.DataFrame(
            {"row": row, "sample": hits["sample"].astype(int), "value": hits["value"]}
        )
        best = best.groupby(["row", "sample"], as_index=False)["value"].max()
        table[best["row"].to_numpy(), best["sample"].to_numpy()] = best["value"].to_numpy()
    order = sorted(
        range(len(regions)),
        key=lambda i: (natural_key(str(regions["chrom"].iloc[i])), int(regions["start"].iloc[i])),
    )
    regions = regions.iloc[order].reset_index(drop=True)
    values = pd.DataFrame(table[order], columns=[s.name for s in sources])
    return Consensus(regions=regions[["chrom", "start", "end", "name", "n_samples"]], values=values)


def write_consensus(consensus: Consensus, bed: Path, matrix: Path) -> None:
    """Write the regions and the matrix.

    Regions as BED5 (name = chrom:start-end, score = n_samples); the matrix as ``chrom start end``
    + samples.
    """
    consensus.regions.to_csv(bed, sep="\t", header=False, index=False)
    table = pd.concat([consensus.regions[["chrom", "start", "end"]], consensus.values], axis=1)
    table.to_csv(matrix, sep="\t", index=False, float_format="%.6g")
