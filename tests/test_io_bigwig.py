"""Tests of chromexpr.io.bigwig against pyBigWig's ``intervals()`` as the oracle."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pybigtools
import pyBigWig
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chromexpr.io.bigwig as bigwig_module
from chromexpr.errors import InputError
from chromexpr.io.bigwig import BigWigIntervals, bigwig_chrom_sizes, read_bigwig

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
REAL_BW = FIXTURES / "pyGenomeTracks_dm3_chrX_2e6_5e6.bw"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def assert_matches_pybigwig(path: Path, got: BigWigIntervals) -> None:
    """Compare every chromosome of ``got`` with pyBigWig's intervals(), value for value."""
    bw = pyBigWig.open(str(path))
    try:
        assert got.chrom_sizes == bw.chroms()
        assert list(got.chrom_sizes) == list(bw.chroms())
        with_data = []
        for chrom in bw.chroms():
            iv = bw.intervals(chrom)
            if not iv:
                assert chrom not in got.chroms
                continue
            with_data.append(chrom)
            expected = np.array(iv, dtype=np.float64).reshape(-1, 3)
            i = got.chroms.index(chrom)
            rows = slice(got.offsets[i], got.offsets[i + 1])
            np.testing.assert_array_equal(got.starts[rows], expected[:, 0].astype(np.int64))
            np.testing.assert_array_equal(got.ends[rows], expected[:, 1].astype(np.int64))
            np.testing.assert_array_equal(got.values[rows], expected[:, 2].astype(np.float32))
        assert got.chroms == with_data
    finally:
        bw.close()


def assert_well_formed(got: BigWigIntervals) -> None:
    assert got.starts.dtype == np.int64
    assert got.ends.dtype == np.int64
    assert got.values.dtype == np.float32
    assert got.offsets.dtype == np.int64
    assert got.offsets.shape == (len(got.chroms) + 1,)
    assert got.offsets[0] == 0
    assert got.offsets[-1] == len(got.starts) == len(got.ends) == len(got.values) == len(got)
    assert np.all(np.diff(got.offsets) > 0)


