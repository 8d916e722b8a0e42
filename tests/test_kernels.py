"""The binning kernel and the overlap-flattening kernel against a naive per-base reference.

The reference (``per_base_bins`` in conftest.py) builds every window base by base with numpy and
applies the documented semantics literally; hypothesis draws small chromosomes (tens of bp),
segments, genes and geometries so that windows run off both chromosome ends, overlap each other, and
cut through segments.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chromexpr.binning._kernels import flatten_overlaps_kernel
from chromexpr.binning.binner import BinSpec, bin_track
from chromexpr.binning.signal import SignalTrack, track_from_chrom_arrays
from chromexpr.errors import InputError

CHROMS = ["chrA", "chrB", "chrC"]
# a multiple of 1/4 in [-10, 10]: sums of such values are exact in float64, so only the final
# division and the float32 rounding can differ between kernel and reference
VALUES = st.integers(-40, 40).map(lambda v: v / 4)


def build_track(per_chrom: dict[str, tuple[list[int], list[int], list[float]]]) -> SignalTrack:
    """A track with every chromosome of ``per_chrom`` in storage order, including empty ones."""
    chroms = list(per_chrom)
    counts = [len(per_chrom[c][0]) for c in chroms]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def cat(i: int, dtype: type) -> np.ndarray:
        parts = [np.asarray(per_chrom[c][i], dtype=dtype) for c in chroms]
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    return SignalTrack(
        chroms=chroms,
        offsets=offsets,
        starts=cat(0, np.int64),
        ends=cat(1, np.int64),
        values=cat(2, np.float64),
    )


@st.composite
def disjoint_signal(
    draw: st.DrawFn,
) -> tuple[dict[str, int], dict[str, tuple[list[int], list[int], list[float]]]]:
    """Chromosome sizes and sorted, disjoint (possibly touching) segments; some chromosomes
    empty."""
    sizes: dict[str, int] = {}
    per_chrom: dict[str, tuple[list[int], list[int], list[float]]] = {}
    for chrom in CHROMS:
        size = draw(st.integers(1, 90))
        sizes[chrom] = size
        cuts = sorted(draw(st.sets(st.integers(0, size), max_size=14)))
        starts, ends, values = [], [], []
        for a, b in itertools.pairwise(cuts):
            if draw(st.booleans()):  # keep this piece: gaps and touching neighbours both occur
                starts.append(a)
                ends.append(b)
                values.append(draw(VALUES))
        per_chrom[chrom] = (starts, ends, values)
    return sizes, per_chrom


@st.composite
def geometry(draw: st.DrawFn) -> tuple[int, int]:
    """``(flank, bin_size)``: tens of bp, flank a multiple of the bin size."""
    bin_size = draw(st.integers(1, 8))
    return draw(st.integers(1, 6)) * bin_size, bin_size


@st.composite
def genes_on(draw: st.DrawFn, sizes: dict[str, int]) -> list[tuple[str, int, str]]:
    """Genes ``(chrom, tss, strand)``; ``chrZ`` is absent from every signal."""
    chrom = st.sampled_from([*CHROMS, "chrZ"])
    out = []
    for _ in range(draw(st.integers(1, 8))):
        c = draw(chrom)
        tss = draw(st.integers(0, sizes.get(c, 60) - 1))
        out.append((c, tss, draw(st.sampled_from("+-"))))
    return out


def run_kernel(track: SignalTrack, genes: list[tuple[str, int, str]], spec: BinSpec) -> np.ndarray:
    chrom = np.array([g[0] for g in genes], dtype=object)
    tss = np.array([g[1] for g in genes], dtype=np.int64)
    minus = np.array([g[2] == "-" for g in genes])
    return bin_track(track, chrom, tss, tss + 1, minus, spec)


# --------------------------------------------------------------------------------------------
# Hand-computed tables
# ----------------------------------------------------------------------------------------------

# chr1: [10, 20) = 1, [25, 30) = 4. Flank 10, bins of 5.
# + gene, TSS base 20: window [10, 30) -> bins [10,15) [15,20) [20,25) [25,30)
# - gene, TSS base 19 (interval [19, 20), anchored at 20): same window, reversed
HAND_TRACK = {"chr1": ([10, 25], [20, 30], [1.0, 4.0])}
HAND_CASES = [
    ("mean", "+", [1.0, 1.0, 0.0, 4.0]),
    ("mean", "-", [4.0, 0.0, 1.0, 1.0]),
    ("sum", "+", [5.0, 5.0, 0.0, 20.0]),
    ("sum", "-", [20.0, 0.0, 5.0, 5.0]),
    ("max", "+", [1.0, 1.0, 0.0, 4.0]),
]


@pytest.mark.parametrize(("aggregate", "strand", "expected"), HAND_CASES)
def test_hand_computed_bins(aggregate: str, strand: str, expected: list[float]) -> None:
    track = track_from_chrom_arrays(HAND_TRACK)
    tss = 20 if strand == "+" else 19
    got = run_kernel(
        track, [("chr1", tss, strand)], BinSpec(flank=10, bin_size=5, aggregate=aggregate)
    )
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[0], expected)


def test_tss_bin_holds_the_tss_base_on_both_strands() -> None:
    # a single marked base: bin flank/bin_size must hold it whatever the strand
    spec = BinSpec(flank=30, bin_size=10)
    for strand in "+-":
        track = track_from_chrom_arrays({"chr1": ([100], [101], [10.0])})
        got = run_kernel(track, [("chr1", 100, strand)], spec)[0]
        assert np.flatnonzero(got).tolist() == [spec.tss_bin]
        assert got[spec.tss_bin] == pytest.approx(1.0)


def test_minus_strand_bin_zero_is_farthest_upstream() -> None:
    # signal only right of the TSS in genome order = upstream of a - strand gene. Both windows are
    # [40, 160): the + TSS base is 100, the - TSS interval is [99, 100) anchored at its end
    track = track_from_chrom_arrays({"chr1": ([150], [160], [2.0])})
    spec = BinSpec(flank=60, bin_size=10)
    plus, minus = run_kernel(track, [("chr1", 100, "+"), ("chr1", 99, "-")], spec)
    assert np.flatnonzero(plus).tolist() == [spec.n_bins - 1]  # [150, 160) is the last + bin
    assert np.flatnonzero(minus).tolist() == [0]  # and the first (most upstream) - bin


def test_max_counts_missing_bases_as_zero_and_keeps_negatives() -> None:
    # [0, 10) = -2 fills bins 0-1; [12, 15) = -1 covers part of bin 2; [15, 20) = -3 fills bin 3
    track = track_from_chrom_arrays({"chr1": ([0, 12, 15], [10, 15, 20], [-2.0, -1.0, -3.0])})
    got = run_kernel(track, [("chr1", 10, "+")], BinSpec(flank=10, bin_size=5, aggregate="max"))[0]
    np.testing.assert_array_equal(got, [-2.0, -2.0, 0.0, -3.0])


def test_window_beyond_both_chromosome_ends_counts_as_zero() -> None:
    # chromosome of 8 bp fully covered by 1.0; window [-16, 24) with bins of 8 bp
    track = track_from_chrom_arrays({"chr1": ([0], [8], [1.0])}, chrom_sizes={"chr1": 8})
    got = run_kernel(track, [("chr1", 4, "+")], BinSpec(flank=20, bin_size=4))[0]
    # window [-16, 24): bins of 4 bp; only [0, 4) and [4, 8) have data
    expected = np.zeros(10)
    expected[4:6] = 1.0
    np.testing.assert_array_equal(got, expected)


def test_absent_and_empty_chromosomes_give_zeros() -> None:
    track = build_track({"chr1": ([0], [50], [3.0]), "chrEmpty": ([], [], [])})
    genes = [("chrEmpty", 10, "+"), ("chrNotThere", 10, "-"), ("chr1", 10, "+")]
    got = run_kernel(track, genes, BinSpec(flank=10, bin_size=5))
    np.testing.assert_array_equal(got[0], 0.0)
    np.testing.assert_array_equal(got[1], 0.0)
    np.testing.assert_array_equal(got[2], 3.0)


def test_flatten_hand_computed() -> None:
    # [0, 10) = 1 and [5, 8) = 2 overlap; [8, 8) is empty; [20, 30) = 0.5 stands alone
    s, e, v = flatten_overlaps_kernel(
        np.array([20, 0, 5, 8], np.int64),
        np.array([30, 10, 8, 8], np.int64),
        np.array([0.5, 1.0, 2.0, 9.0]),
    )
    assert list(zip(s.tolist(), e.tolist(), v.tolist(), strict=True)) == [
        (0, 5, 1.0),
        (5, 8, 3.0),
        (8, 10, 1.0),
        (20, 30, 0.5),
    ]


def test_binspec_geometry_and_validation() -> None:
    spec = BinSpec()
    assert (spec.flank, spec.bin_size, spec.aggregate, spec.n_bins, spec.tss_bin) == (
        1_000_000,
        1000,
        "mean",
        2000,
        1000,
    )
    offsets = spec.bin_offsets()
    assert offsets[0] == -1_000_000 and offsets[spec.tss_bin] == 0 and offsets[-1] == 999_000
    with pytest.raises(InputError, match="multiple of bin size"):
        BinSpec(flank=1050, bin_size=100)
    with pytest.raises(InputError, match="must be positive"):
        BinSpec(flank=100, bin_size=0)
    with pytest.raises(InputError, match="unknown aggregate"):
        BinSpec(flank=100, bin_size=10, aggregate="median")  # type: ignore[arg-type]


def test_bin_track_rejects_wrong_output_shape() -> None:
    track = track_from_chrom_arrays(HAND_TRACK)
    with pytest.raises(ValueError, match="shape"):
        bin_track(
            track,
            np.array(["chr1"], dtype=object),
            np.array([5]),
            np.array([6]),
            np.array([False]),
            BinSpec(flank=10, bin_size=5),
            out=np.empty((1, 3), np.float32),
        )


# --------------------------------------------------------------------------------------------
# Property tests against the per-base reference
# ----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.data(), aggregate=st.sampled_from(["mean", "sum", "max"]))
def test_kernel_equals_per_base_reference(
    data: st.DataObject, aggregate: str, reference_bins
) -> None:
    sizes, per_chrom = data.draw(disjoint_signal(), label="signal")
    flank, bin_size = data.draw(geometry(), label="geometry")
    genes = data.draw(genes_on(sizes), label="genes")
    spec = BinSpec(flank=flank, bin_size=bin_size, aggregate=aggregate)  # type: ignore[arg-type]
    got = run_kernel(build_track(per_chrom), genes, spec)
    expected = reference_bins(per_chrom, genes, flank, bin_size, aggregate)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, atol=1e-6)


@st.composite
def overlapping_intervals(draw: st.DrawFn) -> tuple[list[int], list[int], list[float]]:
    """Unsorted, possibly overlapping, duplicated or empty intervals (peaks)."""
    n = draw(st.integers(0, 12))
    starts, ends, values = [], [], []
    for _ in range(n):
        a = draw(st.integers(-5, 80))
        starts.append(a)
        ends.append(a + draw(st.integers(0, 25)))
        values.append(draw(VALUES))
    if n and draw(st.booleans()):  # an exact duplicate
        starts.append(starts[0])
        ends.append(ends[0])
        values.append(values[0])
    return starts, ends, values


def per_base_sum(
    starts: list[int], ends: list[int], values: list[float], lo: int, hi: int
) -> np.ndarray:
    signal = np.zeros(hi - lo)
    for s, e, v in zip(starts, ends, values, strict=True):
        signal[max(s, lo) - lo : max(min(e, hi), lo) - lo] += v
    return signal


@settings(max_examples=200, deadline=None)
@given(intervals=overlapping_intervals())
def test_flatten_overlaps_equals_per_base_sum(
    intervals: tuple[list[int], list[int], list[float]],
) -> None:
    starts, ends, values = intervals
    s, e, v = flatten_overlaps_kernel(
        np.array(starts, np.int64), np.array(ends, np.int64), np.array(values, np.float64)
    )
    assert (e > s).all(), "zero-length segments"
    assert (s[1:] >= e[:-1]).all(), "segments not sorted and disjoint"
    flat = per_base_sum(s.tolist(), e.tolist(), v.tolist(), -10, 120)
    np.testing.assert_allclose(flat, per_base_sum(starts, ends, values, -10, 120), atol=1e-12)
    # no segment outside the union of the input intervals
    covered = per_base_sum(starts, ends, [1.0] * len(starts), -10, 120) > 0
    assert not (per_base_sum(s.tolist(), e.tolist(), [1.0] * len(s), -10, 120) > 0)[~covered].any()


@settings(max_examples=100, deadline=None)
@given(
    peaks=st.lists(overlapping_intervals(), min_size=2, max_size=2),
    data=st.data(),
    aggregate=st.sampled_from(["mean", "sum", "max"]),
)
def test_overlapping_peaks_add_up_in_bins(peaks, data, aggregate, reference_bins) -> None:
    # two chromosomes of overlapping peaks, flattened then binned == per-base sum then binned
    per_chrom = {}
    for chrom, (s, e, v) in zip(["chrA", "chrB"], peaks, strict=True):
        keep = [i for i in range(len(s)) if s[i] >= 0 and e[i] > s[i]]  # readers reject the others
        per_chrom[chrom] = ([s[i] for i in keep], [e[i] for i in keep], [v[i] for i in keep])
    flank, bin_size = data.draw(geometry(), label="geometry")
    genes = data.draw(genes_on({"chrA": 100, "chrB": 100, "chrC": 100}), label="genes")
    spec = BinSpec(flank=flank, bin_size=bin_size, aggregate=aggregate)  # type: ignore[arg-type]
    got = run_kernel(track_from_chrom_arrays(per_chrom, flatten=True), genes, spec)
    expected = reference_bins(per_chrom, genes, flank, bin_size, aggregate)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_kernel_on_many_genes_matches_reference(reference_bins) -> None:
    # a larger seeded case: 400 genes on 3 chromosomes, windows overlapping heavily, all three
    # aggregates
    rng = np.random.default_rng(7)
    per_chrom = {}
    for chrom, size in (("chrA", 3000), ("chrB", 500), ("chrC", 50)):
        cuts = np.unique(rng.integers(0, size, 120))
        keep = rng.random(len(cuts) - 1) < 0.6
        per_chrom[chrom] = (
            cuts[:-1][keep].tolist(),
            cuts[1:][keep].tolist(),
            rng.normal(0, 3, keep.sum()).round(3).tolist(),
        )
    genes = [
        (
            str(c),
            int(rng.integers(0, {"chrA": 3000, "chrB": 500, "chrC": 50, "chrZ": 99}[c])),
            str(rng.choice(["+", "-"])),
        )
        for c in rng.choice(["chrA", "chrB", "chrC", "chrZ"], 400)
    ]
    track = track_from_chrom_arrays(per_chrom)
    for aggregate in ("mean", "sum", "max"):
        spec = BinSpec(flank=120, bin_size=8, aggregate=aggregate)  # type: ignore[arg-type]
        got = run_kernel(track, genes, spec)
        np.testing.assert_allclose(
            got,
            reference_bins(per_chrom, genes, 120, 8, aggregate).astype(np.float32),
            rtol=1e-6,
            atol=1e-5,
        )
