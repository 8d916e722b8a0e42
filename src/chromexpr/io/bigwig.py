"""Read whole bigWig files into numpy arrays.

This is a small, self-contained implementation of the bigWig binary format (Kent et al. 2010,
*Bioinformatics* 26:2204; UCSC ``bbiFile.h`` / ``bwgInternal.h``), written so that every interval
of a file lands in flat numpy arrays without building one Python object per interval:

* the 64-byte common header (magic ``0x888FFC26``; either byte order),
* the chromosome B+ tree (name -> chromosome id and size),
* the full-resolution R-tree index, walked to its leaves to list every data block,
* the data blocks (zlib-compressed when the header's ``uncompressBufSize`` is non-zero), each
  holding sections of bedGraph (type 1), variableStep (type 2) or fixedStep (type 3) items,
  which are parsed with :func:`numpy.frombuffer` and structured dtypes.

Zoom levels, summaries and auto-SQL are not read. All coordinates are 0-based, half-open.
Any problem with the file raises :class:`chromexpr.errors.InputError` with a one-line message.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, NoReturn

import numpy as np

from chromexpr.errors import InputError

__all__ = ["BigWigIntervals", "bigwig_chrom_sizes", "read_bigwig"]

BIGWIG_MAGIC = 0x888FFC26
BIGBED_MAGIC = 0x8789F2EB
CHROM_TREE_MAGIC = 0x78CA8C91
RTREE_MAGIC = 0x2468ACE0

_HEADER_SIZE = 64
_CHROM_TREE_HEADER_SIZE = 32
_RTREE_HEADER_SIZE = 48
_NODE_HEADER_SIZE = 4
_RTREE_LEAF_ITEM_SIZE = 32
_RTREE_BRANCH_ITEM_SIZE = 24
_SECTION_HEADER_SIZE = 24
_MAX_TREE_DEPTH = 64

_BEDGRAPH, _VARSTEP, _FIXEDSTEP = 1, 2, 3
_ITEM_SIZE = {_BEDGRAPH: 12, _VARSTEP: 8, _FIXEDSTEP: 4}

# Compressed bytes read (and decompressed) per batch: bounds the memory held by decompressed blocks.
_BATCH_BYTES = 32 * 1024 * 1024
# Below this many compressed bytes a batch is decompressed on the calling thread only.
_PARALLEL_MIN_BYTES = 1 * 1024 * 1024

_FIX_CORRUPT = "re-download the file or re-create it, e.g. with bedGraphToBigWig"
_FIX_NOT_BIGWIG = "pass a bigWig file (.bw); convert bedGraph with bedGraphToBigWig"


@dataclass(frozen=True, eq=False)
class BigWigIntervals:
    """Every interval of a bigWig file (or of some of its chromosomes), as flat arrays.

    Coordinates are 0-based and half-open: interval ``k`` covers bases
    ``starts[k] <= x < ends[k]`` of its chromosome.

    Attributes
    ----------
    chrom_sizes : dict of str to int
        Every chromosome named in the file's header, with its length, in file order (the order
        of the chromosome B+ tree leaves), whether or not it has data.
    chroms : list of str
        Chromosomes with at least one decoded interval, in the order their data appear in the
        file.
    offsets : numpy.ndarray
        ``int64``, length ``len(chroms) + 1``; the intervals of ``chroms[i]`` are the
        rows ``offsets[i]:offsets[i + 1]`` of ``starts``, ``ends`` and ``values``.
    starts : numpy.ndarray
        ``int64`` 0-based interval starts. Within a chromosome, in stored order (sorted by start
        in any valid bigWig; not re-checked here).
    ends : numpy.ndarray
        ``int64`` exclusive interval ends.
    values : numpy.ndarray
        ``float32`` values as stored; NaN and infinite values are kept as they are.
    """

    chrom_sizes: dict[str, int]
    chroms: list[str]
    offsets: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        """Return the total number of intervals."""
        return int(self.starts.shape[0])

    def __repr__(self) -> str:
        return (
            f"BigWigIntervals({len(self.chrom_sizes)} chromosomes in the header, "
            f"{len(self.chroms)} with data, {len(self)} intervals)"
        )


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def read_bigwig(path: str | Path, *, chroms: Collection[str] | None = None) -> BigWigIntervals:
    """Read every interval of a bigWig file into numpy arrays.

    Parameters
    ----------
    path : str or pathlib.Path
        The bigWig file (either byte order; compressed or not).
    chroms : collection of str, optional
        Decode only these chromosomes; the data blocks of other chromosomes are neither read nor
        decompressed. Names that are not in the file are ignored (they have no data). ``None``
        (the default) decodes every chromosome.

    Returns
    -------
    BigWigIntervals
        Intervals with 0-based, half-open coordinates, grouped by chromosome in file order and,
        within a chromosome, in stored order (sorted by start). ``chrom_sizes`` always lists every
        chromosome of the header, even when ``chroms`` restricts what is decoded.

    Raises
    ------
    chromexpr.errors.InputError
        The file is missing or unreadable, is not a bigWig (e.g. a bigBed or a text file), is
        truncated, or has a corrupt header, index or data block.
    TypeError
        ``chroms`` is a single string rather than a collection of names.
    """
    if isinstance(chroms, str | bytes):
        raise TypeError("chroms must be a collection of chromosome names, not a single string")
    with _BigWigFile(path) as bw:
        chrom_table = bw.read_chrom_tree()
        if chroms is None:
            wanted: set[int] | None = None
        else:
            by_name = {c.name: c.chrom_id for c in chrom_table}
            wanted = {by_name[c] for c in chroms if c in by_name}
        blocks = bw.read_block_index(wanted)
        return bw.read_blocks(blocks, chrom_table, wanted)


def bigwig_chrom_sizes(path: str | Path) -> dict[str, int]:
    """Return the chromosome names and lengths listed in a bigWig file's header.

    Parameters
    ----------
    path : str or pathlib.Path
        The bigWig file.

    Returns
    -------
    dict of str to int
        Chromosome name -> length in bases, in file order (the order of the chromosome B+ tree
        leaves), including chromosomes without data. Valid positions of a chromosome of length
        ``n`` are ``0 <= x < n`` (0-based, half-open).

    Raises
    ------
    chromexpr.errors.InputError
        The file is missing or unreadable, is not a bigWig, or its header or chromosome tree is
        truncated or corrupt.
    """
    with _BigWigFile(path) as bw:
        return {c.name: c.size for c in bw.read_chrom_tree()}


# --------------------------------------------------------------------------------------------
# Implementation
# --------------------------------------------------------------------------------------------


class _Chrom(NamedTuple):
    name: str
    chrom_id: int
    size: int


class _Block(NamedTuple):
    offset: int
    size: int


class _Section(NamedTuple):
    chrom_id: int
    kind: int
    n_items: int
    data: bytes
    pos: int
    start: int
    step: int
    span: int


class _Header(NamedTuple):
    version: int
    zoom_levels: int
    chrom_tree_offset: int
    full_data_offset: int
    full_index_offset: int
    uncompress_buf_size: int


class _BigWigFile:
    """An open bigWig file: bounds-checked reads plus the parsers of each structure."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        try:
            self._fh: BinaryIO = Path(path).open("rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise InputError(
                "file not found", path=path, fix="check the path to the bigWig file"
            ) from None
        except IsADirectoryError:
            raise InputError(
                "is a directory, not a bigWig file", path=path, fix=_FIX_NOT_BIGWIG
            ) from None
        except OSError as exc:
            raise InputError(
                f"cannot open the file ({exc.strerror or exc})",
                path=path,
                fix="check the path and its permissions",
            ) from None
        try:
            self.size = os.fstat(self._fh.fileno()).st_size
            self.header = self._read_header()
        except BaseException:
            self._fh.close()
            raise

    # -- context manager ------------------------------------------------------------------------

    def __enter__(self) -> _BigWigFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    # -- low-level reads ------------------------------------------------------------------------

    def _corrupt(self, what: str) -> NoReturn:
        raise InputError(f"truncated or corrupt bigWig ({what})", path=self.path, fix=_FIX_CORRUPT)

    def _read(self, offset: int, size: int, what: str) -> bytes:
        """Read exactly ``size`` bytes at ``offset`` or raise InputError."""
        if offset < 0 or size < 0 or offset + size > self.size:
            self._corrupt(f"{what} at offset {offset} extends past the end of the file")
        try:
            self._fh.seek(offset)
            data = self._fh.read(size)
        except OSError as exc:
            raise InputError(
                f"cannot read the file ({exc.strerror or exc})", path=self.path, fix=_FIX_CORRUPT
            ) from None
        if len(data) != size:
            self._corrupt(f"{what} at offset {offset} extends past the end of the file")
        return data

    # -- header ---------------------------------------------------------------------------------

    def _read_header(self) -> _Header:
        if self.size == 0:
            raise InputError(
                "not a bigWig file (file is empty)", path=self.path, fix=_FIX_NOT_BIGWIG
            )
        if self.size < _HEADER_SIZE:
            raise InputError(
                f"not a bigWig file (only {self.size} bytes, shorter than a bigWig header)",
                path=self.path,
                fix=_FIX_NOT_BIGWIG,
            )
        raw = self._read(0, _HEADER_SIZE, "header")
        (magic_le,) = struct.unpack_from("<I", raw)
        (magic_be,) = struct.unpack_from(">I", raw)
        if BIGWIG_MAGIC in (magic_le, magic_be):
            self.endian = "<" if magic_le == BIGWIG_MAGIC else ">"
        elif BIGBED_MAGIC in (magic_le, magic_be):
            raise InputError(
                "not a bigWig file (it is a bigBed file)", path=self.path, fix=_FIX_NOT_BIGWIG
            )
        else:
            raise InputError(
                "not a bigWig file (bad magic number)", path=self.path, fix=_FIX_NOT_BIGWIG
            )
        e = self.endian
        # Every bigWig writer (UCSC, libBigWig, bigtools) ends the file with the magic number
        # again; UCSC's bbiFileCheckSigs relies on it to detect truncated files.
        (end_magic,) = struct.unpack(e + "I", self._read(self.size - 4, 4, "end signature"))
        if end_magic != BIGWIG_MAGIC:
            self._corrupt("the file does not end with the bigWig signature")
        (
            _magic,
            version,
            zoom_levels,
            chrom_tree_offset,
            full_data_offset,
            full_index_offset,
            _field_count,
            _defined_field_count,
            _auto_sql_offset,
            _total_summary_offset,
            uncompress_buf_size,
            _extension_offset,
        ) = struct.unpack(e + "IHHQQQHHQQIQ", raw)
        for name, off in (
            ("chromosome tree", chrom_tree_offset),
            ("data", full_data_offset),
            ("index", full_index_offset),
        ):
            if name == "index" and off == 0:
                continue  # libBigWig writes no index (offset 0) when a file has no data
            if not _HEADER_SIZE <= off < self.size:
                self._corrupt(f"{name} offset {off} is outside the file of {self.size} bytes")
        # Sections and R-tree items use the same byte order as the header.
        self._bedgraph_dtype = np.dtype(
            [("start", e + "u4"), ("end", e + "u4"), ("value", e + "f4")]
        )
        self._varstep_dtype = np.dtype([("start", e + "u4"), ("value", e + "f4")])
        self._fixedstep_dtype = np.dtype(e + "f4")
        self._rtree_leaf_dtype = np.dtype(
            [
                ("start_chrom", e + "u4"),
                ("start_base", e + "u4"),
                ("end_chrom", e + "u4"),
                ("end_base", e + "u4"),
                ("offset", e + "u8"),
                ("size", e + "u8"),
            ]
        )
        return _Header(
            version,
            zoom_levels,
            chrom_tree_offset,
            full_data_offset,
            full_index_offset,
            uncompress_buf_size,
        )

    # -- chromosome B+ tree ---------------------------------------------------------------------

    def read_chrom_tree(self) -> list[_Chrom]:
        """Return the chromosomes of the B+ tree, in leaf order."""
        e = self.endian
        offset = self.header.chrom_tree_offset
        raw = self._read(offset, _CHROM_TREE_HEADER_SIZE, "chromosome tree header")
        magic, _block_size, key_size, val_size, item_count, _reserved = struct.unpack(
            e + "IIIIQQ", raw
        )
        if magic != CHROM_TREE_MAGIC:
            self._corrupt(f"bad chromosome tree magic number at offset {offset}")
        if key_size == 0 or val_size != 8:
            self._corrupt(
                f"chromosome tree at offset {offset} has key size {key_size} and "
                f"value size {val_size}"
            )
        item_size = key_size + 8
        leaf_fmt = struct.Struct(e + f"{key_size}sII")
        node_fmt = struct.Struct(e + "BBH")
        child_fmt = struct.Struct(e + f"{key_size}sQ")

        chroms: list[_Chrom] = []
        visited: set[int] = set()

        def walk(node_offset: int, depth: int) -> None:
            if depth > _MAX_TREE_DEPTH or node_offset in visited:
                self._corrupt(f"chromosome tree node at offset {node_offset} loops")
            visited.add(node_offset)
            is_leaf, _res, count = node_fmt.unpack(
                self._read(node_offset, _NODE_HEADER_SIZE, "chromosome tree node")
            )
            body = self._read(
                node_offset + _NODE_HEADER_SIZE, count * item_size, "chromosome tree node"
            )
            if is_leaf:
                for key, chrom_id, chrom_size in leaf_fmt.iter_unpack(body):
                    try:
                        name = key.rstrip(b"\0").decode("ascii")
                    except UnicodeDecodeError:
                        self._corrupt(
                            f"chromosome name in the tree node at offset {node_offset} is not ASCII"
                        )
                    chroms.append(_Chrom(name, chrom_id, chrom_size))
            else:
                for _key, child in child_fmt.iter_unpack(body):
                    walk(child, depth + 1)

        walk(offset + _CHROM_TREE_HEADER_SIZE, 0)
        if len(chroms) != item_count:
            self._corrupt(
                f"chromosome tree holds {len(chroms)} chromosomes, its header says {item_count}"
            )
        if len({c.chrom_id for c in chroms}) != len(chroms) or len({c.name for c in chroms}) != len(
            chroms
        ):
            self._corrupt("chromosome tree has duplicate names or ids")
        return chroms

    # -- R-tree index ---------------------------------------------------------------------------

    def read_block_index(self, wanted: set[int] | None) -> list[_Block]:
        """Return the data blocks (offset, size) that may hold ``wanted`` chromosomes, by offset.

        ``wanted=None`` means every block.
        """
        e = self.endian
        offset = self.header.full_index_offset
        if offset == 0:
            return []
        raw = self._read(offset, _RTREE_HEADER_SIZE, "index header")
        magic = struct.unpack_from(e + "I", raw)[0]
        if magic != RTREE_MAGIC:
            self._corrupt(f"bad index magic number at offset {offset}")
        if wanted is not None and not wanted:
            return []
        wanted_sorted = sorted(wanted) if wanted is not None else []

        def overlaps(lo: int, hi: int) -> bool:
            if wanted is None:
                return True
            i = bisect_left(wanted_sorted, lo)
            return i < len(wanted_sorted) and wanted_sorted[i] <= hi

        node_fmt = struct.Struct(e + "BBH")
        branch_fmt = struct.Struct(e + "IIIIQ")
        leaves: list[np.ndarray] = []
        visited: set[int] = set()

        def walk(node_offset: int, depth: int) -> None:
            if depth > _MAX_TREE_DEPTH or node_offset in visited:
                self._corrupt(f"index node at offset {node_offset} loops")
            visited.add(node_offset)
            is_leaf, _res, count = node_fmt.unpack(
                self._read(node_offset, _NODE_HEADER_SIZE, "index node")
            )
            body_offset = node_offset + _NODE_HEADER_SIZE
            if is_leaf:
                body = self._read(body_offset, count * _RTREE_LEAF_ITEM_SIZE, "index node")
                items = np.frombuffer(body, dtype=self._rtree_leaf_dtype)
                if wanted is not None:
                    keep = [
                        overlaps(int(a), int(b))
                        for a, b in zip(items["start_chrom"], items["end_chrom"], strict=True)
                    ]
                    items = items[np.asarray(keep, dtype=bool)]
                leaves.append(items)
            else:
                body = self._read(body_offset, count * _RTREE_BRANCH_ITEM_SIZE, "index node")
                for lo, _lo_base, hi, _hi_base, child in branch_fmt.iter_unpack(body):
                    if overlaps(lo, hi):
                        walk(child, depth + 1)

        walk(offset + _RTREE_HEADER_SIZE, 0)
        if not leaves:
            return []
        items = np.concatenate(leaves)
        offsets = items["offset"].astype(np.uint64)
        sizes = items["size"].astype(np.uint64)
        # Keep each block once, in file order.
        order = np.unique(offsets, return_index=True)[1]
        blocks = [_Block(int(offsets[i]), int(sizes[i])) for i in order]
        for b in blocks:
            if b.offset < self.header.full_data_offset or b.offset + b.size > self.size:
                self._corrupt(
                    f"data block at offset {b.offset} of {b.size} bytes lies outside the file"
                )
        return blocks

    # -- data blocks ----------------------------------------------------------------------------

    def _batches(self, blocks: Sequence[_Block]) -> Iterator[list[tuple[_Block, memoryview]]]:
        """Yield the raw bytes of the blocks, read in contiguous runs, in batches."""
        i = 0
        while i < len(blocks):
            # One read for a run of adjacent blocks (the usual layout), capped at _BATCH_BYTES.
            j = i + 1
            end = blocks[i].offset + blocks[i].size
            while (
                j < len(blocks)
                and blocks[j].offset == end
                and end + blocks[j].size - blocks[i].offset <= _BATCH_BYTES
            ):
                end += blocks[j].size
                j += 1
            start = blocks[i].offset
            raw = memoryview(self._read(start, end - start, "data block"))
            yield [(b, raw[b.offset - start : b.offset - start + b.size]) for b in blocks[i:j]]
            i = j

    def _inflate(self, block: _Block, raw: memoryview) -> bytes:
        if self.header.uncompress_buf_size == 0:
            return raw.tobytes()
        try:
            return zlib.decompress(raw, bufsize=max(self.header.uncompress_buf_size, 1024))
        except zlib.error:
            self._corrupt(f"block at offset {block.offset} could not be decompressed")

    def _sections(
        self, block: _Block, data: bytes, wanted: set[int] | None, known: set[int]
    ) -> list[_Section]:
        """Split a decompressed block into its sections (only those of wanted chromosomes)."""
        head = struct.Struct(self.endian + "IIIIIBBH")
        out: list[_Section] = []
        pos = 0
        n = len(data)
        while pos < n:
            if pos + _SECTION_HEADER_SIZE > n:
                self._corrupt(f"block at offset {block.offset} ends inside a section header")
            chrom_id, start, _end, step, span, kind, _res, count = head.unpack_from(data, pos)
            pos += _SECTION_HEADER_SIZE
            item_size = _ITEM_SIZE.get(kind)
            if item_size is None:
                self._corrupt(
                    f"block at offset {block.offset} has a section of unknown type {kind}"
                )
            if pos + count * item_size > n:
                self._corrupt(f"block at offset {block.offset} ends inside a section")
            if chrom_id not in known:
                self._corrupt(
                    f"block at offset {block.offset} refers to unknown chromosome id {chrom_id}"
                )
            if count and (wanted is None or chrom_id in wanted):
                out.append(_Section(chrom_id, kind, count, data, pos, start, step, span))
            pos += count * item_size
        return out

    def read_blocks(
        self, blocks: Sequence[_Block], chrom_table: list[_Chrom], wanted: set[int] | None
    ) -> BigWigIntervals:
        """Decode ``blocks`` into a :class:`BigWigIntervals`."""
        known = {c.chrom_id for c in chrom_table}
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        section_chroms: list[int] = []
        section_counts: list[int] = []
        pool: ThreadPoolExecutor | None = None

        def decode(item: tuple[_Block, memoryview]) -> list[_Section]:
            block, raw = item
            return self._sections(block, self._inflate(block, raw), wanted, known)

        try:
            for batch in self._batches(blocks):
                nbytes = sum(b.size for b, _ in batch)
                run: Callable[..., Iterator[list[_Section]]] = map
                if (
                    self.header.uncompress_buf_size
                    and nbytes >= _PARALLEL_MIN_BYTES
                    and len(batch) > 1
                    and _n_workers() > 1
                ):
                    if pool is None:
                        pool = ThreadPoolExecutor(max_workers=_n_workers())
                    run = pool.map
                sections = [s for secs in run(decode, batch) for s in secs]
                pieces.append(self._fill(sections, pool if run is not map else None))
                section_chroms.extend(s.chrom_id for s in sections)
                section_counts.extend(s.n_items for s in sections)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

        names = {c.chrom_id: c.name for c in chrom_table}
        starts, ends, values = _concat(pieces)
        # Chromosomes are listed in order of first appearance in the file.
        rank_of: dict[int, int] = {}
        for chrom_id in section_chroms:
            rank_of.setdefault(chrom_id, len(rank_of))
        ranks = np.array([rank_of[c] for c in section_chroms], dtype=np.int64)
        counts = np.array(section_counts, dtype=np.int64)
        if np.any(np.diff(ranks) < 0):
            # A chromosome's data are interrupted by another's (no writer does this): gather
            # each chromosome's intervals, keeping their file order.
            perm = np.argsort(np.repeat(ranks, counts), kind="stable")
            starts, ends, values = starts[perm], ends[perm], values[perm]
        per_chrom = np.zeros(len(rank_of), dtype=np.int64)
        np.add.at(per_chrom, ranks, counts)
        offsets = np.zeros(len(rank_of) + 1, dtype=np.int64)
        np.cumsum(per_chrom, out=offsets[1:])
        return BigWigIntervals(
            chrom_sizes={c.name: c.size for c in chrom_table},
            chroms=[names[c] for c in rank_of],
            offsets=offsets,
            starts=starts,
            ends=ends,
            values=values,
        )

    def _fill(
        self, sections: Sequence[_Section], pool: ThreadPoolExecutor | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Convert parsed sections into (starts, ends, values) arrays, in section order."""
        counts = [s.n_items for s in sections]
        bounds = np.zeros(len(sections) + 1, dtype=np.int64)
        np.cumsum(counts, out=bounds[1:])
        total = int(bounds[-1])
        starts = np.empty(total, dtype=np.int64)
        ends = np.empty(total, dtype=np.int64)
        values = np.empty(total, dtype=np.float32)

        def fill(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                self._fill_section(sections[k], int(bounds[k]), starts, ends, values)

        if pool is None or len(sections) < 2:
            fill(0, len(sections))
        else:
            # Contiguous runs of sections with about equal item counts, one per worker.
            n_chunks = min(len(sections), _n_workers())
            cuts = np.searchsorted(bounds, np.linspace(0, total, n_chunks + 1)[1:-1])
            edges = [0, *(int(c) for c in cuts), len(sections)]
            futures = [pool.submit(fill, a, b) for a, b in itertools.pairwise(edges)]
            for fut in futures:
                fut.result()
        return starts, ends, values

    def _fill_section(
        self, s: _Section, o: int, starts: np.ndarray, ends: np.ndarray, values: np.ndarray
    ) -> None:
        """Write one section's items into rows ``o:o + s.n_items`` of the output arrays."""
        n = s.n_items
        stop = o + n
        if s.kind == _BEDGRAPH:
            rec = np.frombuffer(s.data, dtype=self._bedgraph_dtype, count=n, offset=s.pos)
            starts[o:stop] = rec["start"]
            ends[o:stop] = rec["end"]
            values[o:stop] = rec["value"]
        elif s.kind == _VARSTEP:
            rec = np.frombuffer(s.data, dtype=self._varstep_dtype, count=n, offset=s.pos)
            starts[o:stop] = rec["start"]
            np.add(starts[o:stop], s.span, out=ends[o:stop])
            values[o:stop] = rec["value"]
        else:
            values[o:stop] = np.frombuffer(
                s.data, dtype=self._fixedstep_dtype, count=n, offset=s.pos
            )
            np.multiply(np.arange(n, dtype=np.int64), s.step, out=starts[o:stop])
            starts[o:stop] += s.start
            np.add(starts[o:stop], s.span, out=ends[o:stop])


def _concat(
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not pieces:
        return (
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.float32),
        )
    if len(pieces) == 1:
        return pieces[0]
    s, e, v = zip(*pieces, strict=True)
    return np.concatenate(s), np.concatenate(e), np.concatenate(v)


def _n_workers() -> int:
    n = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    return max(1, min(n, 8))
