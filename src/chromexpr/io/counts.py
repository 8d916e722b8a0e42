"""Consensus-peak count matrices: regions x samples counts as per-sample signals.

Layouts read:

* nf-core/atacseq ``consensus_peaks.*.featureCounts.txt``: ``#`` program line, then
  ``Geneid Chr Start End Strand Length <sample BAMs...>`` with 1-based inclusive ``Start``;
* a counts TSV with ``chrom start end`` columns (0-based) followed by one column per sample;
* a counts TSV whose first column is a region id (``chr1:100-200``, or the name column of a regions
  BED given with ``regions=``) followed by one column per sample.

Each region is a peak whose value is its count: the signal over the region's bases equals the count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.binning.signal import SignalTrack, track_from_chrom_arrays
from chromexpr.errors import InputError
from chromexpr.io.intervals import check_coordinates, split_by_chrom
from chromexpr.io.text import GZIP_ERRORS, corrupt_gzip, open_text, require_nonempty

_REGION_ID = re.compile(r"^(?P<chrom>[^:\s]+)[:_](?P<start>\d+)[-_](?P<end>\d+)$")
_BAM_SUFFIXES = (".mLb.clN.sorted.bam", ".mRp.clN.sorted.bam", ".sorted.bam", ".bam")


@dataclass(frozen=True)
class CountMatrix:
    """Regions (0-based, half-open) and their counts per sample."""

    regions: pd.DataFrame  # chrom, start, end
    counts: pd.DataFrame  # one float64 column per sample, rows aligned with regions

    @property
    def samples(self) -> list[str]:
        """Sample names, in column order."""
        return [str(c) for c in self.counts.columns]


def clean_sample_name(column: str) -> str:
    """featureCounts column (a BAM path) -> sample name.

    Examples
    --------
    >>> clean_sample_name("/data/bwa/CTRL_R1.mLb.clN.sorted.bam")
    'CTRL_R1'
    """
    name = column.rsplit("/", 1)[-1]
    for suffix in _BAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_featurecounts(path: str | Path) -> bool:
    """Whether the file looks like featureCounts output.

    That is, a header starting ``Geneid  Chr  Start  End``.
    """
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            return line.split("\t")[:4] == ["Geneid", "Chr", "Start", "End"]
    return False


def _numeric_counts(frame: pd.DataFrame, path: str | Path, first_line: int) -> pd.DataFrame:
    counts = frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    bad = counts.isna().to_numpy() | ~np.isfinite(counts.to_numpy())
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"count for sample {counts.columns[col]!r} is not a finite number"
            f" ({frame.iat[row, col]!r})",
            path=path,
            line=first_line + int(row),
        )
    # negative values are kept: normalised matrices (gimmemotifs' relative accessibility) have them
    return counts


def _header_line_number(path: str | Path) -> int:
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.startswith("#") and line.strip():
                return number
    return 0


def _regions_from_ids(ids: pd.Series, path: str | Path, first_line: int) -> pd.DataFrame:
    parsed = ids.astype(str).str.extract(_REGION_ID)
    missing = parsed["chrom"].isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"region id {ids.iloc[row]!r} is not chrom:start-end",
            path=path,
            line=first_line + row,
            fix="give the regions as a BED with --regions, or chrom/start/end columns",
        )
    return pd.DataFrame(
        {
            "chrom": parsed["chrom"],
            "start": parsed["start"].astype(np.int64),
            "end": parsed["end"].astype(np.int64),
        }
    )


def read_count_matrix(path: str | Path, regions: str | Path | None = None) -> CountMatrix:
    """Read a consensus-peak count matrix (see the module docstring for the layouts).

    A matrix feeds one sample per column, so reads are cached, keyed by the files' modification time
    and size (a file changed on disk is read again).

    Raises
    ------
    InputError
        Empty file, unknown layout, non-numeric or non-finite values, regions that cannot be placed.
    """
    return _read_count_matrix(
        Path(path),
        _stamp(path),
        None if regions is None else Path(regions),
        None if regions is None else _stamp(regions),
    )


def _stamp(path: str | Path) -> tuple[int, int]:
    try:
        stat = Path(path).stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_count_matrix(
    path: Path, stamp: tuple[int, int], regions: Path | None, regions_stamp: tuple[int, int] | None
) -> CountMatrix:
    del stamp, regions_stamp  # cache keys only
    require_nonempty(path, "count matrix")
    header_line = _header_line_number(path)
    try:
        frame = pd.read_csv(
            path, sep="\t", comment=None, skiprows=header_line - 1, dtype=str, compression="infer"
        )
    except GZIP_ERRORS as exc:
        raise corrupt_gzip(path) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"malformed count matrix: {str(exc).splitlines()[0]}", path=path) from exc
    first_data = header_line + 1
    columns = list(frame.columns)
    if columns[:4] == ["Geneid", "Chr", "Start", "End"]:
        sample_cols = (
            [c for c in columns[6:]] if columns[4:6] == ["Strand", "Length"] else columns[4:]
        )
        starts = pd.to_numeric(frame["Start"], errors="coerce")
        ends = pd.to_numeric(frame["End"], errors="coerce")
        if starts.isna().any() or ends.isna().any():
            row = int(np.flatnonzero((starts.isna() | ends.isna()).to_numpy())[0])
            raise InputError("Start/End must be integers", path=path, line=first_data + row)
        # featureCounts: 1-based inclusive; multi-exon "features" list ';'-joined starts — not peaks
        table = pd.DataFrame(
            {
                "chrom": frame["Chr"].astype(str),
                "start": starts.astype(np.int64) - 1,
                "end": ends.astype(np.int64),
            }
        )
        counts = _numeric_counts(frame[sample_cols], path, first_data)
        counts.columns = [clean_sample_name(c) for c in sample_cols]
    elif [c.lower() for c in columns[:3]] in (["chrom", "start", "end"], ["chr", "start", "end"]):
        starts = pd.to_numeric(frame[columns[1]], errors="coerce")
        ends = pd.to_numeric(frame[columns[2]], errors="coerce")
        if starts.isna().any() or ends.isna().any():
            row = int(np.flatnonzero((starts.isna() | ends.isna()).to_numpy())[0])
            raise InputError("start/end must be integers", path=path, line=first_data + row)
        table = pd.DataFrame(
            {
                "chrom": frame[columns[0]].astype(str),
                "start": starts.astype(np.int64),
                "end": ends.astype(np.int64),
            }
        )
        counts = _numeric_counts(frame[columns[3:]], path, first_data)
    elif regions is not None:
        bed = pd.read_csv(
            regions,
            sep="\t",
            header=None,
            comment="#",
            dtype={0: str},
            usecols=[0, 1, 2, 3] if _bed_has_names(regions) else [0, 1, 2],
        )
        if bed.shape[1] >= 4:
            lookup = {str(n): i for i, n in enumerate(bed[3])}
            index = frame[columns[0]].astype(str).map(lookup)
            if index.isna().any():
                row = int(np.flatnonzero(index.isna().to_numpy())[0])
                raise InputError(
                    f"region {frame[columns[0]].iloc[row]!r} is not named in {regions}",
                    path=path,
                    line=first_data + row,
                )
            picked = bed.iloc[index.astype(int).to_numpy()]
        else:
            if len(bed) != len(frame):
                raise InputError(
                    f"{len(frame)} count rows but {len(bed)} regions in {regions}", path=path
                )
            picked = bed
        table = pd.DataFrame(
            {
                "chrom": picked[0].astype(str).to_numpy(),
                "start": picked[1].to_numpy(np.int64),
                "end": picked[2].to_numpy(np.int64),
            }
        )
        counts = _numeric_counts(frame[columns[1:]], path, first_data)
    else:
        table = _regions_from_ids(frame[columns[0]], path, first_data)
        counts = _numeric_counts(frame[columns[1:]], path, first_data)
    if counts.shape[1] == 0:
        raise InputError("no sample columns in the count matrix", path=path)
    table = table.reset_index(drop=True)
    counts = counts.reset_index(drop=True)
    check_coordinates(table, path, header_lines=1)
    return CountMatrix(regions=table, counts=counts)


def _bed_has_names(path: str | Path) -> bool:
    with open_text(path) as handle:
        for line in handle:
            if line.strip() and not line.startswith(("#", "track", "browser")):
                return len(line.split("\t")) >= 4
    return False


def track_from_counts(matrix: CountMatrix, sample: str) -> SignalTrack:
    """One sample of a count matrix as a signal.

    The count lies over each region's bases (overlaps add up).
    """
    if sample not in matrix.counts.columns:
        raise InputError(
            f"sample {sample!r} is not a column of the count matrix"
            f" (columns: {', '.join(matrix.samples[:8])})"
        )
    frame = matrix.regions.assign(value=matrix.counts[sample].to_numpy())
    frame = frame[frame["value"].to_numpy() != 0]
    return track_from_chrom_arrays(split_by_chrom(frame), flatten=True)
