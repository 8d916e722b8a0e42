"""chromexpr's one bigWig writer, validated: whole arrays or one block at a time.

Used by the simulator (:func:`write_bigwig`) and by attribution tracks
(:class:`BigWigTrackWriter`). Intervals are **0-based, half-open** ``[start, end)``; bases not
covered by any interval are written as no data (readers usually treat them as 0 or NaN). Values are
stored as float32, and adjacent intervals whose float32 values are equal are written as one
(:func:`merge_runs`): a run of zeros is one record, as UCSC's ``bedGraphToBigWig`` writes it.
Zoom levels follow UCSC's rule too (:mod:`chromexpr.io._bbi_format`, which writes the binary
layout; pyBigWig stopped after 2 levels on sparse tracks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from chromexpr.errors import InputError

__all__ = ["BigWigTrackWriter", "merge_runs", "write_bigwig"]

#: The most zoom levels a written bigWig holds.
MAX_ZOOMS = 10


def merge_runs(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join touching intervals of equal float32 value (sorted, non-overlapping input).

    Returns ``(starts, ends, float32 values)``; the signal per base is unchanged.

    Examples
    --------
    >>> s, e, v = merge_runs(np.array([0, 10, 20, 35]), np.array([10, 20, 30, 40]),
    ...                      np.array([0.0, 0.0, 0.0, 0.0]))
    >>> s.tolist(), e.tolist(), v.tolist()
    ([0, 35], [30, 40], [0.0, 0.0])
    """
    v32 = np.asarray(values, dtype=np.float32)
    n = v32.shape[0]
    if n < 2:
        return starts, ends, v32
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (starts[1:] != ends[:-1]) | (v32[1:] != v32[:-1])
    first = np.flatnonzero(new_run)
    last = np.append(first[1:] - 1, n - 1)
    return starts[first], ends[last], v32[first]


def _chrom_codes(
    chrom_sizes: Mapping[str, int], chroms: Sequence[str] | np.ndarray | str, n: int
) -> np.ndarray:
    """Index into ``chrom_sizes`` of each interval's chromosome (hash-based; no string sort)."""
    import pandas as pd

    names = list(chrom_sizes)
    index = {name: i for i, name in enumerate(names)}
    if isinstance(chroms, str):
        if chroms not in index:
            raise InputError(f"bigWig: chromosome {chroms!r} is not in the chromosome sizes")
        return np.full(n, index[chroms], dtype=np.int64)
    codes, uniques = pd.factorize(np.asarray(chroms, dtype=object).reshape(-1))
    if codes.shape[0] != n:
        raise InputError(f"bigWig: {codes.shape[0]} chromosome names for {n} intervals")
    unknown = [str(c) for c in uniques if str(c) not in index]
    if unknown:
        raise InputError(
            f"bigWig: chromosome {unknown[0]!r} is not in the chromosome sizes",
            fix="pass sizes for every chromosome the intervals use",
        )
    lookup = np.array([index[str(c)] for c in uniques], dtype=np.int64)
    return lookup[codes]


