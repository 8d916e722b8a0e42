"""``chromexpr bin`` against deepTools ``computeMatrix reference-point`` itself, value for value.

deepTools runs in-process (``heatmapper.computeMatrix``, one process) with the parameters of
``computeMatrix reference-point --referencePoint TSS -b F -a F --binSize B --averageTypeBins mean
--missingDataAsZero --sortRegions keep``; its float64 matrix is compared with the float32 values
read back from the dataset with xarray. deepTools drops regions on chromosomes that the bigWig
header lacks; ours are zeros there (checked separately).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REAL_BW = (
    Path(__file__).resolve().parents[1] / "data" / "fixtures" / "pyGenomeTracks_dm3_chrX_2e6_5e6.bw"
)
DM3_CHRX = 22_422_827

# (name, chrom, TSS base, strand) on dm3 chrX; the bigWig has data on [2,000,700, 4,997,900)
REAL_TSS_FAR = [
    ("inside_plus", "chrX", 3_500_000, "+"),
    ("inside_minus", "chrX", 3_123_457, "-"),
    ("data_start_plus", "chrX", 2_000_700, "+"),
    ("data_end_minus", "chrX", 4_997_899, "-"),
    ("no_data_plus", "chrX", 10_000_000, "+"),
    ("chrom_start_minus", "chrX", 100, "-"),
    ("chrom_start_plus", "chrX", 5_000, "+"),
    ("chrom_end_minus", "chrX", DM3_CHRX - 1, "-"),
    ("chrom_end_plus", "chrX", DM3_CHRX - 1_500, "+"),
]


def deeptools_rows(
    bigwigs: list[Path], bed: Path, flank: int, bin_size: int, aggregate: str = "mean"
) -> dict[str, np.ndarray]:
    """deepTools' matrix (float64), one row (all samples' bins) per region name."""
    from deeptools import heatmapper

    parameters = {
        "upstream": flank,
        "downstream": flank,
        "body": 0,
        "bin size": bin_size,
        "ref point": "TSS",
        "verbose": False,
        "bin avg type": aggregate,
        "missing data as zero": True,
        "min threshold": None,
        "max threshold": None,
        "scale": 1,
        "skip zeros": False,
        "nan after end": False,
        "proc number": 1,
        "sort regions": "keep",
        "sort using": "mean",
        "unscaled 5 prime": 0,
        "unscaled 3 prime": 0,
    }
    hm = heatmapper.heatmapper()
    hm.computeMatrix([str(b) for b in bigwigs], str(bed), parameters)
    matrix = np.ma.filled(hm.matrix.matrix, np.nan).astype(np.float64)
    return {region[2]: matrix[i] for i, region in enumerate(hm.matrix.regions)}


def write_bed(path: Path, genes: list[tuple[str, str, int, str]]) -> Path:
    path.write_text("".join(f"{c}\t{p}\t{p + 1}\t{n}\t0\t{s}\n" for n, c, p, s in genes))
    return path


def chromexpr_rows(
    cli,
    helpers,
    bed: Path,
    bigwigs: list[Path],
    out: Path,
    flank: int,
    bin_size: int,
    aggregate: str = "mean",
) -> dict[str, np.ndarray]:
    cli(
        "bin",
        bed,
        *bigwigs,
        "-o",
        out,
        "--flank",
        flank,
        "--bin-size",
        bin_size,
        "--aggregate",
        aggregate,
        "-q",
    )
    genes, samples, values = helpers.dataset_rows(out)
    assert samples == [b.name.rsplit(".", 1)[0] for b in bigwigs]
    return {g: values[i].reshape(-1) for i, g in enumerate(genes)}


def assert_agree(
    ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], expected_names: set[str]
) -> None:
    assert set(theirs) == expected_names, "deepTools dropped or added regions unexpectedly"
    for name, row in theirs.items():
        assert not np.isnan(row).any(), name
        np.testing.assert_allclose(ours[name], row, rtol=1e-6, atol=1e-6, err_msg=name)


def test_real_bigwig_one_megabase_flank(cli, helpers, tmp_path) -> None:
    bed = write_bed(tmp_path / "tss.bed", REAL_TSS_FAR)
    theirs = deeptools_rows([REAL_BW], bed, 1_000_000, 1000)
    ours = chromexpr_rows(cli, helpers, bed, [REAL_BW], tmp_path / "ds.zarr", 1_000_000, 1000)
    assert_agree(ours, theirs, {g[0] for g in REAL_TSS_FAR})
    assert ours["inside_plus"].shape == (2000,)
    assert ours["inside_plus"].any() and not ours["no_data_plus"].any()


def real_tss_many(seed: int = 11) -> list[tuple[str, str, int, str]]:
    rng = np.random.default_rng(seed)
    positions = np.concatenate(
        [
            rng.integers(1_990_000, 5_010_000, 160),  # across the data, past both of its edges
            [
                2_000_699,
                2_000_700,
                2_000_701,
                4_997_899,
                4_997_900,
                0,
                1,
                4_999,
                DM3_CHRX - 1,
                DM3_CHRX - 4_000,
            ],
        ]
    )
    strands = rng.choice(["+", "-"], positions.size)
    genes = [
        (f"g{i}", "chrX", int(p), str(s))
        for i, (p, s) in enumerate(zip(positions, strands, strict=True))
    ]
    # the same positions on the other strand too, so each edge is seen from both sides
    genes += [
        (f"r{i}", "chrX", p, "+" if s == "-" else "-") for i, (_, _, p, s) in enumerate(genes[-10:])
    ]
    return genes


@pytest.mark.parametrize("aggregate", ["mean", "sum", "max"])
def test_real_bigwig_many_genes_small_bins(cli, helpers, tmp_path, aggregate) -> None:
    genes = real_tss_many()
    bed = write_bed(tmp_path / "tss.bed", genes)
    theirs = deeptools_rows([REAL_BW], bed, 5000, 50, aggregate)
    ours = chromexpr_rows(cli, helpers, bed, [REAL_BW], tmp_path / "ds.zarr", 5000, 50, aggregate)
    assert_agree(ours, theirs, {g[0] for g in genes})
    nonzero = sum(bool(r.any()) for r in ours.values())
    assert 100 < nonzero < len(genes)  # most windows see data, the far ones do not


# --------------------------------------------------------------------------------------------
# A synthetic bigWig: several chromosomes, some shorter than a window, negative values, an empty
# chromosome
# ----------------------------------------------------------------------------------------------

SYNTH_SIZES = {"chrA": 3_000_000, "chrB": 1_500_000, "chrC": 40_000, "chrD": 200_000}


@pytest.fixture(scope="module")
def synthetic_bigwigs(tmp_path_factory) -> list[Path]:
    """Two samples with random float32 values (some negative, some zero); chrD has no data."""
    import pyBigWig

    out = []
    root = tmp_path_factory.mktemp("synthetic")
    for k in range(2):
        rng = np.random.default_rng(100 + k)
        path = root / f"sample{k}.bw"
        bw = pyBigWig.open(str(path), "w")
        bw.addHeader(list(SYNTH_SIZES.items()), maxZooms=0)
        for chrom, n in (("chrA", 4000), ("chrB", 2000), ("chrC", 60)):
            cuts = np.unique(rng.integers(0, SYNTH_SIZES[chrom] + 1, 2 * n))
            keep = rng.random(cuts.size - 1) < 0.5
            starts, ends = cuts[:-1][keep], cuts[1:][keep]
            values = np.round(rng.gamma(0.6, 4.0, starts.size) - 0.5, 2).astype(np.float32)
            bw.addEntries(
                [chrom] * starts.size,
                starts.tolist(),
                ends=ends.tolist(),
                values=values.astype(float).tolist(),
            )
        bw.close()
        out.append(path)
    return out


SYNTH_TSS_FAR = [
    ("a_start_plus", "chrA", 10, "+"),
    ("a_mid_minus", "chrA", 500_000, "-"),
    ("a_end_plus", "chrA", 2_999_999, "+"),
    ("a_late_minus", "chrA", 2_500_000, "-"),
    ("b_mid_plus", "chrB", 750_000, "+"),
    ("c_tiny_minus", "chrC", 20_000, "-"),
    ("d_nodata_plus", "chrD", 5, "+"),
]


def test_synthetic_bigwigs_one_megabase_flank(cli, helpers, tmp_path, synthetic_bigwigs) -> None:
    bed = write_bed(tmp_path / "tss.bed", SYNTH_TSS_FAR)
    theirs = deeptools_rows(synthetic_bigwigs, bed, 1_000_000, 1000)
    ours = chromexpr_rows(
        cli, helpers, bed, synthetic_bigwigs, tmp_path / "ds.zarr", 1_000_000, 1000
    )
    assert_agree(ours, theirs, {g[0] for g in SYNTH_TSS_FAR})
    assert ours["c_tiny_minus"].shape == (4000,)
    assert (ours["c_tiny_minus"] < 0).any()  # negative values survive
    assert not ours["d_nodata_plus"].any()


def test_synthetic_bigwigs_many_genes(cli, helpers, tmp_path, synthetic_bigwigs) -> None:
    rng = np.random.default_rng(5)
    genes = []
    for chrom, size in SYNTH_SIZES.items():
        near_ends = [0, 1, 17, 2_999, size - 1, size - 2, size - 3_001]
        for i, p in enumerate([*near_ends, *rng.integers(0, size, 30).tolist()]):
            genes.append((f"{chrom}_{i}", chrom, int(p), str(rng.choice(["+", "-"]))))
    genes.append(("absent_chrom", "chrQ", 1_000, "+"))  # not in the bigWig header
    bed = write_bed(tmp_path / "tss.bed", genes)
    theirs = deeptools_rows(synthetic_bigwigs, bed, 3000, 30)
    ours = chromexpr_rows(cli, helpers, bed, synthetic_bigwigs, tmp_path / "ds.zarr", 3000, 30)
    assert_agree(ours, theirs, {g[0] for g in genes} - {"absent_chrom"})
    assert not ours["absent_chrom"].any()


# --------------------------------------------------------------------------------------------
# chromexpr export --format deeptools
# ----------------------------------------------------------------------------------------------


def read_matrix(path: Path):
    from deeptools import heatmapper

    hm = heatmapper.heatmapper()
    hm.read_matrix_file(str(path))
    return hm


def test_export_is_read_and_plotted_by_deeptools(
    cli, helpers, tmp_path, synthetic_bigwigs, monkeypatch
) -> None:
    from deeptools import computeMatrix, plotProfile

    # deepTools' main() prints its help and exits when sys.argv has one element (a pytest-xdist
    # worker), whatever arguments it is given
    monkeypatch.setattr(sys, "argv", ["deeptools", "--in-process"])

    genes = [
        (f"chrA_{i}", "chrA", int(p), "+-"[i % 2])
        for i, p in enumerate(range(5, 2_999_999, 97_001))
    ]
    genes += [("c_minus", "chrC", 39_990, "-"), ("b_plus", "chrB", 3, "+")]
    bed = write_bed(tmp_path / "tss.bed", sorted(genes, key=lambda g: (g[1], g[2], g[0])))
    dataset = tmp_path / "ds.zarr"
    cli("bin", bed, *synthetic_bigwigs, "-o", dataset, "--flank", 2000, "--bin-size", 100, "-q")
    exported = tmp_path / "ours.matrix.gz"
    cli("export", dataset, "--format", "deeptools", "-o", exported, "-q")

    theirs_path = tmp_path / "theirs.matrix.gz"
    computeMatrix.main(
        [
            "reference-point",
            "--referencePoint",
            "TSS",
            "-b",
            "2000",
            "-a",
            "2000",
            "--binSize",
            "100",
            "--averageTypeBins",
            "mean",
            "--missingDataAsZero",
            "--sortRegions",
            "keep",
            "-p",
            "1",
            "--quiet",
            "-R",
            str(bed),
            "-S",
            *map(str, synthetic_bigwigs),
            "--samplesLabel",
            "sample0",
            "sample1",
            "-o",
            str(theirs_path),
        ]
    )
    ours_hm, theirs_hm = read_matrix(exported), read_matrix(theirs_path)
    for key in (
        "upstream",
        "downstream",
        "body",
        "bin size",
        "ref point",
        "sample_labels",
        "sample_boundaries",
        "group_boundaries",
    ):
        assert ours_hm.parameters[key] == theirs_hm.parameters[key], key
    ours_regions = {r[2]: i for i, r in enumerate(ours_hm.matrix.regions)}
    theirs_regions = {r[2]: i for i, r in enumerate(theirs_hm.matrix.regions)}
    assert set(ours_regions) == set(theirs_regions) == {g[0] for g in genes}
    for name, i in theirs_regions.items():
        o, t = ours_hm.matrix.regions[ours_regions[name]], theirs_hm.matrix.regions[i]
        assert (o[0], o[1], o[4]) == (t[0], t[1], t[4]), name  # chrom, [(start, end)], strand
        np.testing.assert_allclose(
            ours_hm.matrix.matrix[ours_regions[name]],
            theirs_hm.matrix.matrix[i],
            rtol=1e-6,
            atol=1e-6,
            err_msg=name,
        )

    # the header is the JSON deepTools writes; plotProfile draws our matrix
    with gzip.open(exported, "rt") as handle:
        header = json.loads(handle.readline()[1:])
    assert header["sample_labels"] == ["sample0", "sample1"]
    png = tmp_path / "profile.png"
    plotProfile.main(["-m", str(exported), "-o", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000
