"""Writers of ``chromexpr attribute`` outputs: bigWig tracks, BEDPE, UCSC interact, TSV and JSON.

Coordinates are **0-based, half-open** everywhere (BED, BEDPE, interact and bigWig all use them).

Tracks are written in two steps so that memory and open files stay bounded however many samples
there are: :class:`TrackParts` appends each sample's (or group's) segments chromosome by chromosome
to one binary part file per track while attributions stream in, then
:meth:`TrackParts.write_bigwigs` turns each part file into a bigWig (one chromosome in memory at a
time) with :class:`~chromexpr.io.bigwig_writer.BigWigTrackWriter`, the one bigWig writer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr.io.bigwig_writer import BigWigTrackWriter

__all__ = [
    "BigWigTrackWriter",
    "TrackParts",
    "safe_file_names",
    "write_bedpe",
    "write_interact",
    "write_json",
    "write_text",
    "write_tsv",
]

_SEGMENT = np.dtype([("start", "<i8"), ("end", "<i8"), ("value", "<f4")])


class TrackParts:
    """Per-track binary part files of segments, appended chromosome by chromosome, then bigWigs.

    Parameters
    ----------
    directory
        Where the part files go (created; remove it when done).
    n_tracks
        Number of tracks.
    chrom_sizes
        Header of the bigWigs; blocks must be appended in this chromosome order for each track.
    """

    def __init__(self, directory: Path, n_tracks: int, chrom_sizes: Mapping[str, int]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.chrom_sizes = dict(chrom_sizes)
        self._blocks: list[list[tuple[str, int]]] = [[] for _ in range(n_tracks)]

    def _path(self, track: int) -> Path:
        return self.directory / f"{track}.seg"

    def append(
        self, track: int, chrom: str, starts: np.ndarray, ends: np.ndarray, values: np.ndarray
    ) -> None:
        """Append one chromosome block of a track (sorted, non-overlapping segments)."""
        if starts.size == 0:
            return
        rec = np.empty(starts.size, dtype=_SEGMENT)
        rec["start"], rec["end"], rec["value"] = starts, ends, values
        with self._path(track).open("ab") as handle:
            rec.tofile(handle)
        self._blocks[track].append((chrom, int(starts.size)))

    def write_bigwigs(self, paths: Sequence[Path]) -> None:
        """Write track ``i`` to ``paths[i]`` and delete its part file."""
        for track, path in enumerate(paths):
            part = self._path(track)
            with BigWigTrackWriter(path, self.chrom_sizes) as writer:
                if part.exists():
                    data = np.memmap(part, dtype=_SEGMENT, mode="r")
                    lo = 0
                    for chrom, count in self._blocks[track]:
                        block = data[lo : lo + count]
                        writer.add(chrom, block["start"], block["end"], block["value"])
                        lo += count
                    del data
            part.unlink(missing_ok=True)


def safe_file_names(names: Sequence[str], suffix: str) -> list[str]:
    """File names for track names: unsafe characters become ``_``, duplicates get ``-2``, ``-3``...

    Examples
    --------
    >>> safe_file_names(["B cell", "B/cell", "T"], ".bw")
    ['B_cell.bw', 'B_cell-2.bw', 'T.bw']
    """
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "track"
        candidate, i = stem, 1
        while candidate.lower() in seen:
            i += 1
            candidate = f"{stem}-{i}"
        seen.add(candidate.lower())
        out.append(candidate + suffix)
    return out


def write_tsv(frame: pd.DataFrame, path: Path) -> None:
    """Tab-separated with a header, no index, missing values as ``NA``."""
    frame.to_csv(path, sep="\t", index=False, na_rep="NA", float_format="%.6g")


def write_bedpe(frame: pd.DataFrame, path: Path) -> None:
    """BEDPE with a ``#``-prefixed header line (bedtools and IGV skip it)."""
    with path.open("w") as handle:
        handle.write("#" + "\t".join(frame.columns) + "\n")
        frame.to_csv(handle, sep="\t", index=False, header=False, na_rep=".", float_format="%.6g")


def write_interact(frame: pd.DataFrame, path: Path, *, track_line: str | None) -> None:
    """UCSC interact text: an optional ``track`` line, then bed5+13 rows without a header.

    Rows are written in the order ``bedToBigBed`` requires: chromosome names in C (byte) order,
    then ``chromStart``, then ``chromEnd``. Without a track line the file is the input of
    ``bedToBigBed -as=interact.as -type=bed5+13`` (which rejects track lines); with one, a UCSC
    custom track.
    """
    rows = frame.sort_values(
        ["chrom", "chromStart", "chromEnd"],
        key=lambda c: c.map(lambda x: str(x).encode()) if c.name == "chrom" else c,
        kind="stable",
    )
    with path.open("w") as handle:
        if track_line is not None:
            handle.write(track_line + "\n")
        rows.to_csv(handle, sep="\t", index=False, header=False, float_format="%.6g")


def write_json(obj: Any, path: Path) -> None:
    """Indented JSON (non-JSON values written with ``str``)."""
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def write_text(text: str, path: Path) -> None:
    """A text file."""
    path.write_text(text)