def _validated_order(
    chrom_sizes: Mapping[str, int],
    chrom_index: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Check the intervals; return ``(order, sorted chrom_index)`` by chromosome, then start."""
    names = list(chrom_sizes)
    size = np.array([int(chrom_sizes[n]) for n in names], dtype=np.int64)[chrom_index]
    bad = np.flatnonzero((starts < 0) | (ends <= starts) | (ends > size))
    if bad.size:
        k = int(bad[0])
        raise InputError(
            f"bigWig: interval {names[chrom_index[k]]}:{starts[k]}-{ends[k]} is empty or outside "
            f"[0, {size[k]}) (0-based, half-open)"
        )
    if not np.all(np.isfinite(values)):
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(
            f"bigWig: value {values[k]} at {names[chrom_index[k]]}:{starts[k]}-{ends[k]} "
            "is not finite"
        )
    presorted = bool(
        np.all(
            (chrom_index[1:] > chrom_index[:-1])
            | ((chrom_index[1:] == chrom_index[:-1]) & (starts[1:] >= starts[:-1]))
        )
    )
    order = np.arange(starts.shape[0]) if presorted else np.lexsort((starts, chrom_index))
    s_chrom, s_start, s_end = chrom_index[order], starts[order], ends[order]
    overlap = np.flatnonzero((s_chrom[1:] == s_chrom[:-1]) & (s_start[1:] < s_end[:-1]))
    if overlap.size:
        k = int(overlap[0])
        raise InputError(
            f"bigWig: intervals {names[s_chrom[k]]}:{s_start[k]}-{s_end[k]} and "
            f"{names[s_chrom[k + 1]]}:{s_start[k + 1]}-{s_end[k + 1]} overlap",
            fix="merge or flatten overlapping intervals before writing",
        )
    return order, s_chrom


def write_bigwig(
    path: str | Path,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str] | np.ndarray | str,
    starts: Sequence[int] | np.ndarray,
    ends: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
) -> None:
    """Write intervals with values to a bigWig file.

    Parameters
    ----------
    path
        Output file (overwritten).
    chrom_sizes
        Every chromosome of the header with its length, in header order; intervals are written in
        this order of chromosomes, each chromosome's sorted by start.
    chroms
        Chromosome of each interval, shape ``(n,)``, or one name (a ``str``) for all.
    starts, ends
        0-based, half-open coordinates, shape ``(n,)``; intervals may come in any order but must not
        overlap and must lie within ``[0, chrom_sizes[chrom])``.
    values
        Signal of each interval, shape ``(n,)``, finite (stored as float32).

    Raises
    ------
    InputError
        Unknown chromosome, empty or out-of-bounds interval, overlapping intervals, non-finite
        value, mismatched lengths.

    Examples
    --------
    >>> import tempfile, pyBigWig
    >>> out = Path(tempfile.mkdtemp()) / "x.bw"
    >>> write_bigwig(out, {"chr1": 1000}, ["chr1", "chr1"], [100, 10], [120, 20], [2.0, 1.0])
    >>> bw = pyBigWig.open(str(out)); bw.intervals("chr1"); bw.close()
    ((10, 20, 1.0), (100, 120, 2.0))
    """
    starts_a = np.asarray(starts, dtype=np.int64).reshape(-1)
    ends_a = np.asarray(ends, dtype=np.int64).reshape(-1)
    values_a = np.asarray(values, dtype=np.float64).reshape(-1)
    n = starts_a.shape[0]
    if ends_a.shape[0] != n or values_a.shape[0] != n:
        raise InputError(
            f"bigWig: {n} starts, {ends_a.shape[0]} ends and {values_a.shape[0]} values "
            "differ in length"
        )
    if not chrom_sizes:
        raise InputError("bigWig: no chromosome sizes given")
    bad_size = [c for c, s in chrom_sizes.items() if int(s) <= 0]
    if bad_size:
        raise InputError(f"bigWig: chromosome {bad_size[0]!r} has a non-positive size")
    chrom_index = _chrom_codes(chrom_sizes, chroms, n)
    order, s_chrom = _validated_order(chrom_sizes, chrom_index, starts_a, ends_a, values_a)
    s_start, s_end, s_value = starts_a[order], ends_a[order], values_a[order]
    names = list(chrom_sizes)
    bounds = np.searchsorted(s_chrom, np.arange(len(names) + 1), side="left")
    with BigWigTrackWriter(path, chrom_sizes, validate=False) as writer:
        for i, name in enumerate(names):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            if lo < hi:
                writer.add(name, s_start[lo:hi], s_end[lo:hi], s_value[lo:hi])


_SPILL = np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")])


class BigWigTrackWriter:
    """Write a bigWig one chromosome block at a time (pyBigWig), validating every block.

    Blocks must come in header order of chromosomes, each sorted by start, non-overlapping (also
    across blocks of one chromosome), within ``[0, size)``, with finite values. Touching intervals
    of equal float32 value are written as one, also across blocks (the last interval of a block is
    held back until the next block or :meth:`close`). Zoom levels are computed on close.

    Parameters
    ----------
    path
        Output file (overwritten).
    chrom_sizes
        Header: every chromosome with its length, in order.
    validate
        Check every block (callers that validated their intervals already may skip it).

    Examples
    --------
    >>> import tempfile, pyBigWig
    >>> out = Path(tempfile.mkdtemp()) / "t.bw"
    >>> with BigWigTrackWriter(out, {"chr1": 100, "chr2": 60}) as w:
    ...     w.add("chr1", [0, 10], [10, 20], [1.0, -2.0])
    ...     w.add("chr2", [5], [50], [0.5])
    ...     w.add("chr2", [50], [60], [0.5])
    >>> bw = pyBigWig.open(str(out)); bw.intervals("chr1"), bw.intervals("chr2"); bw.close()
    (((0, 10, 1.0), (10, 20, -2.0)), ((5, 60, 0.5),))
    """

    def __init__(
        self, path: str | Path, chrom_sizes: Mapping[str, int], *, validate: bool = True
    ) -> None:
        import tempfile

        from chromexpr.io import _bbi_format as bbi

        if not chrom_sizes:
            raise InputError("bigWig: no chromosome sizes given")
        self.path = Path(path)
        self._sizes = {str(c): int(s) for c, s in chrom_sizes.items()}
        self._order = {c: i for i, c in enumerate(self._sizes)}
        self._validate = validate
        self._last_chrom = -1
        self._last_end = 0
        self._pending: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None
        try:
            handle = self.path.open("w+b")
        except OSError as exc:
            raise InputError(f"cannot open for writing: {exc.strerror}", path=self.path) from exc
        self._bw: Any = handle
        self._layout = bbi.Layout()
        self._offsets = bbi.write_preamble(handle, list(self._sizes.items()))
        # every record also goes to an anonymous spill file, read back per chromosome for zooms
        self._spill = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close())
        self._spilled: list[tuple[int, int]] = []
        self._min_width = np.iinfo(np.int64).max
        self._n_records = 0

    def add(
        self,
        chrom: str,
        starts: Sequence[int] | np.ndarray,
        ends: Sequence[int] | np.ndarray,
        values: Sequence[float] | np.ndarray,
    ) -> None:
        """Append intervals of ``chrom`` (see the class docs for the rules)."""
        s = np.asarray(starts, dtype=np.int64).reshape(-1)
        e = np.asarray(ends, dtype=np.int64).reshape(-1)
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if not s.shape == e.shape == v.shape:
            raise InputError(
                f"bigWig: {s.size} starts, {e.size} ends and {v.size} values differ in length"
            )
        if s.size == 0:
            return
        if chrom not in self._order:
            raise InputError(f"bigWig: chromosome {chrom!r} is not in the header", path=self.path)
        index = self._order[chrom]
        if index < self._last_chrom:
            raise InputError(
                f"bigWig: chromosome {chrom!r} comes after a later one in header order",
                path=self.path,
            )
        if index > self._last_chrom:
            self._last_chrom, self._last_end = index, 0
        size = self._sizes[chrom]
        if self._validate and (
            np.any(e <= s)
            or s[0] < self._last_end
            or np.any(s[1:] < e[:-1])
            or e[-1] > size
            or s[0] < 0
        ):
            raise InputError(
                f"bigWig: intervals on {chrom} are empty, unsorted, overlapping or outside [0, "
                f"{size})",
                path=self.path,
            )
        if self._validate and not np.all(np.isfinite(v)):
            raise InputError(f"bigWig: non-finite value on {chrom}", path=self.path)
        self._last_end = int(e[-1])
        pending = self._pending
        if pending is not None and pending[0] == chrom:
            s = np.concatenate([pending[1], s])
            e = np.concatenate([pending[2], e])
            v = np.concatenate([pending[3], v])
        else:
            self._flush()
        s, e, v32 = merge_runs(s, e, v)
        self._write(chrom, s[:-1], e[:-1], v32[:-1])
        self._pending = (chrom, s[-1:], e[-1:], v32[-1:].astype(np.float64))

    def _write(self, chrom: str, s: np.ndarray, e: np.ndarray, v32: np.ndarray) -> None:
        from chromexpr.io import _bbi_format as bbi

        if s.size == 0:
            return
        chrom_id = self._order[chrom]
        bbi.write_sections(self._bw, self._layout, chrom_id, s, e, v32)
        rec = np.empty(s.size, dtype=_SPILL)
        rec["start"], rec["end"], rec["value"] = s, e, v32
        self._spill.write(rec.tobytes())
        self._spilled.append((chrom_id, int(s.size)))
        self._min_width = min(self._min_width, int((e - s).min()))
        self._n_records += int(s.size)

    def _flush(self) -> None:
        if self._pending is not None:
            chrom, s, e, v = self._pending
            self._write(chrom, s, e, v.astype(np.float32))
            self._pending = None

    def close(self) -> None:
        """Finish the file (writes the held-back interval, the index and zoom levels)."""
        if self._bw is None:
            return
        try:
            self._flush()
            self._finish()
        finally:
            self._bw.close()
            self._bw = None
            self._spill.close()

    def _zoom_records(self, reduction: int) -> list[np.ndarray]:
        from chromexpr.io import _bbi_format as bbi

        self._spill.flush()
        data = np.memmap(self._spill, dtype=_SPILL, mode="r") if self._n_records else None
        sizes = list(self._sizes.values())
        out: list[np.ndarray] = []
        lo = 0
        for chrom_id, count in self._spilled:
            assert data is not None
            block = data[lo : lo + count]
            lo += count
            out.append(
                bbi.zoom_records(
                    chrom_id,
                    sizes[chrom_id],
                    block["start"].astype(np.int64),
                    block["end"].astype(np.int64),
                    block["value"],
                    reduction,
                )
            )
        return out

    def _finish(self) -> None:
        from chromexpr.io import _bbi_format as bbi

        handle = self._bw
        end_of_data = handle.tell()
        index = bbi.write_r_tree(handle, self._layout.data_blocks, end_of_data)
        cache: dict[int, list[np.ndarray]] = {}

        def count(reduction: int) -> int:
            if reduction not in cache:
                cache[reduction] = self._zoom_records(reduction)
            return sum(r.size for r in cache[reduction])

        reductions = (
            bbi.zoom_reductions(self._min_width, self._layout.summary.bases, self._n_records, count)
            if self._n_records
            else []
        )
        zooms = []
        for reduction in reductions[:MAX_ZOOMS]:
            data, zoom_index = bbi.write_zoom_level(handle, self._layout, cache[reduction])
            zooms.append((reduction, data, zoom_index))
        bbi.write_header(handle, self._offsets, self._layout, index, zooms)

    def __enter__(self) -> BigWigTrackWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
