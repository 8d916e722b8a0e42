"""Chromosome names: ``chr1`` vs ``1`` and ``chrM`` vs ``MT`` fixed with one warning, unfixable
names stop with one line listing both naming sets, ``--chrom-alias``, and genes on chromosomes a
sample lacks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from chromexpr.binning.chroms import alternative_name, match_chroms
from chromexpr.errors import InputError

SIZES = {"chr1": 30_000, "chr2": 20_000, "chrM": 16_569}
INTERVALS = {
    "chr1": ([100, 5_000, 12_000], [900, 5_600, 12_050], [2.0, 5.0, 1.5]),
    "chr2": ([0, 9_000], [300, 9_999], [4.0, 0.5]),
    "chrM": ([0, 8_000], [2_000, 16_569], [7.0, 3.0]),
}
TSS_LINES = [
    "chr1\t5200\t5201\ta\t0\t+",
    "chr1\t12010\t12011\tb\t0\t-",
    "chr2\t9500\t9501\tc\t0\t+",
    "chrM\t1000\t1001\tm\t0\t-",
]
FLANK, BIN = 1000, 100


def renamed(mapping: dict[str, str]) -> tuple[dict[str, int], dict]:
    return (
        {mapping.get(c, c): n for c, n in SIZES.items()},
        {mapping.get(c, c): v for c, v in INTERVALS.items()},
    )


ENSEMBL = {"chr1": "1", "chr2": "2", "chrM": "MT"}


@pytest.fixture
def ucsc_run(cli, helpers, tmp_path) -> np.ndarray:
    """Values with matching (UCSC) names on both sides: what every renamed run must reproduce."""
    bw = helpers.write_bigwig(tmp_path / "ucsc.bw", SIZES, INTERVALS)
    tss = helpers.write_lines(tmp_path / "ucsc_tss.bed", TSS_LINES)
    cli("bin", tss, bw, "-o", tmp_path / "ucsc.zarr", "--flank", FLANK, "--bin-size", BIN, "-q")
    values = helpers.dataset_rows(tmp_path / "ucsc.zarr")[2]
    assert values.all(axis=2).any()  # every gene sees signal somewhere
    return values


def renaming_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "renamed" in line and "WARNING" in line]


def test_alternative_names() -> None:
    assert [alternative_name(c) for c in ["chr1", "1", "chrM", "MT", "chrX", "X", "chr22"]] == [
        "1",
        "chr1",
        "MT",
        "chrM",
        "X",
        "chrX",
        "22",
    ]


def test_match_chroms_unit() -> None:
    match = match_chroms({"chr1", "chr2", "chrM"}, ["1", "2", "MT", "GL000220.1"])
    assert match.mapping == {"1": "chr1", "2": "chr2", "MT": "chrM"}
    assert match.renamed == [("1", "chr1"), ("2", "chr2"), ("MT", "chrM")]
    same = match_chroms({"chr1"}, ["chr1", "1"])  # chr1 already matches: "1" is not renamed onto it
    assert same.mapping == {}
    aliased = match_chroms({"chr1"}, ["NC_000001.11"], alias={"NC_000001.11": "chr1"})
    assert aliased.mapping == {"NC_000001.11": "chr1"} and aliased.renamed == []
    with pytest.raises(InputError) as info:
        match_chroms({"chr1", "chr2"}, ["NC_000001.11", "NC_000002.12"], source="s.bw")
    message = str(info.value)
    assert "\n" not in message
    assert (
        "chr1, chr2" in message
        and "NC_000001.11, NC_000002.12" in message
        and "--chrom-alias" in message
    )


@pytest.mark.parametrize("side", ["signal", "annotation"])
def test_ucsc_vs_ensembl_names_fixed_with_one_warning(
    cli, helpers, tmp_path, ucsc_run, side
) -> None:
    sizes, intervals = renamed(ENSEMBL) if side == "signal" else (SIZES, INTERVALS)
    tss_lines = (
        TSS_LINES
        if side == "signal"
        else [ENSEMBL[line.split("\t")[0]] + line[line.index("\t") :] for line in TSS_LINES]
    )
    bws = [helpers.write_bigwig(tmp_path / f"s{k}.bw", sizes, intervals) for k in range(2)]
    tss = helpers.write_lines(tmp_path / "tss.bed", tss_lines)
    out = tmp_path / "renamed.zarr"
    result = cli("bin", tss, *bws, "-o", out, "--flank", FLANK, "--bin-size", BIN)
    warnings = renaming_warnings(result.stderr)
    assert len(warnings) == 1, result.stderr  # once for both samples
    assert "renamed 3 signal chromosome(s)" in warnings[0]
    assert ("MT -> chrM" if side == "signal" else "chrM -> MT") in warnings[0]
    values = helpers.dataset_rows(out)[2]
    np.testing.assert_array_equal(values[:, 0], ucsc_run[:, 0])
    np.testing.assert_array_equal(values[:, 1], ucsc_run[:, 0])


def test_unfixable_names_stop_with_both_naming_sets(cli, helpers, tmp_path) -> None:
    refseq = {"chr1": "NC_000001.11", "chr2": "NC_000002.12", "chrM": "NC_012920.1"}
    sizes, intervals = renamed(refseq)
    bw = helpers.write_bigwig(tmp_path / "refseq.bw", sizes, intervals)
    tss = helpers.write_lines(tmp_path / "tss.bed", TSS_LINES)
    out = tmp_path / "x.zarr"
    result = cli("bin", tss, bw, "-o", out, expect=2)
    helpers.error_line(
        result,
        "no chromosome in common",
        "chr1, chr2, chrM",
        "NC_000001.11",
        "refseq.bw",
        "--chrom-alias",
    )
    helpers.assert_nothing_written(out)


def test_chrom_alias_file(cli, helpers, tmp_path, ucsc_run) -> None:
    refseq = {"chr1": "NC_000001.11", "chr2": "NC_000002.12", "chrM": "NC_012920.1"}
    sizes, intervals = renamed(refseq)
    bw = helpers.write_bigwig(tmp_path / "refseq.bw", sizes, intervals)
    tss = helpers.write_lines(tmp_path / "tss.bed", TSS_LINES)
    alias = helpers.write_lines(
        tmp_path / "alias.tsv", ["# signal\tannotation", *(f"{v}\t{k}" for k, v in refseq.items())]
    )
    out = tmp_path / "alias.zarr"
    result = cli(
        "bin", tss, bw, "--chrom-alias", alias, "-o", out, "--flank", FLANK, "--bin-size", BIN
    )
    assert not renaming_warnings(result.stderr)  # explicit mapping: nothing to warn about
    np.testing.assert_array_equal(helpers.dataset_rows(out)[2], ucsc_run)


def test_conflicting_alias_lines_are_an_error(cli, helpers, tmp_path) -> None:
    alias = helpers.write_lines(tmp_path / "alias.tsv", ["1\tchr1", "2\tchr2", "1\tchr3"])
    tss = helpers.write_lines(tmp_path / "tss.bed", TSS_LINES)
    bw = helpers.write_bigwig(tmp_path / "s.bw", SIZES, INTERVALS)
    out = tmp_path / "x.zarr"
    result = cli("bin", tss, bw, "--chrom-alias", alias, "-o", out, expect=2)
    helpers.error_line(result, "alias.tsv:3", "mapped twice")
    helpers.assert_nothing_written(out)


def test_absent_chromosomes_give_zeros_and_one_warning(cli, helpers, tmp_path) -> None:
    # sample "full" has chr1, chr2, chrM; "partial" lacks chr2 and chrM (2 genes there) -> one
    # warning
    full = helpers.write_bigwig(tmp_path / "full.bw", SIZES, INTERVALS)
    partial = helpers.write_bigwig(
        tmp_path / "partial.bw", {"chr1": SIZES["chr1"]}, {"chr1": INTERVALS["chr1"]}
    )
    extra = [f"chr2\t{p}\t{p + 1}\tc{p}\t0\t+" for p in (100, 200, 300)]
    tss = helpers.write_lines(tmp_path / "tss.bed", TSS_LINES + extra)
    out = tmp_path / "partial.zarr"
    result = cli("bin", tss, full, partial, "-o", out, "--flank", FLANK, "--bin-size", BIN)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, result.stderr
    assert "5 gene window(s)" in warnings[0] and "1 sample(s)" in warnings[0]
    assert "chr2" in warnings[0] and "chrM" in warnings[0]
    genes, _, values = helpers.dataset_rows(out)
    chrom = {
        g: line.split("\t")[0] for g, line in zip(["a", "b", "c", "m"], TSS_LINES, strict=True)
    }
    chrom.update({f"c{p}": "chr2" for p in (100, 200, 300)})
    for i, gene in enumerate(genes):
        if chrom[gene] == "chr1":
            np.testing.assert_array_equal(values[i, 1], values[i, 0])
        else:
            assert not values[i, 1].any(), gene
    assert values[:, 0].any(axis=1).all()


def test_absent_chromosome_warning_is_one_log_record(helpers, tmp_path, caplog) -> None:
    # the library call, without the CLI: exactly one WARNING record, whatever the number of
    # genes/samples
    from chromexpr.binning.binner import BinSpec
    from chromexpr.binning.pipeline import BinOptions, bin_dataset
    from chromexpr.io.samples import samples_from_paths

    bws = [
        helpers.write_bigwig(
            tmp_path / f"s{k}.bw", {"chr1": SIZES["chr1"]}, {"chr1": INTERVALS["chr1"]}
        )
        for k in range(3)
    ]
    genes = pd.DataFrame(
        {
            "chrom": ["chr1"] + ["chr9"] * 40,
            "start": np.arange(41) * 10 + 1000,
            "name": [f"g{i}" for i in range(41)],
            "strand": ["+", "-"] * 20 + ["+"],
            "gene_name": [f"g{i}" for i in range(41)],
            "gene_type": "x",
        }
    )
    genes["end"] = genes["start"] + 1
    with caplog.at_level(logging.WARNING, logger="chromexpr"):
        bin_dataset(
            genes,
            samples_from_paths(bws),
            tmp_path / "lib.zarr",
            options=BinOptions(spec=BinSpec(flank=100, bin_size=10)),
        )
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1
    assert (
        "120 gene window(s)" in records[0].getMessage() and "3 sample(s)" in records[0].getMessage()
    )


def test_chrm_vs_mt_only(cli, helpers, tmp_path) -> None:
    # a mitochondrial-only signal named MT against an annotation saying chrM
    bw = helpers.write_bigwig(tmp_path / "mt.bw", {"MT": SIZES["chrM"]}, {"MT": INTERVALS["chrM"]})
    tss = helpers.write_lines(tmp_path / "tss.bed", ["chrM\t1000\t1001\tm\t0\t-"])
    out = tmp_path / "mt.zarr"
    result = cli("bin", tss, bw, "-o", out, "--flank", FLANK, "--bin-size", BIN)
    assert len(renaming_warnings(result.stderr)) == 1 and "MT -> chrM" in result.stderr
    values = helpers.dataset_rows(out)[2]
    np.testing.assert_allclose(
        values[0, 0],
        helpers.per_base_bins({"chrM": INTERVALS["chrM"]}, [("chrM", 1000, "-")], FLANK, BIN)[0],
        rtol=1e-6,
    )