def write_pybigwig(
    path: Path,
    chrom_sizes: Sequence[tuple[str, int]],
    entries: Sequence[tuple[str, str, dict[str, object]]],
) -> Path:
    """Write a bigWig with pyBigWig; entries are (chrom, form, arrays) in file order."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chrom_sizes), maxZooms=0)
    for chrom, form, a in entries:
        if form == "bedGraph":
            starts = np.asarray(a["starts"], dtype=np.int64)
            bw.addEntries(
                np.array([chrom] * len(starts)),
                starts,
                ends=np.asarray(a["ends"], dtype=np.int64),
                values=np.asarray(a["values"], dtype=np.float64),
            )
        elif form == "variableStep":
            bw.addEntries(
                chrom,
                np.asarray(a["starts"], dtype=np.int64),
                values=np.asarray(a["values"], dtype=np.float64),
                span=int(a["span"]),  # type: ignore[call-overload]
            )
        else:
            bw.addEntries(
                chrom,
                int(a["start"]),  # type: ignore[call-overload]
                values=np.asarray(a["values"], dtype=np.float64),
                span=int(a["span"]),  # type: ignore[call-overload]
                step=int(a["step"]),  # type: ignore[call-overload]
            )
    bw.close()
    return path


def rtree_root_is_leaf(path: Path) -> bool:
    raw = path.read_bytes()
    index_offset = struct.unpack_from("<Q", raw, 24)[0]
    return raw[index_offset + 48] == 1


# A section for write_bigwig_by_hand: (chrom_id, type, section_start, step, span, items)
# where items are (start, end, value) rows for type 1, (start, value) for 2, (value,) for 3.
Section = tuple[int, int, int, int, int, list[tuple[float, ...]]]


def write_bigwig_by_hand(
    path: Path,
    chrom_sizes: Sequence[tuple[str, int]],
    blocks: Sequence[Sequence[Section]],
    *,
    endian: str = "<",
    compress: bool = True,
    fanout: int = 3,
) -> Path:
    """Write a bigWig per the UCSC format description, with features pyBigWig does not write.

    It can write big-endian and uncompressed files, several sections per block (a layout the
    UCSC and libBigWig readers do not decode: they read one section per block), and a two-level
    chromosome B+ tree (when there are more than ``fanout`` chromosomes) and R-tree (more than
    ``fanout`` blocks).
    """
    e = endian
    item_fmt = {1: e + "IIf", 2: e + "If", 3: e + "f"}
    payloads, extents = [], []
    for sections in blocks:
        raw = b""
        lo: tuple[int, int] | None = None
        hi = (0, 0)
        for chrom_id, kind, start, step, span, items in sections:
            if kind == 1:
                s0, s1 = int(items[0][0]), int(items[-1][1])
            elif kind == 2:
                s0, s1 = int(items[0][0]), int(items[-1][0]) + span
            else:
                s0, s1 = start, start + (len(items) - 1) * step + span
            raw += struct.pack(e + "IIIIIBBH", chrom_id, s0, s1, step, span, kind, 0, len(items))
            raw += b"".join(struct.pack(item_fmt[kind], *it) for it in items)
            lo = lo or (chrom_id, s0)
            hi = max(hi, (chrom_id, s1))
        payloads.append(raw)
        assert lo is not None
        extents.append((*lo, *hi))
    stored = [zlib.compress(p) if compress else p for p in payloads]

    key_size = max(len(name) for name, _ in chrom_sizes)
    leaves = [
        list(range(i, min(i + fanout, len(chrom_sizes))))
        for i in range(0, len(chrom_sizes), fanout)
    ]
    chrom_tree_offset = 64
    root_size = 4 + len(leaves) * (key_size + 8) if len(leaves) > 1 else 0
    chrom_tree = struct.pack(e + "IIIIQQ", 0x78CA8C91, fanout, key_size, 8, len(chrom_sizes), 0)
    leaf_offset = chrom_tree_offset + 32 + root_size
    if len(leaves) > 1:
        chrom_tree += struct.pack(e + "BBH", 0, 0, len(leaves))
        for leaf in leaves:
            key = chrom_sizes[leaf[0]][0].encode().ljust(key_size, b"\0")
            chrom_tree += key + struct.pack(e + "Q", leaf_offset)
            leaf_offset += 4 + len(leaf) * (key_size + 8)
    for leaf in leaves:
        chrom_tree += struct.pack(e + "BBH", 1, 0, len(leaf))
        for i in leaf:
            name, size = chrom_sizes[i]
            chrom_tree += name.encode().ljust(key_size, b"\0") + struct.pack(e + "II", i, size)

    data_offset = chrom_tree_offset + len(chrom_tree)
    data = struct.pack(e + "Q", len(stored))
    block_offsets = []
    for s in stored:
        block_offsets.append(data_offset + len(data))
        data += s
    index_offset = data_offset + len(data)

    groups = [list(range(i, min(i + fanout, len(stored)))) for i in range(0, len(stored), fanout)]
    n_root = len(groups) if len(groups) > 1 else 0
    index = struct.pack(
        e + "IIQIIIIQII",
        0x2468ACE0,
        fanout,
        len(stored),
        *extents[0][:2],
        *extents[-1][2:],
        index_offset,
        1,
        0,
    )
    leaf_offset = index_offset + 48 + (4 + 24 * n_root if n_root else 0)
    if n_root:
        index += struct.pack(e + "BBH", 0, 0, n_root)
        for g in groups:
            index += struct.pack(e + "IIIIQ", *extents[g[0]][:2], *extents[g[-1]][2:], leaf_offset)
            leaf_offset += 4 + 32 * len(g)
    for g in groups:
        index += struct.pack(e + "BBH", 1, 0, len(g))
        for b in g:
            index += struct.pack(e + "IIIIQQ", *extents[b], block_offsets[b], len(stored[b]))

    buf_size = max(len(p) for p in payloads) if compress else 0
    header = struct.pack(
        e + "IHHQQQHHQQIQ",
        0x888FFC26,
        4,
        0,
        chrom_tree_offset,
        data_offset,
        index_offset,
        0,
        0,
        0,
        0,
        buf_size,
        0,
    )
    path.write_bytes(header + chrom_tree + data + index + struct.pack(e + "I", 0x888FFC26))
    return path


HAND_CHROMS = [
    ("chr1", 10_000),
    ("chr2", 5_000),
    ("chr3", 3_000),
    ("chrEmpty", 100),
    ("chrM", 16_569),
]
# Blocks with several sections each (chromexpr reads them; pyBigWig reads one section per block).
HAND_BLOCKS: list[list[Section]] = [
    [(0, 1, 0, 0, 0, [(0, 10, 1.5), (10, 20, -2.0), (25, 30, float("nan"))])],
    [(0, 1, 0, 0, 0, [(40, 50, 3.0)]), (0, 2, 0, 0, 5, [(60, 0.25), (70, 0.5)])],
    [(0, 3, 100, 10, 4, [(1.0,), (2.0,), (3.0,)]), (1, 1, 0, 0, 0, [(5, 6, 7.0)])],
    [(1, 2, 0, 0, 3, [(100, 1.0), (200, 2.0), (300, 3.0)])],
    [(1, 3, 1000, 7, 7, [(float(v),) for v in range(50)])],
    [(2, 1, 0, 0, 0, [(i * 3, i * 3 + 2, float(i)) for i in range(40)])],
    [(4, 1, 0, 0, 0, [(16_000, 16_569, float("inf"))])],
]


# The same sections, one per block, as every bigWig writer lays them out.
HAND_SINGLE: list[list[Section]] = [[section] for block in HAND_BLOCKS for section in block]


def hand_expected() -> dict[str, np.ndarray]:
    """Expected (start, end, value) rows of HAND_BLOCKS per chromosome name."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for sections in HAND_BLOCKS:
        for chrom_id, kind, start, step, span, items in sections:
            out = rows.setdefault(HAND_CHROMS[chrom_id][0], [])
            for k, it in enumerate(items):
                if kind == 1:
                    out.append((it[0], it[1], it[2]))
                elif kind == 2:
                    out.append((it[0], it[0] + span, it[1]))
                else:
                    out.append((start + k * step, start + k * step + span, it[0]))
    return {c: np.array(r, dtype=np.float64) for c, r in rows.items()}


