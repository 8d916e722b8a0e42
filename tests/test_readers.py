"""Each accessibility input format, read through ``chromexpr bin``, against the per-base reference.

The ``signal_*`` fixtures hold one signal written in every format chromexpr reads (see
``data/fixtures/make_fixtures.py``); real subsets (ABC K562 DNase peaks and counts, gimmemotifs'
region-id matrix) check the quirks of real files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from chromexpr.io.bedgraph import read_bedgraph

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
SIGNAL_FILES = [
    "signal_bigwig.bw",
    "signal_bedgraph.bedGraph",
    "signal_bedgraph_gz.bedGraph.gz",
    "signal_narrow.narrowPeak",
    "signal_broad.broadPeak.gz",
    "signal.featureCounts.txt",
    "signal_positions.counts.tsv",
    "signal_ids.counts.tsv",
]
SIGNAL_SAMPLES = [
    "signal_bigwig",
    "signal_bedgraph",
    "signal_bedgraph_gz",
    "signal_narrow",
    "signal_broad",
    "signal_featurecounts",
    "signal_positions",
    "signal_ids",
]
FLANK, BIN = 2000, 100


def reference_for(
    helpers,
    intervals,
    tss_bed: Path,
    flank: int = FLANK,
    bin_size: int = BIN,
    aggregate: str = "mean",
) -> dict[str, np.ndarray]:
    genes = helpers.read_tss_genes(tss_bed)
    rows = helpers.per_base_bins(
        intervals, [(c, p, s) for _, c, p, s in genes], flank, bin_size, aggregate
    )
    return {name: rows[i] for i, (name, _, _, _) in enumerate(genes)}


def by_gene(helpers, dataset: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    genes, samples, values = helpers.dataset_rows(dataset)
    return samples, {g: values[i] for i, g in enumerate(genes)}


def test_bedgraph_plain_and_gzipped_are_read_exactly(helpers) -> None:
    expected = helpers.read_bed_intervals(FIXTURES / "signal_bedgraph.bedGraph", 3)
    for name in ("signal_bedgraph.bedGraph", "signal_bedgraph_gz.bedGraph.gz"):
        track = read_bedgraph(FIXTURES / name)
        assert track.chroms == ["chr1", "chr2"]  # the 'track' line is skipped
        for chrom in track.chroms:
            s, e, v = track.chrom_slice(chrom)
            assert s.tolist() == expected[chrom][0]
            assert e.tolist() == expected[chrom][1]
            assert v.tolist() == expected[chrom][2]


def test_every_format_gives_identical_bins(cli, helpers, tmp_path) -> None:
    tss = FIXTURES / "signal_tss.bed"
    out = tmp_path / "mixed.zarr"
    cli(
        "bin",
        tss,
        *(FIXTURES / f for f in SIGNAL_FILES),
        "-o",
        out,
        "--flank",
        FLANK,
        "--bin-size",
        BIN,
    )
    samples, rows = by_gene(helpers, out)
    assert samples == SIGNAL_SAMPLES
    expected = reference_for(
        helpers, helpers.read_bed_intervals(FIXTURES / "signal_bedgraph.bedGraph", 3), tss
    )
    assert set(rows) == set(expected)
    for gene, values in rows.items():
        for k, sample in enumerate(samples):
            np.testing.assert_allclose(
                values[k], expected[gene], rtol=1e-6, atol=1e-6, err_msg=f"{sample} {gene}"
            )
    assert rows["g_start_plus"].any() and rows["g_end_minus"].any()
    assert not rows["g3_nosignal"].any()


@pytest.mark.parametrize(("value", "column"), [("score", 4), ("presence", None)])
def test_narrowpeak_score_and_presence(cli, helpers, tmp_path, value, column) -> None:
    tss = FIXTURES / "signal_tss.bed"
    peaks = FIXTURES / "signal_narrow.narrowPeak"
    out = tmp_path / "peaks.zarr"
    cli(
        "bin",
        tss,
        peaks,
        "-o",
        out,
        "--flank",
        FLANK,
        "--bin-size",
        BIN,
        "--peak-value",
        value,
        "-q",
    )
    _, rows = by_gene(helpers, out)
    expected = reference_for(helpers, helpers.read_bed_intervals(peaks, column), tss)
    signal = reference_for(helpers, helpers.read_bed_intervals(peaks, 6), tss)
    for gene in rows:
        np.testing.assert_allclose(
            rows[gene][0], expected[gene], rtol=1e-6, atol=1e-6, err_msg=gene
        )
    assert any(
        not np.allclose(expected[g], signal[g]) for g in expected
    )  # the column really matters


def test_bed5_score_equals_the_bedgraph(cli, helpers, tmp_path) -> None:
    tss = FIXTURES / "signal_tss.bed"
    out = tmp_path / "bed.zarr"
    cli(
        "bin",
        tss,
        FIXTURES / "signal_score.bed",
        FIXTURES / "signal_bedgraph.bedGraph",
        "-o",
        out,
        "--flank",
        FLANK,
        "--bin-size",
        BIN,
        "--peak-value",
        "score",
        "-q",
    )
    _, _, values = helpers.dataset_rows(out)
    np.testing.assert_array_equal(values[:, 0], values[:, 1])
    assert values.any()


def test_plain_bed_without_signal_column_needs_score_or_presence(cli, helpers, tmp_path) -> None:
    out = tmp_path / "bed.zarr"
    result = cli(
        "bin",
        FIXTURES / "signal_tss.bed",
        FIXTURES / "signal_score.bed",
        "-o",
        out,
        "--peak-value",
        "signal",
        expect=2,
    )
    helpers.error_line(
        result, "signal_score.bed", "--peak-value signal needs column 7", "--peak-value presence"
    )
    helpers.assert_nothing_written(out)


# --------------------------------------------------------------------------------------------
# Real files: overlapping MACS2 peaks, candidate-region counts, a bedtools oracle
# ----------------------------------------------------------------------------------------------

ABC_GENES = FIXTURES / "ABC_CollapsedGeneBounds.hg38.chr22_17-19.5Mb.bed"
ABC_PEAKS = FIXTURES / "ABC_K562_DNase_chr22_17-19.5Mb.narrowPeak.gz"
ABC_COUNTS = FIXTURES / "ABC_K562_DNase_chr22_17-19.5Mb_counts.bedGraph"


def abc_genes() -> list[tuple[str, int, str]]:
    genes = []
    for line in ABC_GENES.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        genes.append((f[0], int(f[1]) if f[5] == "+" else int(f[2]) - 1, f[5]))
    return genes


def dataset_by_position(helpers, dataset: Path) -> dict[tuple[str, int], np.ndarray]:
    import xarray as xr

    with xr.open_zarr(dataset) as ds:
        keys = list(zip(ds["chrom"].values.tolist(), ds["tss"].values.tolist(), strict=True))
        values = np.asarray(ds["openness"].values)
    return {(str(c), int(t)): values[i] for i, (c, t) in enumerate(keys)}


def test_real_narrowpeak_overlapping_peaks_add_up(cli, helpers, tmp_path) -> None:
    out = tmp_path / "abc.zarr"
    cli("bin", ABC_GENES, ABC_PEAKS, "-o", out, "--flank", 10_000, "--bin-size", 200, "-q")
    got = dataset_by_position(helpers, out)
    genes = abc_genes()
    peaks = helpers.read_bed_intervals(ABC_PEAKS, 6)
    expected = helpers.per_base_bins(peaks, genes, 10_000, 200)
    # the same peaks with repeated intervals (one per MACS2 summit) counted once
    unique = sorted(set(zip(*peaks["chr22"], strict=True)))
    once = helpers.per_base_bins({"chr22": tuple(zip(*unique, strict=True))}, genes, 10_000, 200)
    for i, (chrom, tss, _) in enumerate(genes):
        np.testing.assert_allclose(got[(chrom, tss)][0], expected[i], rtol=1e-6, atol=1e-6)
    assert not np.allclose(expected, once), "fixture has no overlapping peaks in any window"


def test_real_counts_bedgraph(cli, helpers, tmp_path) -> None:
    out = tmp_path / "counts.zarr"
    cli(
        "bin",
        ABC_GENES,
        ABC_COUNTS,
        "-o",
        out,
        "--flank",
        10_000,
        "--bin-size",
        200,
        "--aggregate",
        "sum",
        "-q",
    )
    got = dataset_by_position(helpers, out)
    genes = abc_genes()
    expected = helpers.per_base_bins(
        helpers.read_bed_intervals(ABC_COUNTS, 3), genes, 10_000, 200, "sum"
    )
    for i, (chrom, tss, _) in enumerate(genes):
        np.testing.assert_allclose(got[(chrom, tss)][0], expected[i], rtol=1e-6, atol=1e-6)
    assert expected.any()


@pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools is not installed")
def test_presence_equals_bedtools_genomecov(cli, helpers, tmp_path) -> None:
    # bedtools' per-base depth of the peaks, as a bedGraph, is the signal of --peak-value presence
    peaks = helpers.read_bed_intervals(ABC_PEAKS, None)["chr22"]
    bed3 = tmp_path / "peaks.bed"
    bed3.write_text(
        "".join(f"chr22\t{s}\t{e}\n" for s, e in sorted(zip(peaks[0], peaks[1], strict=True)))
    )
    genome = tmp_path / "genome.txt"
    genome.write_text("chr22\t50818468\n")
    coverage = tmp_path / "depth.bedGraph"
    with coverage.open("w") as handle:
        subprocess.run(
            ["bedtools", "genomecov", "-bg", "-i", str(bed3), "-g", str(genome)],
            check=True,
            stdout=handle,
        )
    assert any(line.split("\t")[3].strip() != "1" for line in coverage.read_text().splitlines())
    out = tmp_path / "both.zarr"
    cli(
        "bin",
        ABC_GENES,
        ABC_PEAKS,
        coverage,
        "-o",
        out,
        "--flank",
        10_000,
        "--bin-size",
        200,
        "--peak-value",
        "presence",
        "-q",
    )
    _, _, values = helpers.dataset_rows(out)
    np.testing.assert_allclose(values[:, 0], values[:, 1], rtol=1e-6, atol=1e-6)
    assert values.any()


# --------------------------------------------------------------------------------------------
# Count matrices
# ----------------------------------------------------------------------------------------------


def test_nfcore_featurecounts_by_hand(cli, helpers, tmp_path) -> None:
    # consensus_peaks.mLb.clN.featureCounts.txt (1-based inclusive Start/End):
    #   Interval_1 chr1 101-200  -> [100, 200)  CTRL 10  TREAT 0
    #   Interval_2 chr1 251-300  -> [250, 300)  CTRL 4   TREAT 8
    #   Interval_3 chr1 901-1000 -> [900, 1000) CTRL 0   TREAT 5
    #   Interval_4 chr2 1-100    -> [0, 100)    CTRL 7   TREAT 1
    # flank 200, bins of 100:
    #   A chr1 TSS 200 +: window [0, 400)   -> CTRL [0, 10, 2, 0]  TREAT [0, 0, 4, 0]
    #   B chr2 TSS 49 -:  window [-150, 250), bins [-150,-50) [-50,50) [50,150) [150,250), reversed
    #                     -> CTRL [0, 3.5, 3.5, 0]  TREAT [0, 0.5, 0.5, 0]
    #   C chr1 TSS 950 -: window [751, 1151): [851, 951) holds 900..950 (51 bp),
    #                     [951, 1051) holds 951..999 (49 bp), reversed
    #                     -> CTRL 0  TREAT [0, 2.45, 2.55, 0]
    tss = helpers.write_lines(
        tmp_path / "tss.bed",
        ["chr1\t200\t201\tA\t0\t+", "chr2\t49\t50\tB\t0\t-", "chr1\t950\t951\tC\t0\t-"],
    )
    out = tmp_path / "fc.zarr"
    cli(
        "bin",
        tss,
        FIXTURES / "consensus_peaks.mLb.clN.featureCounts.txt",
        "-o",
        out,
        "--flank",
        200,
        "--bin-size",
        100,
        "-q",
    )
    samples, rows = by_gene(helpers, out)
    assert samples == ["CTRL_R1", "TREAT_R1"]  # BAM names cleaned
    expected = {
        "A": [[0, 10, 2, 0], [0, 0, 4, 0]],
        "B": [[0, 3.5, 3.5, 0], [0, 0.5, 0.5, 0]],
        "C": [[0, 0, 0, 0], [0, 2.45, 2.55, 0]],
    }
    for gene, values in expected.items():
        np.testing.assert_allclose(rows[gene], values, rtol=1e-6, err_msg=gene)


def test_region_id_counts_real_gimmemotifs(cli, helpers, tmp_path) -> None:
    matrix = FIXTURES / "gimmemotifs_hg19.blood.300.counts.tsv"
    lines = matrix.read_text().splitlines()
    header = lines[0].split("\t")
    intervals: dict[str, dict[str, tuple[list[int], list[int], list[float]]]] = {
        s: {} for s in header[1:]
    }
    for line in lines[1:]:
        fields = line.split("\t")
        chrom, span = fields[0].split(":")
        start, end = (int(x) for x in span.split("-"))
        for sample, value in zip(header[1:], fields[1:], strict=True):
            s, e, v = intervals[sample].setdefault(chrom, ([], [], []))
            s.append(start)
            e.append(end)
            v.append(float(value))
    # TSSs at a few regions' starts and ends, both strands
    picks = [lines[i].split("\t")[0] for i in (1, 2, 3, 50, 120, 299)]
    rows = []
    for k, region in enumerate(picks):
        chrom, span = region.split(":")
        start, end = (int(x) for x in span.split("-"))
        tss = start if k % 2 else end - 1
        rows.append(f"{chrom}\t{tss}\t{tss + 1}\tr{k}\t0\t{'+-'[k % 2]}")
    tss = helpers.write_lines(tmp_path / "tss.bed", rows)
    out = tmp_path / "gimme.zarr"
    cli("bin", tss, matrix, "-o", out, "--flank", 1000, "--bin-size", 100, "-q")
    samples, got = by_gene(helpers, out)
    assert samples == ["Mono", "CD4", "CD8", "Nkcell", "Bcell", "Ery"]
    genes = [(line.split("\t")[0], int(line.split("\t")[1]), line.split("\t")[5]) for line in rows]
    for j, sample in enumerate(samples):
        expected = helpers.per_base_bins(intervals[sample], genes, 1000, 100)
        for i in range(len(genes)):
            np.testing.assert_allclose(
                got[f"r{i}"][j], expected[i], rtol=1e-6, atol=1e-6, err_msg=sample
            )
    assert min(v.min() for v in got.values()) < 0  # normalised values: negatives are kept


def test_named_rows_with_regions_bed(cli, helpers, tmp_path) -> None:
    intervals = helpers.read_bed_intervals(FIXTURES / "signal_bedgraph.bedGraph", 3)
    regions, counts = ["#regions"], ["peak\tnamed"]
    k = 0
    for chrom, (s, e, v) in intervals.items():
        for start, end, value in zip(s, e, v, strict=True):
            regions.append(f"{chrom}\t{start}\t{end}\tpeak{k}")
            counts.append(f"peak{k}\t{value}")
            k += 1
    bed = helpers.write_lines(tmp_path / "regions.bed", regions)
    matrix = helpers.write_lines(
        tmp_path / "named.counts.tsv", counts[:1] + counts[1:][::-1]
    )  # any order
    out = tmp_path / "named.zarr"
    cli(
        "bin",
        FIXTURES / "signal_tss.bed",
        matrix,
        FIXTURES / "signal_bedgraph.bedGraph",
        "--regions",
        bed,
        "-o",
        out,
        "--flank",
        FLANK,
        "--bin-size",
        BIN,
        "-q",
    )
    _, samples, values = helpers.dataset_rows(out)
    assert samples == ["named", "signal_bedgraph"]
    np.testing.assert_array_equal(values[:, 0], values[:, 1])


# --------------------------------------------------------------------------------------------
# Sample sheets
# ----------------------------------------------------------------------------------------------


def test_sample_sheet_names_groups_and_matrix_columns(cli, helpers, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("consensus_peaks.mLb.clN.featureCounts.txt", "signal_bigwig.bw"):
        shutil.copy(FIXTURES / name, data / name)
    sheet = helpers.write_lines(
        tmp_path / "samples.tsv",
        [
            "sample\tpath\tgroup",
            # a path relative to the sheet
            "TREAT_R1\tdata/consensus_peaks.mLb.clN.featureCounts.txt\ttreated",
            "ctrl_bw\tdata/signal_bigwig.bw\tcontrol",
            f"CTRL_R1\t{data / 'consensus_peaks.mLb.clN.featureCounts.txt'}\tcontrol",  # absolute
        ],
    )
    tss = helpers.write_lines(
        tmp_path / "tss.bed", ["chr1\t200\t201\tA\t0\t+", "chr2\t49\t50\tB\t0\t-"]
    )
    out = tmp_path / "sheet.zarr"
    cli("bin", tss, "--samples", sheet, "-o", out, "--flank", 200, "--bin-size", 100, "-q")
    import xarray as xr

    with xr.open_zarr(out) as ds:
        assert ds["sample"].values.tolist() == ["TREAT_R1", "ctrl_bw", "CTRL_R1"]
        assert ds["group"].values.tolist() == ["treated", "control", "control"]
        a = ds["openness"].sel(gene="A").values
    np.testing.assert_allclose(a[0], [0, 0, 4, 0])  # TREAT_R1's column
    np.testing.assert_allclose(a[2], [0, 10, 2, 0])  # CTRL_R1's column

    # positional files and a sheet together; a sheet without a header line
    sheet2 = helpers.write_lines(
        tmp_path / "more.tsv", [f"extra\t{FIXTURES / 'signal_bedgraph.bedGraph'}"]
    )
    out2 = tmp_path / "both.zarr"
    cli(
        "bin",
        tss,
        FIXTURES / "signal_bigwig.bw",
        "--samples",
        sheet2,
        "-o",
        out2,
        "--flank",
        200,
        "--bin-size",
        100,
        "-q",
    )
    _, samples, values = helpers.dataset_rows(out2)
    assert samples == ["signal_bigwig", "extra"]
    np.testing.assert_array_equal(values[:, 0], values[:, 1])
