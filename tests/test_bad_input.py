"""Every bad-input case of the foundation: a one-line error (exit code 2) that names the file, the
line when there is one, and the fix; and nothing half-written at the output path.

Each case writes its inputs into ``tmp_path``; ``@name`` in the arguments is a file from
``data/fixtures``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

# pyranges 0.1 calls DataFrame.set_index(inplace=True), deprecated in pandas 3.1 (Pandas4Warning, a
# DeprecationWarning raised from pyranges.readers): not ours, and harmless.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
with gzip.open(FIXTURES / "gencode_v29_chr1_subset.gtf.gz", "rt") as _handle:
    GTF_LINES = [next(_handle).rstrip("\n") for _ in range(30)]  # 5 '##' lines + 25 records


def gtf_with(bad: str) -> str:
    """The real GTF head with ``bad`` as line 21."""
    return "\n".join([*GTF_LINES[:20], bad, *GTF_LINES[20:]]) + "\n"


TSS = "chr1\t100\t101\ta\t0\t+\nchr1\t200\t201\tb\t0\t-\n"
BG = "chr1\t0\t10\t1\nchr1\t10\t30\t2\n"
GENE_ATTRS = 'gene_id "ENSG00000000001.1"; gene_type "protein_coding"; gene_name "X";'
NARROW = "chr1\t0\t10\tp1\t5\t.\t3.5\t1\t1\t5\n"


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def truncated_gz(text: str) -> bytes:
    data = gzip.compress(text.encode())
    return data[: len(data) // 2]


BIG_BG = "".join(f"chr1\t{10 * i}\t{10 * i + 5}\t{i % 7 + 1}\n" for i in range(20_000))

# id -> (files to write, command arguments, fragments of the error line)
CASES: dict[str, tuple[dict[str, str | bytes], list[str], list[str]]] = {
    # --- annotations (GTF/GFF3): file and line number
    "gtf_too_few_columns": (
        {"a.gtf": gtf_with("chr1\tHAVANA\tgene\t100")},
        ["tss", "a.gtf"],
        ["a.gtf:21", "expected 9 tab-separated columns"],
    ),
    "gtf_non_integer_start": (
        {"a.gtf": gtf_with(f"chr1\tX\tgene\tabc\t200\t.\t+\t.\t{GENE_ATTRS}")},
        ["tss", "a.gtf"],
        ["a.gtf:21", "start/end must be integers"],
    ),
    "gtf_end_before_start": (
        {"a.gtf": gtf_with(f"chr1\tX\tgene\t300\t200\t.\t+\t.\t{GENE_ATTRS}")},
        ["tss", "a.gtf"],
        ["a.gtf:21", "end 200 is before start 300"],
    ),
    "gtf_zero_start": (
        {"a.gtf": gtf_with(f"chr1\tX\tgene\t0\t200\t.\t+\t.\t{GENE_ATTRS}")},
        ["tss", "a.gtf"],
        ["a.gtf:21", "1-based"],
    ),
    "gtf_bad_strand": (
        {"a.gtf": gtf_with(f"chr1\tX\tgene\t100\t200\t.\tx\t.\t{GENE_ATTRS}")},
        ["tss", "a.gtf"],
        ["a.gtf:21", "strand"],
    ),
    "gtf_in_bin": (
        {"a.gtf": gtf_with("chr1\tHAVANA\tgene\t100"), "s.bedGraph": BG},
        ["bin", "a.gtf", "s.bedGraph"],
        ["a.gtf:21", "expected 9 tab-separated columns"],
    ),
    "gtf_truncated_gzip": (
        {"a.gtf.gz": (FIXTURES / "gencode_v29_chr1_subset.gtf.gz").read_bytes()[:30_000]},
        ["tss", "a.gtf.gz"],
        ["a.gtf.gz", "corrupt or truncated gzip"],
    ),
    "gtf_empty": ({"a.gtf": ""}, ["tss", "a.gtf"], ["a.gtf", "empty annotation file"]),
    "gff3_header_only": (
        {"a.gff3": "##gff-version 3\n"},
        ["tss", "a.gff3"],
        ["a.gff3", "empty annotation"],
    ),
    # --- TSS BED
    "bed_non_integer": (
        {"t.bed": TSS + "chr1\tx\t301\tc\t0\t+\n", "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph"],
        ["t.bed:3", "start/end must be integers"],
    ),
    "bed_five_columns": (
        {"t.bed": TSS + "chr1\t300\t301\tc\t0\n", "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph"],
        ["t.bed:3", "at least 6 tab-separated columns"],
    ),
    "bed_negative_start": (
        {"t.bed": "#c\ts\te\tn\tsc\tst\n" + TSS + "chr1\t-5\t1\tc\t0\t+\n", "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph"],
        ["t.bed:4", "negative start -5"],
    ),
    "bed_no_strand": (
        {"t.bed": TSS + "chr1\t300\t301\tc\t0\t.\n", "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph"],
        ["t.bed:3", "strand must be + or -"],
    ),
    "bed_empty": (
        {"t.bed": "# nothing\n", "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph"],
        ["t.bed", "empty BED file"],
    ),
    "bed_in_tss": (
        {"t.bed": TSS + "chr1\tx\t301\tc\t0\t+\n"},
        ["tss", "t.bed"],
        ["t.bed:3", "integers"],
    ),
    # --- bedGraph
    "bedgraph_unsorted": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\t1\nchr1\t20\t30\t2\nchr1\t15\t18\t3\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:3", "unsorted", "sort -k1,1 -k2,2n"],
    ),
    "bedgraph_chrom_blocks": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\t1\nchr2\t0\t10\t1\nchr1\t20\t30\t1\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:3", "chr1 appears again", "sort"],
    ),
    "bedgraph_overlapping": (
        {"t.bed": TSS, "s.bedGraph": "track type=bedGraph\nchr1\t0\t10\t1\nchr1\t5\t30\t2\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:3", "overlapping", "merge or flatten"],
    ),
    "bedgraph_nan": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\t1\nchr1\t10\t30\tnan\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:2", "finite", "NaN/inf"],
    ),
    "bedgraph_inf": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\t1\nchr1\t10\t30\tinf\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:2", "inf", "NaN/inf"],
    ),
    "bedgraph_negative_start": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t-5\t10\t1\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:1", "negative start -5", "0-based"],
    ),
    "bedgraph_empty_interval": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\t1\nchr1\t10\t10\t1\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:2", "not greater than start"],
    ),
    "bedgraph_not_a_number": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\tx\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:1", "value must be a number"],
    ),
    "bedgraph_too_few_columns": (
        {"t.bed": TSS, "s.bedGraph": "chr1\t0\t10\t1\nchr1\t20\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph:2", "expected 4"],
    ),
    "bedgraph_empty": (
        {"t.bed": TSS, "s.bedGraph": ""},
        ["bin", "t.bed", "s.bedGraph"],
        ["s.bedGraph", "empty bedGraph file"],
    ),
    "bedgraph_corrupt_gzip": (
        {"t.bed": TSS, "s.bedGraph.gz": b"\x1f\x8b\x08\x00garbage"},
        ["bin", "t.bed", "s.bedGraph.gz"],
        ["s.bedGraph.gz", "corrupt or truncated gzip"],
    ),
    "bedgraph_truncated_gzip": (
        {"t.bed": TSS, "s.bedGraph.gz": truncated_gz(BIG_BG)},
        ["bin", "t.bed", "s.bedGraph.gz"],
        ["s.bedGraph.gz", "corrupt or truncated gzip"],
    ),
    # --- peaks and count matrices
    "narrowpeak_nan": (
        {"t.bed": TSS, "p.narrowPeak": NARROW + "chr1\t20\t30\tp2\t5\t.\tnan\t1\t1\t5\n"},
        ["bin", "t.bed", "p.narrowPeak"],
        ["p.narrowPeak:2", "column 7 must be finite"],
    ),
    "narrowpeak_negative": (
        {"t.bed": TSS, "p.narrowPeak.gz": gz(NARROW + "chr1\t-1\t30\tp2\t5\t.\t2\t1\t1\t5\n")},
        ["bin", "t.bed", "p.narrowPeak.gz"],
        ["p.narrowPeak.gz:2", "negative start -1"],
    ),
    "narrowpeak_not_integer": (
        {"t.bed": TSS, "p.narrowPeak": "chr1\tx\t10\tp\t5\t.\t3\t1\t1\t5\n"},
        ["bin", "t.bed", "p.narrowPeak"],
        ["p.narrowPeak:1", "integers"],
    ),
    "peaks_empty": (
        {"t.bed": TSS, "p.broadPeak": "track name=x\n"},
        ["bin", "t.bed", "p.broadPeak"],
        ["p.broadPeak", "empty peak file"],
    ),
    "featurecounts_nan": (
        {
            "t.bed": TSS,
            "m.featureCounts.txt": "# featureCounts\nGeneid\tChr\tStart\tEnd\tStrand\t"
            "Length\tS1.bam\nI1\tchr1\t1\t10\t+\t10\t3\nI2\tchr1\t21\t30\t+\t10\tNaN\n",
        },
        ["bin", "t.bed", "m.featureCounts.txt"],
        ["m.featureCounts.txt:4", "not a finite number"],
    ),
    "featurecounts_end_before_start": (
        {
            "t.bed": TSS,
            "m.featureCounts.txt": "# featureCounts\n"
            "Geneid\tChr\tStart\tEnd\tStrand\tLength\tS1.bam\n"
            "I1\tchr1\t1\t10\t+\t10\t3\nI2\tchr1\t40\t30\t+\t10\t1\n",
        },
        ["bin", "t.bed", "m.featureCounts.txt"],
        ["m.featureCounts.txt:4", "not greater than start"],
    ),
    "counts_negative_coordinate": (
        {"t.bed": TSS, "m.counts.tsv": "chrom\tstart\tend\tS1\nchr1\t0\t5\t1\nchr1\t-3\t10\t1\n"},
        ["bin", "t.bed", "m.counts.tsv"],
        ["m.counts.tsv:3", "negative start -3"],
    ),
    "counts_bad_region_id": (
        {"t.bed": TSS, "m.counts.tsv": "region\tS1\nchr1:0-10\t5\nchr1-0-10\t5\n"},
        ["bin", "t.bed", "m.counts.tsv"],
        ["m.counts.tsv:3", "not chrom:start-end", "--regions"],
    ),
    "counts_empty": (
        {"t.bed": TSS, "m.counts.tsv": ""},
        ["bin", "t.bed", "m.counts.tsv"],
        ["m.counts.tsv", "empty count matrix"],
    ),
    # --- bigWig
    "bigwig_truncated": (
        {"t.bed": TSS},
        ["bin", "t.bed", "@signal_truncated.bw"],
        ["signal_truncated.bw", "truncated or corrupt bigWig", "re-create"],
    ),
    "bigwig_text": (
        {"t.bed": TSS, "s.bw": "chr1\t0\t10\t1\n"},
        ["bin", "t.bed", "s.bw"],
        ["s.bw", "not a bigWig", "bedGraphToBigWig"],
    ),
    "bigwig_empty": (
        {"t.bed": TSS, "s.bw": b""},
        ["bin", "t.bed", "s.bw"],
        ["s.bw", "file is empty"],
    ),
    "bigwig_random_bytes": (
        {"t.bed": TSS, "s.bw": np.random.default_rng(1).bytes(4096)},
        ["bin", "t.bed", "s.bw"],
        ["s.bw", "not a bigWig"],
    ),
    # --- TSS beyond the chromosome end (another assembly)
    "tss_beyond_chrom_sizes": (
        {
            "t.bed": TSS + "chr1\t99999\t100000\tfar\t0\t-\n",
            "sizes.txt": "chr1\t50000\n",
            "s.bedGraph": BG,
        },
        ["bin", "t.bed", "s.bedGraph", "--chrom-sizes", "sizes.txt"],
        ["far", "chr1:99999", "beyond the chromosome end", "--chrom-sizes", "same assembly"],
    ),
    "tss_beyond_bigwig_header": (
        {"t.bed": "chr1\t70000\t70001\tfar\t0\t+\n"},
        ["bin", "t.bed", "@signal_bigwig.bw"],
        ["far", "beyond the chromosome end", "signal_bigwig.bw", "same assembly"],
    ),
    "interval_beyond_chrom_sizes": (
        {"t.bed": TSS, "s.bedGraph": BG + "chr1\t30\t60000\t1\n", "sizes.txt": "chr1\t50000\n"},
        ["bin", "t.bed", "s.bedGraph", "--chrom-sizes", "sizes.txt"],
        ["s.bedGraph:3", "past the end of chr1", "--chrom-sizes"],
    ),
    # --- missing files, unknown types
    "missing_tss": (
        {"s.bedGraph": BG},
        ["bin", "nope.bed", "s.bedGraph"],
        ["nope.bed", "file not found"],
    ),
    "missing_signal": ({"t.bed": TSS}, ["bin", "t.bed", "nope.bw"], ["nope.bw", "not found"]),
    "missing_annotation": ({}, ["tss", "nope.gtf"], ["nope.gtf", "file not found"]),
    "missing_chrom_sizes": (
        {"t.bed": TSS, "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph", "--chrom-sizes", "x"],
        ["x", "file not found"],
    ),
    "missing_sample_sheet": (
        {"t.bed": TSS},
        ["bin", "t.bed", "--samples", "nope.tsv"],
        ["nope.tsv", "not found"],
    ),
    "signal_is_a_directory": (
        {"t.bed": TSS, "d/s.bedGraph": BG},
        ["bin", "t.bed", "d"],
        ["not a file", "d"],
    ),
    "unknown_extension": (
        {"t.bed": TSS, "s.txt": BG},
        ["bin", "t.bed", "s.txt"],
        ["s.txt", "unknown accessibility file type", ".bw"],
    ),
    "no_input": ({"t.bed": TSS}, ["bin", "t.bed"], ["no accessibility input", "--samples"]),
    # --- sample sheets and names
    "sheet_duplicate_names": (
        {
            "t.bed": TSS,
            "a.bedGraph": BG,
            "b.bedGraph": BG,
            "sheet.tsv": "sample\tpath\ns1\ta.bedGraph\ns1\tb.bedGraph\n",
        },
        ["bin", "t.bed", "--samples", "sheet.tsv"],
        ["sheet.tsv", "duplicate sample name 's1'", "a.bedGraph", "b.bedGraph", "unique"],
    ),
    "sheet_missing_path": (
        {"t.bed": TSS, "a.bedGraph": BG, "sheet.tsv": "s1\ta.bedGraph\ns2\tgone.bedGraph\n"},
        ["bin", "t.bed", "--samples", "sheet.tsv"],
        ["sheet.tsv:2", "not found", "gone.bedGraph"],
    ),
    "sheet_one_column": (
        {"t.bed": TSS, "sheet.tsv": "sample\tpath\ns1\n"},
        ["bin", "t.bed", "--samples", "sheet.tsv"],
        ["sheet.tsv:2", "sample<TAB>path"],
    ),
    "sheet_unknown_extension": (
        {"t.bed": TSS, "a.txt": BG, "sheet.tsv": "s1\ta.txt\n"},
        ["bin", "t.bed", "--samples", "sheet.tsv"],
        ["sheet.tsv:1", "unknown accessibility"],
    ),
    "sheet_empty": (
        {"t.bed": TSS, "sheet.tsv": "sample\tpath\n"},
        ["bin", "t.bed", "--samples", "sheet.tsv"],
        ["sheet.tsv", "empty sample sheet"],
    ),
    "duplicate_file_stems": (
        {"t.bed": TSS, "a/x.bedGraph": BG, "b/x.bedGraph": BG},
        ["bin", "t.bed", "a/x.bedGraph", "b/x.bedGraph"],
        ["duplicate sample name 'x'", "a/x.bedGraph", "b/x.bedGraph"],
    ),
    "duplicate_between_files_and_sheet": (
        {"t.bed": TSS, "x.bedGraph": BG, "y.bedGraph": BG, "sheet.tsv": "x\ty.bedGraph\n"},
        ["bin", "t.bed", "x.bedGraph", "--samples", "sheet.tsv"],
        ["duplicate sample name 'x'"],
    ),
    # --- chromosomes, geometry
    "no_chromosome_in_common": (
        {"t.bed": TSS, "s.bedGraph": "chr5\t0\t10\t1\nchr6\t0\t10\t1\n"},
        ["bin", "t.bed", "s.bedGraph"],
        ["no chromosome in common", "(chr1)", "(chr5, chr6)", "s.bedGraph", "--chrom-alias"],
    ),
    "flank_not_multiple_of_bin": (
        {"t.bed": TSS, "s.bedGraph": BG},
        ["bin", "t.bed", "s.bedGraph", "--flank", "1050", "--bin-size", "100"],
        ["flank 1050", "multiple of bin size 100", "--flank"],
    ),
}


# pyranges (0.1) reads a GTF through pandas' chunked reader and leaves that reader's file open when
# a line fails to parse; the handle is closed only by the garbage collector (a ResourceWarning). Not
# ours: those cases ignore it, and collect the garbage before they end so that the warning cannot
# land in another test.
PYRANGES_LEAKS = {"gtf_too_few_columns", "gtf_non_integer_start", "gtf_in_bin"}
LEAK = pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=LEAK) if c in PYRANGES_LEAKS else c for c in CASES]
)
def test_bad_input(cli, helpers, tmp_path, monkeypatch, case) -> None:
    files, args, fragments = CASES[case]
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    monkeypatch.chdir(tmp_path)  # relative names in the arguments and in the messages
    argv = [str(FIXTURES / a[1:]) if a.startswith("@") else a for a in args]
    output = tmp_path / ("out.zarr" if argv[0] == "bin" else "out.bed")
    if "--flank" not in argv and argv[0] == "bin":
        argv += ["--flank", "100", "--bin-size", "10"]
    result = cli(*argv, "-o", output, expect=None)
    helpers.error_line(result, *fragments)
    helpers.assert_nothing_written(output)
    if case in PYRANGES_LEAKS:
        import gc

        del result
        gc.collect()


def test_bigwig_nan_values_are_no_data_with_one_warning(cli, helpers, tmp_path) -> None:
    # documented behaviour: NaN intervals of a bigWig count as no data (0), with one warning per
    # file
    import pyBigWig

    path = tmp_path / "nan.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", 1000)], maxZooms=0)
    bw.addEntries(["chr1"] * 3, [0, 10, 20], ends=[10, 20, 30], values=[1.0, float("nan"), 2.0])
    bw.close()
    tss = helpers.write_lines(tmp_path / "t.bed", ["chr1\t10\t11\ta\t0\t+"])
    result = cli("bin", tss, path, "-o", tmp_path / "o.zarr", "--flank", 10, "--bin-size", 10)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert (
        len(warnings) == 1
        and "1 interval(s) with NaN values" in warnings[0]
        and "nan.bw" in warnings[0]
    )
    np.testing.assert_array_equal(helpers.dataset_rows(tmp_path / "o.zarr")[2][0, 0], [1.0, 0.0])


def test_bigwig_inf_values_are_an_error(cli, helpers, tmp_path) -> None:
    import pyBigWig

    path = tmp_path / "inf.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", 1000)], maxZooms=0)
    bw.addEntries(["chr1"] * 2, [0, 10], ends=[10, 20], values=[1.0, float("inf")])
    bw.close()
    tss = helpers.write_lines(tmp_path / "t.bed", ["chr1\t10\t11\ta\t0\t+"])
    out = tmp_path / "o.zarr"
    result = cli("bin", tss, path, "-o", out, "--flank", 10, "--bin-size", 10, expect=2)
    helpers.error_line(result, "inf.bw", "infinite values", "regenerate")
    helpers.assert_nothing_written(out)


def test_a_bad_second_sample_leaves_no_dataset(cli, helpers, tmp_path) -> None:
    # the first sample is binned and written to the temporary store before the second one fails
    tss = helpers.write_lines(tmp_path / "t.bed", ["chr1\t100\t101\ta\t0\t+"])
    good = helpers.write_lines(tmp_path / "good.bedGraph", ["chr1\t0\t10\t1"])
    bad = helpers.write_lines(tmp_path / "bad.bedGraph", ["chr1\t10\t20\t1", "chr1\t0\t5\t1"])
    out = tmp_path / "o.zarr"
    result = cli("bin", tss, good, bad, "-o", out, "--flank", 100, "--bin-size", 10, expect=2)
    helpers.error_line(result, "bad.bedGraph:2", "unsorted")
    helpers.assert_nothing_written(out)


def test_a_bad_appended_sample_keeps_the_dataset(cli, helpers, tmp_path) -> None:
    tss = helpers.write_lines(tmp_path / "t.bed", ["chr1\t100\t101\ta\t0\t+"])
    good = helpers.write_lines(tmp_path / "good.bedGraph", ["chr1\t0\t10\t1"])
    bad = helpers.write_lines(tmp_path / "bad.bedGraph", ["chr1\t10\t20\tinf"])
    out = tmp_path / "o.zarr"
    cli("bin", tss, good, "-o", out, "--flank", 100, "--bin-size", 10, "-q")
    result = cli("bin", tss, bad, "-o", out, "--flank", 100, "--bin-size", 10, "--append", expect=2)
    helpers.error_line(result, "bad.bedGraph:1", "inf")
    from chromexpr.dataset.store import open_dataset

    assert open_dataset(out).samples == ["good"]


def test_export_and_info_errors(cli, helpers, tmp_path) -> None:
    helpers.error_line(
        cli("info", tmp_path / "none.zarr", expect=2), "none.zarr", "dataset not found"
    )
    (tmp_path / "plain").mkdir()
    helpers.error_line(cli("info", tmp_path / "plain", expect=2), "not a chromexpr dataset")
    tss = helpers.write_lines(tmp_path / "t.bed", ["chr1\t100\t101\ta\t0\t+"])
    bg = helpers.write_lines(tmp_path / "s.bedGraph", ["chr1\t0\t10\t1"])
    cli("bin", tss, bg, "-o", tmp_path / "d.zarr", "--flank", 100, "--bin-size", 10, "-q")
    out = tmp_path / "m.gz"
    result = cli("export", tmp_path / "d.zarr", "--samples", "s,zz", "-o", out, expect=2)
    helpers.error_line(result, "not in the dataset: zz", "available: s")
    helpers.assert_nothing_written(out)
