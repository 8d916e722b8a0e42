"""The bigWig binary layout (UCSC bbi, version 4), written with numpy, struct and zlib.

Private to :mod:`chromexpr.io.bigwig_writer`, chromexpr's one bigWig writer. It exists for one
reason: zoom levels. pyBigWig (libBigWig) starts at 16x the mean interval width and stops as soon as
two levels fill the same number of write buffers, so small or sparse tracks got 2 levels where
UCSC's ``bedGraphToBigWig`` writes about 6 and zoomed-out views fell back to raw data. Here the
levels follow UCSC's rule: the first reduction is 10x the smallest interval (doubled until it halves
the data), each next one 4x the previous, and levels are added while they at least halve the record
count, up to 10.

Layout (all little-endian): 64-byte header; one 24-byte header per zoom level; the total summary
(40 bytes); the chromosome B+ tree (one leaf, keys sorted by bytes); the data (a u64 section count,
then zlib-compressed bedGraph sections of up to 1024 records); the data's R-tree index; then per
zoom level a u32 block count, zlib-compressed blocks of up to 1024 summary records and their R-tree
index; the signature again as the file's last 4 bytes. Coordinates are 0-based, half-open.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

BIGWIG_MAGIC = 0x888FFC26
CHROM_TREE_MAGIC = 0x78CA8C91
R_TREE_MAGIC = 0x2468ACE0
VERSION = 4
ITEMS_PER_SLOT = 1024
BLOCK_SIZE = 256
MAX_ZOOMS = 10
ZOOM_INCREMENT = 4

_RECORD = np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")])
_ZOOM = np.dtype(
    [
        ("chrom", "<u4"),
        ("start", "<u4"),
        ("end", "<u4"),
        ("count", "<u4"),
        ("min", "<f4"),
        ("max", "<f4"),
        ("sum", "<f4"),
        ("sumsq", "<f4"),
    ]
)


@dataclass
class _Block:
    """One compressed block and the genomic span it covers (for the R-tree)."""

    chrom: int
    start: int
    end_chrom: int
    end: int
    offset: int
    size: int


@dataclass
class Summary:
    """Running totals of a track (the file's total summary)."""

    bases: int = 0
    minimum: float = np.inf
    maximum: float = -np.inf
    total: float = 0.0
    squares: float = 0.0

    def add(self, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> None:
        width = (ends - starts).astype(np.float64)
        v = values.astype(np.float64)
        self.bases += int(width.sum())
        self.minimum = min(self.minimum, float(v.min()))
        self.maximum = max(self.maximum, float(v.max()))
        self.total += float((v * width).sum())
        self.squares += float((v * v * width).sum())


@dataclass
class Layout:
    """Everything written so far that the header and indexes need at close."""

    data_blocks: list[_Block] = field(default_factory=list)
    max_block_bytes: int = 0
    summary: Summary = field(default_factory=Summary)


def write_preamble(handle: BinaryIO, chrom_sizes: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Reserve the header, zoom headers and total summary; write the chromosome tree and the data
    count placeholder. Returns the offsets to patch at close."""
    handle.write(b"\0" * (64 + 24 * MAX_ZOOMS + 40))
    tree = handle.tell()
    _write_chrom_tree(handle, chrom_sizes)
    data = handle.tell()
    handle.write(struct.pack("<Q", 0))
    return {"chrom_tree": tree, "data": data}


def _write_chrom_tree(handle: BinaryIO, chrom_sizes: Sequence[tuple[str, int]]) -> None:
    """A one-leaf B+ tree: ``(name padded to the longest, chrom id, size)`` sorted by name."""
    keys = [name.encode() for name, _ in chrom_sizes]
    n = len(keys)
    if n > 0xFFFF:
        raise ValueError(f"{n} chromosomes: more than one B+ tree leaf holds")
    key_size = max(len(k) for k in keys)
    handle.write(struct.pack("<IIIIQQ", CHROM_TREE_MAGIC, n, key_size, 8, n, 0))
    handle.write(struct.pack("<BBH", 1, 0, n))
    for chrom_id in sorted(range(n), key=lambda i: keys[i]):
        handle.write(keys[chrom_id].ljust(key_size, b"\0"))
        handle.write(struct.pack("<II", chrom_id, int(chrom_sizes[chrom_id][1])))


def write_sections(
    handle: BinaryIO,
    layout: Layout,
    chrom_id: int,
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
) -> None:
    """Append bedGraph sections (type 1) of one chromosome's sorted records."""
    layout.summary.add(starts, ends, values)
    for lo in range(0, starts.size, ITEMS_PER_SLOT):
        hi = min(lo + ITEMS_PER_SLOT, starts.size)
        rec = np.empty(hi - lo, dtype=_RECORD)
        rec["start"], rec["end"], rec["value"] = starts[lo:hi], ends[lo:hi], values[lo:hi]
        head = struct.pack(
            "<IIIIIBBH", chrom_id, int(starts[lo]), int(ends[hi - 1]), 0, 0, 1, 0, hi - lo
        )
        raw = head + rec.tobytes()
        _write_block(handle, layout, raw, chrom_id, int(starts[lo]), chrom_id, int(ends[hi - 1]))


def _write_block(
    handle: BinaryIO,
    layout: Layout,
    raw: bytes,
    chrom: int,
    start: int,
    end_chrom: int,
    end: int,
    blocks: list[_Block] | None = None,
) -> None:
    packed = zlib.compress(raw, 6)
    offset = handle.tell()
    handle.write(packed)
    layout.max_block_bytes = max(layout.max_block_bytes, len(raw))
    target = layout.data_blocks if blocks is None else blocks
    target.append(_Block(chrom, start, end_chrom, end, offset, len(packed)))


def write_r_tree(handle: BinaryIO, blocks: list[_Block], end_offset: int) -> int:
    """Write a cirTree over ``blocks`` (sorted); returns its offset."""
    index_offset = handle.tell()
    if blocks:
        span = (blocks[0].chrom, blocks[0].start, blocks[-1].end_chrom, blocks[-1].end)
    else:
        span = (0, 0, 0, 0)
    handle.write(
        struct.pack("<IIQIIIIQII", R_TREE_MAGIC, BLOCK_SIZE, len(blocks), *span, end_offset, 1, 0)
    )
    # levels bottom-up: each entry is (chrom, start, end_chrom, end, payload)
    levels: list[list[tuple[int, int, int, int]]] = []
    level = [(b.chrom, b.start, b.end_chrom, b.end) for b in blocks]
    groups = [
        list(range(i, min(i + BLOCK_SIZE, len(level)))) for i in range(0, len(level), BLOCK_SIZE)
    ]
    node_sets: list[list[list[int]]] = [groups or [[]]]
    levels.append(level)
    while len(node_sets[-1]) > 1:
        prev_groups = node_sets[-1]
        prev_level = levels[-1]
        boxes = [
            (prev_level[g[0]][0], prev_level[g[0]][1], prev_level[g[-1]][2], prev_level[g[-1]][3])
            for g in prev_groups
        ]
        levels.append(boxes)
        node_sets.append(
            [
                list(range(i, min(i + BLOCK_SIZE, len(boxes))))
                for i in range(0, len(boxes), BLOCK_SIZE)
            ]
        )
    # write from the root down; node offsets follow from the sizes of the nodes before them
    start = handle.tell()
    sizes_by_depth = []
    for depth in range(len(node_sets) - 1, -1, -1):
        item = 32 if depth == 0 else 24
        sizes_by_depth.append([4 + item * len(g) for g in node_sets[depth]])
    node_offsets: dict[int, list[int]] = {}
    offset = start
    for k, depth in enumerate(range(len(node_sets) - 1, -1, -1)):
        node_offsets[depth] = []
        for size in sizes_by_depth[k]:
            node_offsets[depth].append(offset)
            offset += size
    for depth in range(len(node_sets) - 1, -1, -1):
        leaf = depth == 0
        for g in node_sets[depth]:
            handle.write(struct.pack("<BBH", 1 if leaf else 0, 0, len(g)))
            for i in g:
                box = levels[depth][i]
                if leaf:
                    b = blocks[i]
                    handle.write(struct.pack("<IIIIQQ", *box, b.offset, b.size))
                else:
                    child = node_offsets[depth - 1][i]
                    handle.write(struct.pack("<IIIIQ", *box, child))
    return index_offset


def zoom_reductions(
    min_width: int, bases: int, n_records: int, record_counts: Callable[[int], int]
) -> list[int]:
    """Reduction levels (bp) by UCSC's rule (see the module docs).

    The first candidate is 10x the narrowest record, but at least the mean record width (``bases
    / n_records``): a summary then has at most about twice as many pieces as the data has records,
    however long its runs. ``record_counts(reduction)`` gives the number of summary records at a
    reduction.

    Examples
    --------
    >>> zoom_reductions(100, 100 * 10_000, 10_000, lambda r: max(1, 1_000_000 // r))
    [1000, 4000, 16000, 64000, 256000, 1024000]
    """
    reduction = max(10 * int(min_width), -(-int(bases) // max(int(n_records), 1)), 10)
    count = record_counts(reduction)
    while count * 2 > n_records and reduction < 2**30:
        reduction *= 2
        count = record_counts(reduction)
    levels: list[int] = []
    previous = n_records
    while len(levels) < MAX_ZOOMS and reduction < 2**31 and count * 2 <= previous:
        levels.append(reduction)
        previous = count
        reduction *= ZOOM_INCREMENT
        count = record_counts(reduction)
    return levels


def zoom_records(
    chrom_id: int,
    chrom_size: int,
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    reduction: int,
) -> np.ndarray:
    """Summaries of one chromosome's records over bins ``[k * reduction, (k + 1) * reduction)``
    (clipped to the chromosome): covered bases, min, max, sum and sum of squares per bin that has
    data."""
    first = starts // reduction
    last = (ends - 1) // reduction
    pieces = (last - first + 1).astype(np.int64)
    rec = np.repeat(np.arange(starts.size), pieces)
    offset = np.arange(rec.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    bin_id = first[rec] + offset
    lo = np.maximum(starts[rec], bin_id * reduction)
    hi = np.minimum(ends[rec], (bin_id + 1) * reduction)
    width = (hi - lo).astype(np.float64)
    v = values[rec].astype(np.float64)
    bounds = np.flatnonzero(np.diff(bin_id)) + 1
    heads = np.concatenate([[0], bounds])
    out = np.empty(heads.size, dtype=_ZOOM)
    bins = bin_id[heads]
    out["chrom"] = chrom_id
    out["start"] = bins * reduction
    out["end"] = np.minimum((bins + 1) * reduction, chrom_size)
    out["count"] = np.add.reduceat(width, heads).astype(np.uint32)
    out["min"] = np.minimum.reduceat(v, heads)
    out["max"] = np.maximum.reduceat(v, heads)
    out["sum"] = np.add.reduceat(v * width, heads)
    out["sumsq"] = np.add.reduceat(v * v * width, heads)
    return out


def write_zoom_level(
    handle: BinaryIO, layout: Layout, records: list[np.ndarray]
) -> tuple[int, int]:
    """Write one zoom level's blocks and index; returns ``(data offset, index offset)``."""
    data_offset = handle.tell()
    all_records = np.concatenate(records) if records else np.empty(0, dtype=_ZOOM)
    n_blocks = -(-all_records.size // ITEMS_PER_SLOT)
    handle.write(struct.pack("<I", n_blocks))
    blocks: list[_Block] = []
    for lo in range(0, all_records.size, ITEMS_PER_SLOT):
        chunk = all_records[lo : lo + ITEMS_PER_SLOT]
        _write_block(
            handle,
            layout,
            chunk.tobytes(),
            int(chunk["chrom"][0]),
            int(chunk["start"][0]),
            int(chunk["chrom"][-1]),
            int(chunk["end"][-1]),
            blocks,
        )
    index_offset = write_r_tree(handle, blocks, handle.tell())
    return data_offset, index_offset


def write_header(
    handle: BinaryIO,
    offsets: dict[str, int],
    layout: Layout,
    index_offset: int,
    zooms: list[tuple[int, int, int]],
) -> None:
    """End the file with the signature (readers take it as the mark of a complete file), then
    patch the header, zoom headers, total summary and data count in place."""
    handle.seek(0, 2)
    handle.write(struct.pack("<I", BIGWIG_MAGIC))
    handle.seek(0)
    summary_offset = 64 + 24 * MAX_ZOOMS
    handle.write(
        struct.pack(
            "<IHHQQQHHQQIQ",
            BIGWIG_MAGIC,
            VERSION,
            len(zooms),
            offsets["chrom_tree"],
            offsets["data"],
            index_offset,
            0,
            0,
            0,
            summary_offset,
            layout.max_block_bytes,
            0,
        )
    )
    for reduction, data, index in zooms:
        handle.write(struct.pack("<IIQQ", reduction, 0, data, index))
    handle.seek(summary_offset)
    s = layout.summary
    if s.bases == 0:
        handle.write(struct.pack("<Qdddd", 0, 0.0, 0.0, 0.0, 0.0))
    else:
        handle.write(struct.pack("<Qdddd", s.bases, s.minimum, s.maximum, s.total, s.squares))
    handle.seek(offsets["data"])
    handle.write(struct.pack("<Q", len(layout.data_blocks)))
