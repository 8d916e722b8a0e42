"""``chromexpr merge``: parts binned separately merge into the dataset one run would have built,
value for value; parts that disagree in genes, geometry or sample names are refused in one line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import chromexpr.cli.merge  # noqa: F401  (registers the command until cli/__init__ imports it)
from chromexpr.dataset import store
from chromexpr.dataset.merge import _gene_difference, merge_datasets
from chromexpr.dataset.store import open_dataset
from chromexpr.errors import InputError, OutputExistsError

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TSS = FIXTURES / "signal_tss.bed"  # 11 genes on chr1, chr2, chr3
GEOMETRY = ("--flank", 2000, "--bin-size", 100)


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    """Three samples (bigWig, bedGraph, narrowPeak) in two groups, with a sample sheet each."""
    d = tmp_path / "inputs"
    d.mkdir()
    files = {
        "A": shutil.copy(FIXTURES / "signal_bigwig.bw", d / "A.bw"),
        "B": shutil.copy(FIXTURES / "signal_bedgraph.bedGraph", d / "B.bedGraph"),
        "C": shutil.copy(FIXTURES / "signal_narrow.narrowPeak", d / "C.narrowPeak"),
    }
    return {name: Path(path) for name, path in files.items()}


GROUPS = {"A": "g1", "B": "g2", "C": "g1"}


def sheet(tmp_path: Path, inputs: dict[str, Path], *names: str) -> Path:
    """A sample sheet (``sample<TAB>path<TAB>group``) of ``names``."""
    path = tmp_path / f"sheet_{''.join(names)}.tsv"
    path.write_text("".join(f"{n}\t{inputs[n]}\t{GROUPS[n]}\n" for n in names))
    return path


def bin_part(cli, tmp_path, inputs, out: Path, *names: str, extra=()) -> Path:
    """Bin ``names`` into ``out`` with ``chromexpr bin``, then give logging back to the library
    (the CLI bound chromexpr's logger to the test runner's stream, closed once it returns)."""
    cli(
        "bin", TSS, "--samples", sheet(tmp_path, inputs, *names), "-o", out, *GEOMETRY, *extra, "-q"
    )
    logger = logging.getLogger("chromexpr")
    logger.handlers[:] = []
    logger.propagate = True
    return out


# --------------------------------------------------------------------------------------------
# Merged == one run
# --------------------------------------------------------------------------------------------


def test_merged_parts_equal_one_run_value_for_value(cli, helpers, tmp_path, inputs) -> None:
    import xarray as xr

    # parts of different sizes and chunkings: one sample, then two samples in 3-gene chunks
    a = bin_part(cli, tmp_path, inputs, tmp_path / "parts" / "A.zarr", "A")
    bc = bin_part(
        cli, tmp_path, inputs, tmp_path / "parts" / "BC.zarr", "B", "C", extra=("--chunk-genes", 3)
    )
    merged = tmp_path / "merged.zarr"
    cli("merge", a, bc, "-o", merged, "-q")
    whole = bin_part(cli, tmp_path, inputs, tmp_path / "whole.zarr", "A", "B", "C")

    with xr.open_zarr(merged) as m, xr.open_zarr(whole) as w:
        assert m["openness"].dims == ("gene", "sample", "bin")
        assert m["openness"].dtype == np.float32
        np.testing.assert_array_equal(m["openness"].values, w["openness"].values)
        for name in ("gene", "gene_name", "gene_type", "chrom", "tss", "strand", "sample", "group"):
            assert m[name].values.tolist() == w[name].values.tolist(), name
        assert m["sample"].values.tolist() == ["A", "B", "C"]
        assert m["group"].values.tolist() == ["g1", "g2", "g1"]
        assert m["complete"].values.all()
        np.testing.assert_array_equal(m["bin_offset"].values, w["bin_offset"].values)
        for key in ("flank", "bin_size", "aggregate", "sources", "chrom_sizes"):
            assert m.attrs[key] == w.attrs[key], key
        provenance = m.attrs["provenance"]
    assert provenance["step"] == "merge"
    assert provenance["parameters"]["parts"] == [str(a), str(bc)]
    assert [p["samples"] for p in provenance["parts"]] == [["A"], ["B", "C"]]
    assert [p["provenance"]["step"] for p in provenance["parts"]] == ["bin", "bin"]
    assert provenance["parts"][1]["provenance"]["parameters"]["flank"] == 2000
    # the merged store keeps the first part's chunking unless told otherwise
    assert open_dataset(merged).chunk_genes == open_dataset(a).chunk_genes
    rechunked = tmp_path / "rechunked.zarr"
    cli("merge", a, bc, "-o", rechunked, "--chunk-genes", 2, "-q")
    assert open_dataset(rechunked).chunk_genes == 2
    np.testing.assert_array_equal(
        helpers.dataset_rows(rechunked)[2], helpers.dataset_rows(whole)[2]
    )


def test_merged_dataset_accepts_appended_samples(cli, helpers, tmp_path, inputs) -> None:
    parts = [bin_part(cli, tmp_path, inputs, tmp_path / f"{n}.zarr", n) for n in ("A", "B")]
    merged = merge_datasets(parts, tmp_path / "merged.zarr")
    cli("bin", TSS, "--samples", sheet(tmp_path, inputs, "C"), "-o", merged, *GEOMETRY, "--append")
    whole = bin_part(cli, tmp_path, inputs, tmp_path / "whole.zarr", "A", "B", "C")
    _, samples, values = helpers.dataset_rows(merged)
    assert samples == ["A", "B", "C"]
    np.testing.assert_array_equal(values, helpers.dataset_rows(whole)[2])


def test_only_complete_samples_are_taken(cli, tmp_path, inputs, caplog) -> None:
    a = bin_part(cli, tmp_path, inputs, tmp_path / "A.zarr", "A")
    b = bin_part(cli, tmp_path, inputs, tmp_path / "B.zarr", "B")
    # an interrupted run leaves a sample that is added but never marked complete
    store.add_samples(b, ["half"], ["g9"])
    with caplog.at_level("WARNING", logger="chromexpr"):
        merged = merge_datasets([a, b], tmp_path / "merged.zarr")
    assert "skipped 1 incomplete sample(s) (half)" in caplog.text
    data = open_dataset(merged)
    assert data.samples == ["A", "B"]
    assert store.incomplete_samples(merged) == []


def test_streams_one_sample_at_a_time(cli, tmp_path, inputs, monkeypatch) -> None:
    parts = [bin_part(cli, tmp_path, inputs, tmp_path / f"{n}.zarr", n) for n in ("A", "B", "C")]
    written: list[tuple[int, tuple[int, ...]]] = []
    real = store.write_sample

    def spy(path, index, values):
        written.append((index, values.shape))
        return real(path, index, values)

    monkeypatch.setattr(store, "write_sample", spy)
    merge_datasets(parts, tmp_path / "merged.zarr")
    assert written == [(0, (11, 40)), (1, (11, 40)), (2, (11, 40))]


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (("--flank", 1000, "--bin-size", 100), ("bin geometry differs", "flank 1000 vs 2000")),
        (("--flank", 2000, "--bin-size", 200), ("bin geometry differs", "bin_size 200 vs 100")),
        ((*GEOMETRY, "--aggregate", "max"), ("bin geometry differs", "aggregate max vs mean")),
    ],
    ids=["flank", "bin-size", "aggregate"],
)
def test_different_geometry_is_refused(cli, helpers, tmp_path, inputs, options, fragments) -> None:
    a = bin_part(cli, tmp_path, inputs, tmp_path / "A.zarr", "A")
    b = tmp_path / "B.zarr"
    cli("bin", TSS, inputs["B"], "-o", b, *options, "-q")
    out = tmp_path / "merged.zarr"
    line = helpers.error_line(cli("merge", a, b, "-o", out, expect=2), *fragments)
    assert str(b) in line
    helpers.assert_nothing_written(out)


def test_different_genes_are_refused(cli, helpers, tmp_path, inputs) -> None:
    a = bin_part(cli, tmp_path, inputs, tmp_path / "A.zarr", "A")
    fewer = helpers.write_lines(tmp_path / "fewer.bed", TSS.read_text().splitlines()[:10])
    b = tmp_path / "B.zarr"
    cli("bin", fewer, inputs["B"], "-o", b, *GEOMETRY, "-q")
    out = tmp_path / "merged.zarr"
    helpers.error_line(
        cli("merge", a, b, "-o", out, expect=2), "genes differ", "10 genes instead of 11"
    )
    moved = TSS.read_text().replace("chr2\t12345\t12346", "chr2\t12346\t12347")
    shifted = helpers.write_lines(tmp_path / "shifted.bed", moved.splitlines())
    c = tmp_path / "C.zarr"
    cli("bin", shifted, inputs["C"], "-o", c, *GEOMETRY, "-q")
    helpers.error_line(
        cli("merge", a, c, "-o", out, expect=2),
        "genes differ",
        "g2_minus at chr2:12346 (-), not g2_minus at chr2:12345 (-)",
    )
    helpers.assert_nothing_written(out)


def _genes(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["gene_id", "chrom", "tss", "strand"])


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ([("a", "chr1", 10, "+"), ("b", "chr1", 50, "-"), ("c", "chr2", 5, "+")], None),
        (
            [("b", "chr1", 50, "-"), ("a", "chr1", 10, "+"), ("c", "chr2", 5, "+")],
            "same genes in another order (gene 1 is b at chr1:50 (-), not a at chr1:10 (+))",
        ),
        (
            [("a", "chr1", 10, "+"), ("b", "chr1", 50, "+"), ("c", "chr2", 5, "+")],
            "gene 2 is b at chr1:50 (+), not b at chr1:50 (-); 1 gene(s) differ in all",
        ),
        (
            [("a", "chr1", 10, "+"), ("b", "chr1", 50, "-"), ("c", "chr3", 5, "+")],
            "gene 3 is c at chr3:5 (+), not c at chr2:5 (+); 1 gene(s) differ in all",
        ),
        (
            [("a", "chr1", 10, "+"), ("x", "chr1", 50, "-"), ("y", "chr2", 5, "+")],
            "gene 2 is x at chr1:50 (-), not b at chr1:50 (-); 2 gene(s) differ in all",
        ),
        ([("a", "chr1", 10, "+")], "1 genes instead of 3"),
    ],
    ids=["same", "order", "strand", "chrom", "ids", "count"],
)
def test_gene_difference_names_the_first_one(other, expected) -> None:
    reference = _genes([("a", "chr1", 10, "+"), ("b", "chr1", 50, "-"), ("c", "chr2", 5, "+")])
    assert _gene_difference(reference, _genes(other)) == expected


def test_duplicate_samples_are_refused(cli, helpers, tmp_path, inputs) -> None:
    a = bin_part(cli, tmp_path, inputs, tmp_path / "A.zarr", "A")
    ab = bin_part(cli, tmp_path, inputs, tmp_path / "AB.zarr", "A", "B")
    out = tmp_path / "merged.zarr"
    line = helpers.error_line(
        cli("merge", a, ab, "-o", out, expect=2), "duplicate sample name 'A'", str(ab)
    )
    assert str(a) in line
    helpers.error_line(cli("merge", a, a, "-o", out, expect=2), "part given twice")
    helpers.assert_nothing_written(out)


def test_output_is_never_overwritten_silently(cli, helpers, tmp_path, inputs) -> None:
    a = bin_part(cli, tmp_path, inputs, tmp_path / "A.zarr", "A")
    b = bin_part(cli, tmp_path, inputs, tmp_path / "B.zarr", "B")
    out = tmp_path / "merged.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    helpers.error_line(cli("merge", a, b, "-o", out, expect=2), "refusing to overwrite", "--force")
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(OutputExistsError):
        merge_datasets([a, b], out)
    cli("merge", a, b, "-o", out, "--force", "-q")
    assert open_dataset(out).samples == ["A", "B"]
    helpers.error_line(cli("merge", a, b, "-o", a, "--force", expect=2), "also one of the parts")
    assert open_dataset(a).samples == ["A"]


def test_not_a_dataset_is_refused(cli, helpers, tmp_path, inputs) -> None:
    a = bin_part(cli, tmp_path, inputs, tmp_path / "A.zarr", "A")
    out = tmp_path / "merged.zarr"
    helpers.error_line(cli("merge", a, tmp_path / "nope.zarr", "-o", out, expect=2), "not found")
    helpers.error_line(cli("merge", a, inputs["B"], "-o", out, expect=2), "not a chromexpr dataset")
    with pytest.raises(InputError, match="no dataset to merge"):
        merge_datasets([], out)
    helpers.assert_nothing_written(out)


def test_a_failure_midway_leaves_nothing(cli, helpers, tmp_path, inputs, monkeypatch) -> None:
    parts = [bin_part(cli, tmp_path, inputs, tmp_path / f"{n}.zarr", n) for n in ("A", "B", "C")]
    real = store.mark_complete
    calls = {"n": 0}

    def fail_second(path, index, source=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(path, index, source)

    monkeypatch.setattr(store, "mark_complete", fail_second)
    out = tmp_path / "merged.zarr"
    result = cli("merge", *parts, "-o", out, expect=130)
    assert "interrupted" in result.stderr
    helpers.assert_nothing_written(out)
