"""Genome coordinates of bins, the combine rules of tracks, and the bigWig round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from chromexpr.binning.binner import BinSpec
from chromexpr.errors import InputError
from chromexpr.explain.attribution import AttributionOptions, attribute_pairs
from chromexpr.explain.coordinates import bin_intervals, window_bounds
from chromexpr.explain.run import attribute
from chromexpr.explain.tracks import combine_intervals, gene_track, resample
from chromexpr.io.attribution_files import BigWigTrackWriter
from explain_toys import CHROM_SIZES, SPEC, LinearToy, make_dataset

# --------------------------------------------------------------------------------------------
# Coordinates (hand-computed: flank 5 kb, bin 1 kb, 10 bins, TSS in bin 5)
# --------------------------------------------------------------------------------------------

S10 = BinSpec(flank=5000, bin_size=1000)


def test_plus_strand_mid_chromosome() -> None:
    s, e = bin_intervals([20_000], [False], S10, chrom_size=[100_000])
    assert s.tolist() == [[15_000 + 1000 * k for k in range(10)]]
    assert (e - s).tolist() == [[1000] * 10]
    assert s[0, 5] <= 20_000 < e[0, 5]  # bin 5 holds the TSS base


def test_minus_strand_mid_chromosome() -> None:
    # window [20_001 - 5000, 20_001 + 5000) binned in genome order, then reversed
    s, e = bin_intervals([20_000], [True], S10, chrom_size=[100_000])
    assert s.tolist() == [
        [24_001, 23_001, 22_001, 21_001, 20_001, 19_001, 18_001, 17_001, 16_001, 15_001]
    ]
    assert e[0].tolist() == [
        25_001,
        24_001,
        23_001,
        22_001,
        21_001,
        20_001,
        19_001,
        18_001,
        17_001,
        16_001,
    ]
    assert s[0, 5] <= 20_000 < e[0, 5]
    assert window_bounds([20_000], [True], S10)[0].tolist() == [15_001]


def test_plus_strand_at_chromosome_start() -> None:
    s, e = bin_intervals([2_500], [False], S10, chrom_size=[30_000])
    # raw bins start at -2500: bins 0-1 fall before base 0, bin 2 is [-500, 500) -> [0, 500)
    assert s[0].tolist() == [0, 0, 0, 500, 1500, 2500, 3500, 4500, 5500, 6500]
    assert e[0].tolist() == [0, 0, 500, 1500, 2500, 3500, 4500, 5500, 6500, 7500]


def test_minus_strand_at_chromosome_start() -> None:
    # TSS base 500 on -: window [501 - 5000, 501 + 5000) = [-4499, 5501); bin k = genome bin 9 - k
    s, e = bin_intervals([500], [True], S10, chrom_size=[12_000])
    assert s[0].tolist() == [4501, 3501, 2501, 1501, 501, 0, 0, 0, 0, 0]
    assert e[0].tolist() == [5501, 4501, 3501, 2501, 1501, 501, 0, 0, 0, 0]
    assert s[0, 5] <= 500 < e[0, 5]


def test_plus_strand_at_chromosome_end() -> None:
    s, e = bin_intervals([11_800], [False], S10, chrom_size=[12_000])
    assert s[0].tolist() == [6800, 7800, 8800, 9800, 10_800, 11_800, 12_000, 12_000, 12_000, 12_000]
    assert e[0].tolist() == [
        7800,
        8800,
        9800,
        10_800,
        11_800,
        12_000,
        12_000,
        12_000,
        12_000,
        12_000,
    ]


def test_minus_strand_at_chromosome_end() -> None:
    # TSS base 28_700 on -: window [23_701, 33_701) on a 30 kb chromosome
    s, e = bin_intervals([28_700], [True], S10, chrom_size=[30_000])
    assert s[0].tolist() == [
        30_000,
        30_000,
        30_000,
        29_701,
        28_701,
        27_701,
        26_701,
        25_701,
        24_701,
        23_701,
    ]
    assert e[0].tolist() == [
        30_000,
        30_000,
        30_000,
        30_000,
        29_701,
        28_701,
        27_701,
        26_701,
        25_701,
        24_701,
    ]


def test_selected_bins_per_gene() -> None:
    s, _ = bin_intervals([20_000, 20_000], [False, True], S10, bins=[[0, 5], [0, 5]])
    assert s.tolist() == [[15_000, 20_000], [24_001, 19_001]]
    with pytest.raises(ValueError, match="bin indices"):
        bin_intervals([1], [False], S10, bins=[10])


def test_vectorised_matches_scalar_definition() -> None:
    rng = np.random.default_rng(3)
    tss = rng.integers(0, 50_000, size=200)
    minus = rng.random(200) < 0.5
    size = np.full(200, 50_000)
    s, e = bin_intervals(tss, minus, S10, chrom_size=size)
    for g in range(200):
        for k in range(10):
            lo = tss[g] + 1 - 5000 + (9 - k) * 1000 if minus[g] else tss[g] - 5000 + k * 1000
            lo_c, hi_c = min(max(lo, 0), 50_000), min(max(lo + 1000, 0), 50_000)
            assert (s[g, k], e[g, k]) == (lo_c, hi_c)


# --------------------------------------------------------------------------------------------
# Combine rules against a per-base reference
# --------------------------------------------------------------------------------------------


def paint_reference(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, size: int, combine: str
) -> np.ndarray:
    """Per-base combined value (NaN where no interval covers the base), by brute force."""
    total = np.zeros(size)
    count = np.zeros(size, dtype=int)
    best = np.full(size, np.nan)
    for s, e, v in zip(starts, ends, values, strict=True):
        if e <= s:
            continue
        total[s:e] += v
        count[s:e] += 1
        seg = best[s:e]
        replace = np.isnan(seg) | (abs(v) > np.abs(seg))
        seg[replace] = v
    out = {"sum": total, "mean": total / np.maximum(count, 1), "maxabs": best}[combine].copy()
    out[count == 0] = np.nan
    return out


def expand(starts: np.ndarray, ends: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.full(size, np.nan)
    for s, e, v in zip(starts, ends, values, strict=True):
        out[s:e] = v
    return out


@pytest.mark.parametrize("combine", ["sum", "mean", "maxabs"])
def test_combine_intervals_matches_reference(combine: str) -> None:
    rng = np.random.default_rng(7)
    starts = rng.integers(0, 900, size=60)
    ends = starts + rng.integers(0, 120, size=60)  # some empty
    values = rng.normal(size=60)
    s, e, v = combine_intervals(starts, ends, values, combine=combine)  # type: ignore[arg-type]
    assert np.all(e > s) and np.all(s[1:] >= e[:-1])  # sorted, non-overlapping
    np.testing.assert_allclose(
        expand(s, e, v, 1100), paint_reference(starts, ends, values, 1100, combine), equal_nan=True
    )


def test_combine_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown combine"):
        combine_intervals([0], [1], [1.0], combine="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        combine_intervals([0], [1], [np.nan])
    s, e, v = combine_intervals([5], [5], [1.0])
    assert s.size == e.size == v.size == 0


def test_gene_track_is_clipped_and_sorted() -> None:
    attr = np.arange(20, dtype=float).reshape(2, 10)
    s, e, v = gene_track(
        attr, [2_500, 28_700], [False, True], S10, chrom_size=30_000, combine="sum"
    )
    assert s[0] == 0 and e[-1] == 30_000
    assert np.all(e > s) and np.all(s[1:] >= e[:-1])
    # the + gene's bin 2 is clipped to [0, 500) and carries its value 2
    assert (s[0], e[0], v[0]) == (0, 500, 2.0)


# --------------------------------------------------------------------------------------------
# bigWig round trip: tracks read back with pyBigWig equal the attribution tensor through the rule
# --------------------------------------------------------------------------------------------


def grid_mean(per_base: np.ndarray, resolution: int) -> np.ndarray:
    """Per-base values of a track averaged onto a grid over covered (non-NaN) bases."""
    out = np.full(per_base.size, np.nan)
    for lo in range(0, per_base.size, resolution):
        cell = per_base[lo : lo + resolution]
        if np.isfinite(cell).any():
            out[lo : lo + resolution] = np.nanmean(cell)
    return out


def expected_tracks(
    dataset, model, options: AttributionOptions, combine: str, samples: list[int], resolution: int
) -> dict[str, np.ndarray]:
    """Per-base tracks of the mean over ``samples`` from the attribution tensor, by brute force."""
    genes = dataset.genes
    out = {}
    for chrom, size in CHROM_SIZES.items():
        g = np.flatnonzero(genes["chrom"].to_numpy() == chrom)
        mean = np.zeros((g.size, dataset.n_bins))
        for p in samples:
            mean += attribute_pairs(model, dataset, g, np.full(g.size, p), options)
        mean /= len(samples)
        s, e = bin_intervals(
            genes["tss"].to_numpy()[g], genes["strand"].to_numpy()[g] == "-", SPEC, chrom_size=size
        )
        per_base = paint_reference(s.ravel(), e.ravel(), mean.ravel(), size, combine)
        out[chrom] = grid_mean(per_base, resolution) if resolution else per_base
    return out


@pytest.mark.parametrize(
    ("combine", "resolution"),
    [("sum", 0), ("mean", 0), ("maxabs", 0), ("sum", None), ("maxabs", 300)],
)
def test_bigwig_round_trip(tmp_path: Path, combine: str, resolution: int | None) -> None:
    dataset = make_dataset(tmp_path / "ds.zarr", seed=4)
    model = LinearToy(dataset)
    options = AttributionOptions(method="integrated_gradients", baseline="mean", device="cpu")
    paths = attribute(
        model,
        dataset,
        tmp_path / "out",
        method="integrated_gradients",
        baseline="mean",
        combine=combine,
        resolution=resolution,
        device="cpu",  # type: ignore[arg-type]
    )
    assert [p.name for p in paths.tracks] == ["s1.bw", "s2.bw", "s3.bw", "s4.bw"]
    grid = SPEC.bin_size if resolution is None else resolution
    for position, path in enumerate(paths.tracks):
        expected = expected_tracks(dataset, model, options, combine, [position], grid)
        bw = pyBigWig.open(str(path))
        try:
            assert bw.chroms() == CHROM_SIZES
            assert bw.header()["nLevels"] >= 1  # zoom levels
            for chrom, size in CHROM_SIZES.items():
                got = np.array(bw.values(chrom, 0, size))
                np.testing.assert_allclose(
                    got, expected[chrom], rtol=1e-5, atol=1e-6, equal_nan=True
                )
                iv = bw.intervals(chrom)
                starts = np.array([i[0] for i in iv])
                ends = np.array([i[1] for i in iv])
                assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1])
                assert ends[-1] <= size
                if grid:
                    assert np.all(starts % grid == 0)
        finally:
            bw.close()


def test_group_tracks_average_their_samples(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "ds.zarr")
    model = LinearToy(dataset)
    options = AttributionOptions(method="input_x_gradient", device="cpu")
    paths = attribute(
        model,
        dataset,
        tmp_path / "out",
        method="input_x_gradient",
        combine="maxabs",
        per_group=True,
        resolution=0,
        device="cpu",
    )
    assert [p.name for p in paths.tracks] == ["B.bw", "T.bw"]
    expected = expected_tracks(dataset, model, options, "maxabs", [2, 3], 0)  # group T = s3, s4
    bw = pyBigWig.open(str(paths.tracks[1]))
    try:
        for chrom, size in CHROM_SIZES.items():
            np.testing.assert_allclose(
                np.array(bw.values(chrom, 0, size)),
                expected[chrom],
                rtol=1e-5,
                atol=1e-6,
                equal_nan=True,
            )
    finally:
        bw.close()


def test_resample_matches_reference() -> None:
    rng = np.random.default_rng(11)
    starts = rng.integers(0, 5000, size=80)
    ends = starts + rng.integers(1, 700, size=80)
    values = rng.normal(size=80)
    s, e, v = combine_intervals(starts, ends, values, combine="mean")
    gs, ge, gv = resample(s, e, v, resolution=250, chrom_size=5600)
    assert np.all(gs % 250 == 0) and np.all(ge - gs <= 250) and ge[-1] <= 5600
    per_base = expand(s, e, v, 5700)
    np.testing.assert_allclose(expand(gs, ge, gv, 5700)[:5600], grid_mean(per_base, 250)[:5600])


def test_track_writer_validates(tmp_path: Path) -> None:
    sizes = {"chr1": 100, "chr2": 50}
    with BigWigTrackWriter(tmp_path / "a.bw", sizes) as w:
        with pytest.raises(InputError, match="overlapping"):
            w.add("chr1", [0, 5], [10, 20], [1.0, 2.0])
        with pytest.raises(InputError, match="outside"):
            w.add("chr1", [90], [101], [1.0])
        with pytest.raises(InputError, match="not in the header"):
            w.add("chrZ", [0], [1], [1.0])
        with pytest.raises(InputError, match="non-finite"):
            w.add("chr1", [0], [1], [np.inf])
        w.add("chr2", [0], [10], [1.0])
        with pytest.raises(InputError, match="header order"):
            w.add("chr1", [0], [10], [1.0])