# --------------------------------------------------------------------------------------------
# (a) the real file
# --------------------------------------------------------------------------------------------


def test_real_file_matches_pybigwig(tmp_path: Path) -> None:
    path = shutil.copy(REAL_BW, tmp_path / "real.bw")
    got = read_bigwig(path)
    assert_well_formed(got)
    assert got.chroms == ["chrX"]
    assert len(got) == 11244
    assert_matches_pybigwig(Path(path), got)


def test_real_file_chrom_sizes(tmp_path: Path) -> None:
    path = shutil.copy(REAL_BW, tmp_path / "real.bw")
    assert bigwig_chrom_sizes(path) == {"chrX": 22422827}
    assert bigwig_chrom_sizes(str(path)) == read_bigwig(str(path)).chrom_sizes


# --------------------------------------------------------------------------------------------
# (b) files written by pyBigWig, and by hand
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_bw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bedGraph, variableStep and fixedStep data in many blocks (a two-level R-tree)."""
    rng = np.random.default_rng(7)
    n = 200_000  # pyBigWig packs ~2,700 bedGraph items per block: ~75 blocks, > 64 per node
    starts = np.sort(rng.choice(50_000_000, n, replace=False)) * 4
    ends = starts + rng.integers(1, 4, n)
    values = rng.normal(size=n).astype(np.float32)
    values[::1000] = np.nan
    var_starts = np.arange(30_000) * 10 + 5
    entries: list[tuple[str, str, dict[str, object]]] = [
        ("chr1", "bedGraph", {"starts": starts, "ends": ends, "values": values}),
        (
            "chr2",
            "variableStep",
            {"starts": var_starts, "values": rng.normal(size=30_000), "span": 7},
        ),
        (
            "chr2",
            "fixedStep",
            {"start": 400_000, "values": rng.normal(size=20_000), "span": 5, "step": 20},
        ),
        (
            "chr4",
            "fixedStep",
            {"start": 0, "values": rng.integers(0, 9, 12_345), "span": 25, "step": 25},
        ),
        (
            "chr4",
            "bedGraph",
            {"starts": [400_000, 400_100], "ends": [400_050, 400_101], "values": [1.0, 2.0]},
        ),
    ]
    sizes = [
        ("chr1", 200_000_010),
        ("chr2", 1_000_000),
        ("chr3", 5_000),
        ("chr4", 500_000),
        ("chrUn_empty", 77),
    ]
    return write_pybigwig(tmp_path_factory.mktemp("mixed") / "mixed.bw", sizes, entries)


def test_pybigwig_mixed_forms_many_blocks(mixed_bw: Path) -> None:
    assert not rtree_root_is_leaf(mixed_bw)
    got = read_bigwig(mixed_bw)
    assert_well_formed(got)
    assert got.chroms == ["chr1", "chr2", "chr4"]
    assert list(got.chrom_sizes) == ["chr1", "chr2", "chr3", "chr4", "chrUn_empty"]
    assert len(got) == 200_000 + 30_000 + 20_000 + 12_345 + 2
    assert np.isnan(got.values[: got.offsets[1]]).sum() == 200
    assert_matches_pybigwig(mixed_bw, got)


@pytest.mark.parametrize(
    ("batch_bytes", "parallel_min_bytes", "workers"),
    [(1 << 40, 1 << 40, 1), (1 << 40, 0, 2), (50_000, 0, 3), (50_000, 1 << 40, 1)],
    ids=["one-batch-serial", "one-batch-threads", "small-batches-threads", "small-batches"],
)
def test_batches_and_threads_give_the_same_result(
    mixed_bw: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch_bytes: int,
    parallel_min_bytes: int,
    workers: int,
) -> None:
    reference = read_bigwig(mixed_bw)
    monkeypatch.setattr(bigwig_module, "_BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(bigwig_module, "_PARALLEL_MIN_BYTES", parallel_min_bytes)
    monkeypatch.setattr(bigwig_module, "_n_workers", lambda: workers)
    got = read_bigwig(mixed_bw)
    assert got.chroms == reference.chroms
    for name in ("offsets", "starts", "ends", "values"):
        np.testing.assert_array_equal(getattr(got, name), getattr(reference, name))


def test_pybigwig_many_chromosomes_and_nan(tmp_path: Path) -> None:
    sizes = [(f"scaffold_{i}", 1_000 + i) for i in range(300)]
    entries: list[tuple[str, str, dict[str, object]]] = [
        (
            f"scaffold_{i}",
            "bedGraph",
            {"starts": [0, 10], "ends": [10, 20], "values": [float(i), np.nan]},
        )
        for i in (3, 150, 299)
    ]
    path = write_pybigwig(tmp_path / "many.bw", sizes, entries)
    got = read_bigwig(path)
    assert_well_formed(got)
    assert got.chroms == ["scaffold_3", "scaffold_150", "scaffold_299"]
    assert bigwig_chrom_sizes(path) == dict(sizes)
    assert_matches_pybigwig(path, got)


def test_pybigwig_file_without_data(tmp_path: Path) -> None:
    path = write_pybigwig(tmp_path / "empty.bw", [("chr1", 1_000), ("chr2", 500)], [])
    got = read_bigwig(path)
    assert got.chrom_sizes == {"chr1": 1_000, "chr2": 500}
    assert got.chroms == []
    assert got.offsets.tolist() == [0]
    assert len(got) == 0
    assert got.starts.dtype == np.int64 and got.values.dtype == np.float32


def assert_hand_expected(got: BigWigIntervals) -> None:
    expected = hand_expected()
    assert got.chroms == list(expected) == ["chr1", "chr2", "chr3", "chrM"]
    assert list(got.chrom_sizes.items()) == HAND_CHROMS
    for i, chrom in enumerate(got.chroms):
        rows = slice(got.offsets[i], got.offsets[i + 1])
        np.testing.assert_array_equal(got.starts[rows], expected[chrom][:, 0])
        np.testing.assert_array_equal(got.ends[rows], expected[chrom][:, 1])
        np.testing.assert_array_equal(got.values[rows], expected[chrom][:, 2].astype(np.float32))


@pytest.mark.parametrize("compress", [True, False], ids=["zlib", "uncompressed"])
def test_hand_written_file_matches_pybigwig(tmp_path: Path, compress: bool) -> None:
    path = write_bigwig_by_hand(tmp_path / "hand.bw", HAND_CHROMS, HAND_SINGLE, compress=compress)
    assert not rtree_root_is_leaf(path)
    got = read_bigwig(path)
    assert_well_formed(got)
    assert_hand_expected(got)
    assert_matches_pybigwig(path, got)


@pytest.mark.parametrize("compress", [True, False], ids=["zlib", "uncompressed"])
def test_several_sections_per_block(tmp_path: Path, compress: bool) -> None:
    path = write_bigwig_by_hand(tmp_path / "multi.bw", HAND_CHROMS, HAND_BLOCKS, compress=compress)
    got = read_bigwig(path)
    assert_well_formed(got)
    assert_hand_expected(got)


@pytest.mark.parametrize("compress", [True, False], ids=["zlib", "uncompressed"])
def test_big_endian_file(tmp_path: Path, compress: bool) -> None:
    little = read_bigwig(
        write_bigwig_by_hand(tmp_path / "le.bw", HAND_CHROMS, HAND_BLOCKS, compress=compress)
    )
    path = write_bigwig_by_hand(
        tmp_path / "be.bw", HAND_CHROMS, HAND_BLOCKS, endian=">", compress=compress
    )
    assert path.read_bytes()[:4] == bytes.fromhex("888ffc26")
    big = read_bigwig(path)
    assert big.chrom_sizes == little.chrom_sizes
    assert big.chroms == little.chroms
    for name in ("offsets", "starts", "ends", "values"):
        a, b = getattr(big, name), getattr(little, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert bigwig_chrom_sizes(path) == dict(HAND_CHROMS)


def test_chromosome_split_across_the_file_is_gathered(tmp_path: Path) -> None:
    blocks: list[list[Section]] = [
        [(1, 1, 0, 0, 0, [(0, 5, 1.0)])],
        [(0, 1, 0, 0, 0, [(0, 5, 2.0), (5, 9, 3.0)])],
        [(1, 1, 0, 0, 0, [(10, 20, 4.0)])],
    ]
    path = write_bigwig_by_hand(tmp_path / "split.bw", [("a", 100), ("b", 100)], blocks)
    got = read_bigwig(path)
    assert got.chroms == ["b", "a"]
    assert got.offsets.tolist() == [0, 2, 4]
    assert got.starts.tolist() == [0, 10, 0, 5]
    assert got.values.tolist() == [1.0, 4.0, 2.0, 3.0]


# --------------------------------------------------------------------------------------------
# (c) property test
# --------------------------------------------------------------------------------------------

_float32 = st.floats(width=32, allow_nan=True, allow_infinity=False)  # pyBigWig refuses inf
_interval = st.tuples(st.integers(0, 50), st.integers(1, 40), _float32)  # (gap, length, value)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(["bedGraph", "variableStep", "fixedStep"]),
            st.lists(_interval, min_size=0, max_size=60),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_random_intervals_round_trip(
    tmp_path: Path, data: list[tuple[str, list[tuple[int, int, float]]]]
) -> None:
    sizes, entries, expected = [], [], {}
    for k, (form, items) in enumerate(data):
        chrom = f"chr{k}"
        gaps = np.array([g for g, _, _ in items], dtype=np.int64)
        lengths = np.array([n for _, n, _ in items], dtype=np.int64)
        values = np.array([v for _, _, v in items], dtype=np.float32)
        span = int(lengths.max()) if items else 1
        if form == "bedGraph":
            starts = np.cumsum(gaps + np.r_[0, lengths[:-1]]) if items else gaps
            ends = starts + lengths
            arrays: dict[str, object] = {"starts": starts, "ends": ends, "values": values}
        elif form == "variableStep":
            starts = np.cumsum(gaps + span)
            ends = starts + span
            arrays = {"starts": starts, "values": values, "span": span}
        else:
            step = span + (int(gaps[0]) if items else 0)
            starts = 17 + np.arange(len(items), dtype=np.int64) * step
            ends = starts + span
            arrays = {"start": 17, "values": values, "span": span, "step": step}
        sizes.append((chrom, int(ends.max(initial=0)) + 100))
        if items:
            entries.append((chrom, form, arrays))
            expected[chrom] = (starts, ends, values)
    path = write_pybigwig(tmp_path / "random.bw", sizes, entries)

    got = read_bigwig(path)
    assert_well_formed(got)
    assert got.chroms == list(expected)
    for i, chrom in enumerate(got.chroms):
        rows = slice(got.offsets[i], got.offsets[i + 1])
        starts, ends, values = expected[chrom]
        np.testing.assert_array_equal(got.starts[rows], starts)
        np.testing.assert_array_equal(got.ends[rows], ends)
        np.testing.assert_array_equal(got.values[rows], values)
    assert_matches_pybigwig(path, got)


# --------------------------------------------------------------------------------------------
# (d) chroms= restriction
# --------------------------------------------------------------------------------------------


def test_chroms_restriction(mixed_bw: Path) -> None:
    full = read_bigwig(mixed_bw)
    for subset in (["chr2"], ["chr4", "chr1"], ["chr3"], [], ["chrNotThere", "chr4"]):
        got = read_bigwig(mixed_bw, chroms=subset)
        assert_well_formed(got)
        assert got.chrom_sizes == full.chrom_sizes
        assert got.chroms == [c for c in full.chroms if c in subset]
        for i, chrom in enumerate(got.chroms):
            j = full.chroms.index(chrom)
            rows = slice(got.offsets[i], got.offsets[i + 1])
            full_rows = slice(full.offsets[j], full.offsets[j + 1])
            np.testing.assert_array_equal(got.starts[rows], full.starts[full_rows])
            np.testing.assert_array_equal(got.ends[rows], full.ends[full_rows])
            np.testing.assert_array_equal(got.values[rows], full.values[full_rows])
    everything = read_bigwig(mixed_bw, chroms=set(full.chrom_sizes))
    assert everything.chroms == full.chroms
    np.testing.assert_array_equal(everything.starts, full.starts)


def test_chroms_restriction_skips_other_blocks(tmp_path: Path) -> None:
    blocks: list[list[Section]] = [
        [(0, 1, 0, 0, 0, [(0, 5, 1.0), (5, 6, 2.0)])],
        [(1, 1, 0, 0, 0, [(i * 10, i * 10 + 5, float(i)) for i in range(100)])],
    ]
    path = write_bigwig_by_hand(tmp_path / "two.bw", [("a", 100), ("b", 2_000)], blocks)
    raw = bytearray(path.read_bytes())
    end = _header_offsets(bytes(raw))[2]  # chrom b's block ends where the index starts
    raw[end - 12 : end - 4] = bytes(b ^ 0xFF for b in raw[end - 12 : end - 4])
    path.write_bytes(bytes(raw))
    got = read_bigwig(path, chroms=["a"])
    assert got.chroms == ["a"]
    assert got.values.tolist() == [1.0, 2.0]
    with pytest.raises(InputError, match="could not be decompressed"):
        read_bigwig(path)
    with pytest.raises(InputError, match="could not be decompressed"):
        read_bigwig(path, chroms=["b"])


def test_chroms_must_be_a_collection_not_a_string(mixed_bw: Path) -> None:
    with pytest.raises(TypeError, match="collection"):
        read_bigwig(mixed_bw, chroms="chr1")


# --------------------------------------------------------------------------------------------
# (e) corrupt and wrong inputs
# --------------------------------------------------------------------------------------------


def _header_offsets(raw: bytes) -> tuple[int, int, int]:
    return struct.unpack_from("<QQQ", raw, 8)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.bw"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"not a bigWig file \(file is empty\)"):
        read_bigwig(path)
    with pytest.raises(InputError, match="file is empty"):
        bigwig_chrom_sizes(path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "signal.bedgraph"
    path.write_text("chr1\t0\t100\t1.5\n" * 20)
    with pytest.raises(InputError, match=r"not a bigWig file \(bad magic number\)") as exc:
        read_bigwig(path)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_short_text_file(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("hello\n")
    with pytest.raises(InputError, match="not a bigWig file"):
        read_bigwig(path)


def test_bigbed_file(tmp_path: Path) -> None:
    path = tmp_path / "peaks.bb"
    pybigtools.open(str(path), "w").write(
        {"chr1": 1_000}, [("chr1", 0, 10, "a"), ("chr1", 20, 30, "b")]
    )
    with pytest.raises(InputError, match=r"not a bigWig file \(it is a bigBed file\)"):
        read_bigwig(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_bigwig(tmp_path / "nope.bw")
    with pytest.raises(InputError, match="is a directory"):
        read_bigwig(tmp_path)


@pytest.mark.parametrize("source", ["real", "mixed"])
def test_truncated_in_half(tmp_path: Path, mixed_bw: Path, source: str) -> None:
    raw = (REAL_BW if source == "real" else mixed_bw).read_bytes()
    path = tmp_path / "half.bw"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated or corrupt bigWig"):
        read_bigwig(path)


@pytest.mark.parametrize("cut", [1, 4, 1000])
def test_truncated_at_the_end(tmp_path: Path, cut: int) -> None:
    # Only zoom data are lost, but the end signature is missing: the download is incomplete.
    raw = REAL_BW.read_bytes()
    path = tmp_path / "cut.bw"
    path.write_bytes(raw[:-cut])
    with pytest.raises(InputError, match="does not end with the bigWig signature"):
        read_bigwig(path)
    with pytest.raises(InputError, match="does not end with the bigWig signature"):
        bigwig_chrom_sizes(path)


def test_block_outside_the_file(tmp_path: Path) -> None:
    path = write_bigwig_by_hand(tmp_path / "b.bw", HAND_CHROMS, HAND_SINGLE, fanout=100)
    raw = bytearray(path.read_bytes())
    first_leaf_item = _header_offsets(bytes(raw))[2] + 48 + 4
    raw[first_leaf_item + 16 : first_leaf_item + 24] = struct.pack("<Q", len(raw) - 3)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"data block at offset \d+ of \d+ bytes lies outside"):
        read_bigwig(path)


def test_flipped_bytes_in_data_block(tmp_path: Path) -> None:
    raw = bytearray(REAL_BW.read_bytes())
    _, data_offset, index_offset = _header_offsets(bytes(raw))
    middle = (data_offset + index_offset) // 2
    raw[middle : middle + 16] = bytes(b ^ 0xFF for b in raw[middle : middle + 16])
    path = tmp_path / "flipped.bw"
    path.write_bytes(bytes(raw))
    with pytest.raises(
        InputError, match=r"truncated or corrupt bigWig \(block at offset \d+ could not be "
    ):
        read_bigwig(path)


def test_bad_index_offset(tmp_path: Path) -> None:
    raw = bytearray(REAL_BW.read_bytes())
    raw[24:32] = struct.pack("<Q", len(raw) + 10)
    path = tmp_path / "badoffset.bw"
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"index offset \d+ is outside the file"):
        read_bigwig(path)


def test_bad_index_magic(tmp_path: Path) -> None:
    raw = bytearray(REAL_BW.read_bytes())
    index_offset = _header_offsets(bytes(raw))[2]
    raw[index_offset : index_offset + 4] = b"\0\0\0\0"
    path = tmp_path / "badmagic.bw"
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="bad index magic number"):
        read_bigwig(path)


def test_corrupt_section_in_uncompressed_block(tmp_path: Path) -> None:
    path = write_bigwig_by_hand(tmp_path / "u.bw", HAND_CHROMS, HAND_BLOCKS, compress=False)
    raw = bytearray(path.read_bytes())
    _, data_offset, _ = _header_offsets(bytes(raw))
    first_section = data_offset + 8
    raw[first_section + 22 : first_section + 24] = struct.pack("<H", 60_000)  # itemCount
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="ends inside a section"):
        read_bigwig(path)
    raw[first_section + 22 : first_section + 24] = struct.pack("<H", 3)
    raw[first_section : first_section + 4] = struct.pack("<I", 99)  # chromId
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="unknown chromosome id 99"):
        read_bigwig(path)
    raw[first_section : first_section + 4] = struct.pack("<I", 0)
    raw[first_section + 20] = 9  # type
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="unknown type 9"):
        read_bigwig(path)
