"""``chromexpr tss`` and TSS loading on real annotations (GENCODE GTF and GFF3, Ensembl-style GTF,
ABC BED).

Expected positions were checked by hand against the 1-based annotation lines: the TSS base (0-based)
is ``start - 1`` on ``+`` and ``end - 1`` on ``-``.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.annotation.tss import TssOptions, load_tss
from chromexpr.naming import strip_version

# pyranges 0.1 calls DataFrame.set_index(inplace=True), deprecated in pandas 3.1 (Pandas4Warning, a
# DeprecationWarning raised from pyranges.readers): not ours, and harmless.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
GTF = FIXTURES / "gencode_v29_chr1_subset.gtf.gz"
GFF3 = FIXTURES / "gencode_v29_chr1_subset.gff3.gz"
TOBIAS = FIXTURES / "TOBIAS_genes_chr4_first200.hg38.gtf"
ABC = FIXTURES / "ABC_CollapsedGeneBounds.hg38.chr22_17-19.5Mb.bed"
HEADER = "#chrom\tstart\tend\tname\tscore\tstrand\tgene_name\tgene_type"

# gene (1-based GTF line: start end strand) -> 0-based TSS base
GENCODE_HAND = {
    "DDX11L1": ("ENSG00000223972", 11868, "+"),  # chr1 11869 14409 +
    "WASH7P": ("ENSG00000227232", 29569, "-"),  # chr1 14404 29570 -
    "OR4F5": ("ENSG00000186092", 65418, "+"),  # chr1 65419 71585 +
    "SAMD11": ("ENSG00000187634", 923927, "+"),  # chr1 923928 944581 +
    "NOC2L": ("ENSG00000188976", 959308, "-"),  # chr1 944204 959309 -
    "HES4": ("ENSG00000188290", 1000171, "-"),  # chr1 998962 1000172 -
}


def read_bed(path_or_text: Path | str) -> pd.DataFrame:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    lines = text.splitlines()
    assert lines[0] == HEADER
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 8 for r in rows)
    frame = pd.DataFrame(rows, columns=HEADER[1:].split("\t"))
    frame["start"] = frame["start"].astype(int)
    frame["end"] = frame["end"].astype(int)
    return frame


def gtf_gene_lines(path: Path) -> list[list[str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        return [
            line.rstrip("\n").split("\t")
            for line in handle
            if not line.startswith("#") and line.split("\t")[2] == "gene"
        ]


def test_gencode_gtf_gene_level_hand_checked(cli, tmp_path) -> None:
    out = tmp_path / "tss.bed"
    result = cli("tss", GTF, "-o", out)
    assert "119 TSSs on 1 chromosomes" in result.stderr
    bed = read_bed(out)
    assert len(bed) == 119
    assert (bed["end"] == bed["start"] + 1).all()
    assert (bed["score"] == "0").all()
    assert bed["start"].is_monotonic_increasing
    assert bed["name"].str.fullmatch(r"ENSG\d{11}").all()  # version suffixes stripped
    by_name = bed.set_index("gene_name")
    for gene, (gene_id, tss, strand) in GENCODE_HAND.items():
        row = by_name.loc[gene]
        assert (row["name"], row["start"], row["strand"], row["chrom"]) == (
            gene_id,
            tss,
            strand,
            "chr1",
        ), gene
    assert by_name.loc["OR4F5", "gene_type"] == "protein_coding"
    assert by_name.loc["WASH7P", "gene_type"] == "unprocessed_pseudogene"


def test_every_gene_follows_the_five_prime_rule(cli, tmp_path) -> None:
    out = tmp_path / "tss.bed"
    cli("tss", GTF, "-o", out)
    got = read_bed(out).set_index("name")
    for fields in gtf_gene_lines(GTF):
        gene_id = strip_version(re.search(r'gene_id "([^"]+)"', fields[8]).group(1))
        start, end, strand = int(fields[3]), int(fields[4]), fields[6]
        assert got.loc[gene_id, "start"] == (start - 1 if strand == "+" else end - 1)


def test_stdout_output_and_round_trip(cli, tmp_path) -> None:
    result = cli("tss", GTF)
    bed = read_bed(result.stdout)
    (tmp_path / "tss.bed").write_text(result.stdout)
    again = load_tss(tmp_path / "tss.bed")
    assert again["name"].tolist() == bed["name"].tolist()
    assert again["start"].tolist() == bed["start"].tolist()
    assert again["gene_type"].tolist() == bed["gene_type"].tolist()


def test_gff3_gives_the_same_genes_as_the_gtf(cli, tmp_path) -> None:
    cli("tss", GTF, "-o", tmp_path / "gtf.bed")
    cli("tss", GFF3, "-o", tmp_path / "gff3.bed")
    pd.testing.assert_frame_equal(read_bed(tmp_path / "gtf.bed"), read_bed(tmp_path / "gff3.bed"))


def test_ensembl_style_gtf(cli, tmp_path) -> None:
    out = tmp_path / "tss.bed"
    cli("tss", TOBIAS, "-o", out)
    bed = read_bed(out).set_index("name")
    assert len(bed) == 200
    # chr4 53285 88211 + ZNF595 ; chr4 49096 50124 - BNIP3P41 (gene_biotype, no version in gene_id)
    assert tuple(bed.loc["ENSG00000272602", ["start", "strand", "gene_name", "gene_type"]]) == (
        53284,
        "+",
        "ZNF595",
        "protein_coding",
    )
    assert tuple(bed.loc["ENSG00000248302", ["start", "strand", "gene_name", "gene_type"]]) == (
        50123,
        "-",
        "BNIP3P41",
        "transcribed_processed_pseudogene",
    )


# --------------------------------------------------------------------------------------------
# --level transcript --select canonical|longest|all
# ----------------------------------------------------------------------------------------------


def test_transcript_selection_on_gff3() -> None:
    canonical = load_tss(GFF3, TssOptions(level="transcript", select="canonical")).set_index(
        "gene_id"
    )
    longest = load_tss(GFF3, TssOptions(level="transcript", select="longest")).set_index("gene_id")
    every = load_tss(GFF3, TssOptions(level="transcript", select="all"))
    # OR4F5: canonical ENST00000335137 (chr1 69055 70108 +), longest ENST00000641515 (65419 71585 +)
    assert tuple(canonical.loc["ENSG00000186092", ["transcript_id", "start"]]) == (
        "ENST00000335137",
        69054,
    )
    assert tuple(longest.loc["ENSG00000186092", ["transcript_id", "start"]]) == (
        "ENST00000641515",
        65418,
    )
    # a - strand gene: AL627309.1 canonical ENST00000466430 (TSS 120931), longest ENST00000477740
    # (129216)
    assert canonical.loc["ENSG00000238009", "start"] == 120931
    assert longest.loc["ENSG00000238009", "start"] == 129216
    assert len(canonical) == len(longest) == 119
    differ = (canonical["start"] != longest.loc[canonical.index, "start"]).sum()
    assert differ == 21  # genes whose canonical transcript is not the longest
    # all: one row per transcript, named by transcript id
    assert len(every) == 470
    assert every["name"].is_unique and every["name"].str.fullmatch(r"ENST\d{11}").all()
    with gzip.open(GTF, "rt") as handle:
        n_samd11 = sum(
            1
            for line in handle
            if "\ttranscript\t" in line and 'gene_id "ENSG00000187634.11"' in line
        )
    assert (every["gene_id"] == "ENSG00000187634").sum() == n_samd11 == 17  # SAMD11's transcripts
    samd11 = every[every["gene_id"] == "ENSG00000187634"]
    assert samd11["start"].min() == 923927 and (samd11["strand"] == "+").all()


def test_canonical_falls_back_to_longest_with_one_warning(cli, tmp_path) -> None:
    # GENCODE v29 has no Ensembl_canonical tag: every gene falls back, reported once with the count
    result = cli(
        "tss", GTF, "--level", "transcript", "--select", "canonical", "-o", tmp_path / "c.bed"
    )
    warnings = [line for line in result.stderr.splitlines() if "no canonical transcript" in line]
    assert len(warnings) == 1 and "119 gene(s)" in warnings[0]
    cli("tss", GTF, "--level", "transcript", "--select", "longest", "-o", tmp_path / "l.bed")
    assert (tmp_path / "c.bed").read_text() == (tmp_path / "l.bed").read_text()


# --------------------------------------------------------------------------------------------
# Filters, ids, versions
# ----------------------------------------------------------------------------------------------


def test_gene_type_filter_reads_gene_type_and_gene_biotype(cli, tmp_path) -> None:
    n_coding = sum('gene_type "protein_coding"' in f[8] for f in gtf_gene_lines(GTF))
    cli("tss", GTF, "--gene-type", "protein_coding", "-o", tmp_path / "a.bed")
    a = read_bed(tmp_path / "a.bed")
    assert len(a) == n_coding > 0 and (a["gene_type"] == "protein_coding").all()

    cli("tss", TOBIAS, "--gene-type", "protein_coding", "-o", tmp_path / "b.bed")
    assert len(read_bed(tmp_path / "b.bed")) == 89
    cli(
        "tss",
        TOBIAS,
        "--gene-type",
        "protein_coding",
        "--gene-type",
        "lincRNA",
        "-o",
        tmp_path / "c.bed",
    )
    c = read_bed(tmp_path / "c.bed")
    assert len(c) == 89 + 18 and set(c["gene_type"]) == {"protein_coding", "lincRNA"}


def test_unknown_gene_type_is_an_error(cli, helpers, tmp_path) -> None:
    out = tmp_path / "x.bed"
    result = cli("tss", GTF, "--gene-type", "protein_codin", "-o", out, expect=2)
    helpers.error_line(result, "protein_codin")
    helpers.assert_nothing_written(out)


def _gene_line(chrom: str, start: int, end: int, strand: str, n: int, kind: str, name: str) -> str:
    attributes = f'gene_id "ENSG0000000000{n}.1"; gene_type "{kind}"; gene_name "{name}";'
    return f"{chrom}\tt\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attributes}"


MIXED_CHROMS_GTF = [
    _gene_line("chr1", 1001, 2000, "+", 1, "protein_coding", "A1"),
    _gene_line("chrM", 101, 200, "-", 2, "Mt_tRNA", "MT-TX"),
    _gene_line("chr1_KI270706v1_random", 51, 90, "+", 3, "lncRNA", "R1"),
    _gene_line("chrX", 5001, 6000, "-", 4, "protein_coding", "X1"),
    _gene_line("chr22", 7001, 7100, "+", 5, "lncRNA", "T22"),
    _gene_line("chrUn_GL000195v1", 11, 20, "-", 6, "lncRNA", "U1"),
]


def test_chroms_default_primary_and_explicit(cli, helpers, tmp_path) -> None:
    gtf = helpers.write_lines(tmp_path / "mixed.gtf", MIXED_CHROMS_GTF)
    cli("tss", gtf, "-o", tmp_path / "default.bed")
    assert read_bed(tmp_path / "default.bed")["chrom"].tolist() == [
        "chr1",
        "chr22",
        "chrX",
    ]  # natural order
    cli("tss", gtf, "--chroms", "chrM,chr1_KI270706v1_random", "-o", tmp_path / "some.bed")
    some = read_bed(tmp_path / "some.bed")
    assert sorted(some["chrom"]) == ["chr1_KI270706v1_random", "chrM"]
    assert some.set_index("gene_name").loc["MT-TX", "start"] == 199  # chrM 101 200 -
    cli("tss", gtf, "--chroms", "all", "-o", tmp_path / "all.bed")
    assert len(read_bed(tmp_path / "all.bed")) == len(MIXED_CHROMS_GTF)
    cli("tss", gtf, "--chroms", "primary", "-o", tmp_path / "primary.bed")
    assert (tmp_path / "primary.bed").read_text() == (tmp_path / "default.bed").read_text()


def test_chroms_default_primary_with_ensembl_names(cli, helpers, tmp_path) -> None:
    lines = [
        re.sub(r"^chr", "", line).replace("M\t", "MT\t", 1)
        if line.startswith("chrM")
        else re.sub(r"^chr", "", line)
        for line in MIXED_CHROMS_GTF
    ]
    gtf = helpers.write_lines(tmp_path / "ensembl.gtf.gz", lines)
    cli("tss", gtf, "-o", tmp_path / "t.bed")
    assert read_bed(tmp_path / "t.bed")["chrom"].tolist() == ["1", "22", "X"]


def test_id_gene_name_resolves_duplicates_deterministically(cli, tmp_path) -> None:
    # RF00019 (a Y_RNA) has three genes on chr4 in the first 200 lines: 1683420-1683529 -,
    # 2615124-2615224 -, 5426885-5426984 -; the first in position order is kept and the duplicate is
    # reported once, with a count
    result = cli("tss", TOBIAS, "--id", "gene_name", "-o", tmp_path / "a.bed")
    warnings = [line for line in result.stderr.splitlines() if "duplicated" in line]
    assert len(warnings) == 1
    assert "1 duplicated gene_name(s)" in warnings[0] and "RF00019" in warnings[0]
    bed = read_bed(tmp_path / "a.bed")
    assert len(bed) == 198 and bed["name"].is_unique
    assert (bed["name"] == bed["gene_name"]).all()
    assert bed.set_index("name").loc["RF00019", "start"] == 1683528
    cli("tss", TOBIAS, "--id", "gene_name", "-o", tmp_path / "b.bed")
    assert (tmp_path / "a.bed").read_text() == (tmp_path / "b.bed").read_text()


def test_version_suffixes(cli, tmp_path) -> None:
    cli("tss", GTF, "--keep-version", "-o", tmp_path / "v.bed")
    versioned = read_bed(tmp_path / "v.bed").set_index("gene_name")
    assert versioned.loc["DDX11L1", "name"] == "ENSG00000223972.5"
    assert versioned.loc["SAMD11", "name"] == "ENSG00000187634.11"
    cli("tss", GTF, "-o", tmp_path / "s.bed")
    stripped = read_bed(tmp_path / "s.bed").set_index("gene_name")
    assert (stripped["name"] == versioned["name"].map(strip_version)).all()
    assert strip_version("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"
    assert strip_version("ENSMUSG00000000001.4") == "ENSMUSG00000000001"
    assert strip_version("Gm12345.1") == "Gm12345.1"


# --------------------------------------------------------------------------------------------
# BED input (ABC gene bounds) and annotations given to `chromexpr bin`
# ----------------------------------------------------------------------------------------------


def test_abc_gene_bounds_bed(cli, tmp_path) -> None:
    out = tmp_path / "tss.bed"
    cli("tss", ABC, "-o", out)
    bed = read_bed(out).set_index("name")
    n_rows = sum(1 for line in ABC.read_text().splitlines() if not line.startswith("#"))
    assert len(bed) == n_rows == 37
    # chr22 17084958 17115694 IL17RA + ; chr22 17116298 17121323 CECR6 - (BED: TSS = start on +, end
    # - 1 on -)
    assert tuple(bed.loc["IL17RA", ["start", "end", "strand", "gene_type"]]) == (
        17084958,
        17084959,
        "+",
        "protein_coding",
    )
    assert tuple(bed.loc["CECR6", ["start", "end", "strand"]]) == (17121322, 17121323, "-")
    assert bed.loc["LINC01664", "gene_type"] == "lincRNA"
    cli("tss", ABC, "--gene-type", "lincRNA", "-o", tmp_path / "lnc.bed")
    lnc = read_bed(tmp_path / "lnc.bed")
    assert len(lnc) > 0 and (lnc["gene_type"] == "lincRNA").all()


def test_bin_accepts_the_annotation_itself(cli, helpers, tmp_path) -> None:
    rng = np.random.default_rng(3)
    cuts = np.unique(rng.integers(0, 1_600_000, 4000))
    bw = helpers.write_bigwig(
        tmp_path / "s.bw",
        {"chr1": 1_600_000},
        {"chr1": (cuts[:-1:2], cuts[1::2], rng.integers(1, 9, cuts[1::2].size))},
    )
    cli("tss", GTF, "-o", tmp_path / "tss.bed")
    cli(
        "bin",
        tmp_path / "tss.bed",
        bw,
        "-o",
        tmp_path / "from_bed.zarr",
        "--flank",
        5000,
        "--bin-size",
        100,
    )
    cli("bin", GTF, bw, "-o", tmp_path / "from_gtf.zarr", "--flank", 5000, "--bin-size", 100)
    genes_a, _, values_a = helpers.dataset_rows(tmp_path / "from_bed.zarr")
    genes_b, _, values_b = helpers.dataset_rows(tmp_path / "from_gtf.zarr")
    assert genes_a == genes_b and len(genes_a) == 119
    np.testing.assert_array_equal(values_a, values_b)
    assert values_a.any()
