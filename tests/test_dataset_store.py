"""The Zarr dataset: readable by xarray alone, appendable one sample at a time, atomic, never
overwritten silently; the chunked readers; ``chromexpr info``."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import chromexpr
from chromexpr.dataset.store import incomplete_samples, open_dataset
from chromexpr.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TSS = FIXTURES / "signal_tss.bed"  # 11 genes on chr1, chr2, chr3
GEOMETRY = ("--flank", 2000, "--bin-size", 100)


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    """Three samples with different signals (bigWig, bedGraph, narrowPeak) in a private
    directory."""
    d = tmp_path / "inputs"
    d.mkdir()
    lines = (FIXTURES / "signal_bedgraph.bedGraph").read_text().splitlines()[1:]
    other = [
        f"{c}\t{s}\t{e}\t{float(v) * 3 - 1}"
        for i, (c, s, e, v) in enumerate(x.split("\t") for x in lines)
        if i % 3
    ]
    (d / "B.bedGraph").write_text("\n".join(other) + "\n")
    return {
        "A": shutil.copy(FIXTURES / "signal_bigwig.bw", d / "A.bw"),
        "B": d / "B.bedGraph",
        "C": shutil.copy(FIXTURES / "signal_narrow.narrowPeak", d / "C.narrowPeak"),
    }


def bin_args(out: Path, *files: Path, chunk_genes: int = 4) -> list[object]:
    return ["bin", TSS, *files, "-o", out, *GEOMETRY, "--chunk-genes", chunk_genes, "-q"]


def chunk_files(dataset: Path) -> dict[str, tuple[int, bytes]]:
    """Every stored file except metadata: relative path -> (mtime_ns, bytes)."""
    return {
        str(p.relative_to(dataset)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in dataset.rglob("*")
        if p.is_file() and not p.name.startswith(".z")
    }


# --------------------------------------------------------------------------------------------
# Opening without chromexpr
# ----------------------------------------------------------------------------------------------


def test_xarray_opens_the_documented_layout(cli, tmp_path) -> None:
    import xarray as xr

    bw = FIXTURES / "signal_bigwig.bw"
    out = tmp_path / "ds.zarr"
    cli("bin", TSS, bw, FIXTURES / "signal_narrow.narrowPeak", "-o", out, *GEOMETRY, "-q")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = xr.open_zarr(out)
        values = ds["openness"].values
    assert not caught, [str(w.message) for w in caught]
    assert ds["openness"].dims == ("gene", "sample", "bin") and ds["openness"].dtype == np.float32
    assert values.shape == (11, 2, 40)
    assert set(ds.coords) == {
        "gene",
        "gene_name",
        "gene_type",
        "chrom",
        "tss",
        "strand",
        "sample",
        "group",
        "complete",
        "bin",
        "bin_offset",
    }
    assert ds["sample"].values.tolist() == ["signal_bigwig", "signal_narrow"]
    assert ds["complete"].values.all()
    assert ds["bin"].values.tolist() == list(range(40))
    assert ds["bin_offset"].values[0] == -2000 and ds["bin_offset"].values[20] == 0
    g = ds.sel(gene="g_mid_minus")
    assert (str(g["chrom"].values), int(g["tss"].values), str(g["strand"].values)) == (
        "chr1",
        20_017,
        "-",
    )
    # zero bins read as 0, not as missing values
    assert not np.isnan(values).any()
    assert (values[ds["gene"].values.tolist().index("g3_nosignal")] == 0).all()
    np.testing.assert_array_equal(values[:, 0], open_dataset(out).read_sample("signal_bigwig"))

    attrs = ds.attrs
    assert (attrs["flank"], attrs["bin_size"], attrs["aggregate"]) == (2000, 100, "mean")
    assert attrs["chrom_sizes"] == {"chr1": 60_000, "chr2": 25_000, "chr3": 40_000}
    provenance = attrs["provenance"]
    assert provenance["version"] == chromexpr.__version__ and provenance["step"] == "bin"
    assert provenance["parameters"]["flank"] == 2000 and "command" in provenance
    digest = "sha256:" + hashlib.sha256(bw.read_bytes()).hexdigest()
    assert attrs["sources"]["signal_bigwig"]["checksum"] == digest
    assert attrs["sources"]["signal_narrow"]["kind"] == "peaks"
    ds.close()


# --------------------------------------------------------------------------------------------
# --append, interruptions, --force
# ----------------------------------------------------------------------------------------------


def test_append_adds_a_sample_without_rewriting_the_others(cli, helpers, tmp_path, inputs) -> None:
    out = tmp_path / "ds.zarr"
    cli(*bin_args(out, inputs["A"], inputs["B"]))
    before = chunk_files(out)
    assert any(k.startswith("openness/") for k in before)
    cli(*bin_args(out, inputs["C"]), "--append")
    after = chunk_files(out)
    # the per-sample coordinates (sample, group, complete) are one small chunk each and grow; every
    # openness chunk of A and B, and every gene/bin coordinate, must be untouched
    per_sample = ("sample/", "group/", "complete/")
    kept = {k: v for k, v in before.items() if not k.startswith(per_sample)}
    assert sum(k.startswith("openness/") for k in kept) == 6  # 3 gene chunks x 2 samples
    for name, (mtime, data) in kept.items():
        assert name in after, name
        assert after[name] == (mtime, data), f"{name} was rewritten"
    assert {k for k in after if k.startswith("openness/") and k.split(".")[1] == "2"}, (
        "no chunk for sample C"
    )

    fresh = tmp_path / "fresh.zarr"
    cli(*bin_args(fresh, inputs["A"], inputs["B"], inputs["C"]))
    g1, s1, v1 = helpers.dataset_rows(out)
    g2, s2, v2 = helpers.dataset_rows(fresh)
    assert (g1, s1) == (g2, s2) and s1 == ["A", "B", "C"]
    np.testing.assert_array_equal(v1, v2)

    # appending the same input again is a no-op; the same name from other input is refused
    result = cli(*bin_args(out, inputs["C"])[:-1], "--append")
    assert "already complete; skipped" in result.stderr
    other = shutil.copy(inputs["A"], tmp_path / "C.bw")
    helpers.error_line(cli(*bin_args(out, other), "--append", expect=2), "'C'", "different input")


def test_append_checks_geometry_and_genes(cli, helpers, tmp_path, inputs) -> None:
    out = tmp_path / "ds.zarr"
    cli(*bin_args(out, inputs["A"]))
    before = chunk_files(out)
    result = cli(
        "bin", TSS, inputs["B"], "-o", out, "--flank", 1000, "--bin-size", 100, "--append", expect=2
    )
    helpers.error_line(result, "bin geometry differs", "--flank")
    fewer = helpers.write_lines(tmp_path / "fewer.bed", TSS.read_text().splitlines()[:5])
    result = cli("bin", fewer, inputs["B"], "-o", out, *GEOMETRY, "--append", expect=2)
    helpers.error_line(result, "TSS table differs")
    assert chunk_files(out) == before
    assert open_dataset(out).samples == ["A"]


class Boom(RuntimeError):
    """Raised by the patched kernel wrapper."""


def fail_on_call(monkeypatch, n: int, exc: BaseException) -> None:
    """Make the pipeline's kernel wrapper raise ``exc`` on its ``n``-th call (1-based)."""
    from chromexpr.binning import pipeline

    real = pipeline.bin_track
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "bin_track", wrapper)


@pytest.mark.parametrize(
    "exc", [Boom("disk on fire"), KeyboardInterrupt()], ids=["error", "interrupt"]
)
def test_interrupted_new_dataset_leaves_nothing(
    cli, helpers, tmp_path, inputs, monkeypatch, exc
) -> None:
    fail_on_call(monkeypatch, 2, exc)
    out = tmp_path / "ds.zarr"
    result = cli(*bin_args(out, inputs["A"], inputs["B"], inputs["C"]), expect=None)
    if isinstance(exc, KeyboardInterrupt):
        assert result.exit_code == 130 and "interrupted" in result.stderr
    else:
        assert result.exit_code != 0 and isinstance(result.exception, Boom)
    helpers.assert_nothing_written(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_interrupted_append_hides_the_sample_and_rerun_completes_it(
    cli,
    helpers,
    tmp_path,
    inputs,
    monkeypatch,
) -> None:
    out = tmp_path / "ds.zarr"
    cli(*bin_args(out, inputs["A"]))
    a_before = open_dataset(out).read_sample("A")
    fail_on_call(monkeypatch, 2, Boom("killed"))
    result = cli(*bin_args(out, inputs["B"], inputs["C"]), "--append", expect=None)
    assert isinstance(result.exception, Boom)
    data = open_dataset(out)
    assert data.samples == ["A", "B"]  # C was registered but never completed: invisible
    assert incomplete_samples(out) == ["C"]
    np.testing.assert_array_equal(data.read_sample("A"), a_before)
    info = cli("info", out)
    assert "INCOMPLETE  C" in info.stdout

    monkeypatch.undo()
    result = cli(*bin_args(out, inputs["B"], inputs["C"])[:-1], "--append")
    assert "sample B is already complete; skipped" in result.stderr
    assert incomplete_samples(out) == []
    fresh = tmp_path / "fresh.zarr"
    cli(*bin_args(fresh, inputs["A"], inputs["B"], inputs["C"]))
    np.testing.assert_array_equal(helpers.dataset_rows(out)[2], helpers.dataset_rows(fresh)[2])
    assert open_dataset(out).samples == ["A", "B", "C"]


def test_existing_output_needs_force(cli, helpers, tmp_path, inputs) -> None:
    out = tmp_path / "ds.zarr"
    cli(*bin_args(out, inputs["A"]))
    before = chunk_files(out)
    zattrs = (out / ".zattrs").read_bytes()
    result = cli(*bin_args(out, inputs["B"]), expect=2)
    helpers.error_line(result, str(out), "refusing to overwrite", "--force")
    assert chunk_files(out) == before and (out / ".zattrs").read_bytes() == zattrs
    cli(*bin_args(out, inputs["B"]), "--force")
    assert open_dataset(out).samples == ["B"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.zarr", "inputs"]  # no leftovers

    matrix = tmp_path / "m.gz"
    matrix.write_text("keep me")
    helpers.error_line(cli("export", out, "-o", matrix, expect=2), "--force")
    assert matrix.read_text() == "keep me"
    tss_out = tmp_path / "tss.bed"
    tss_out.write_text("keep me")
    helpers.error_line(
        cli(
            "tss",
            FIXTURES / "ABC_CollapsedGeneBounds.hg38.chr22_17-19.5Mb.bed",
            "-o",
            tss_out,
            expect=2,
        ),
        "--force",
    )
    assert tss_out.read_text() == "keep me"


# --------------------------------------------------------------------------------------------
# Readers for training loops
# ----------------------------------------------------------------------------------------------


def test_read_rows_block_and_gene_blocks_equal_the_full_array(cli, tmp_path, inputs) -> None:
    out = tmp_path / "ds.zarr"
    cli(*bin_args(out, inputs["A"], inputs["B"], inputs["C"], chunk_genes=3))
    data = open_dataset(out)
    assert (data.n_genes, data.n_samples, data.n_bins, data.chunk_genes) == (11, 3, 40, 3)
    full = np.stack([data.read_sample(i) for i in range(3)], axis=1)
    assert full.any()
    import xarray as xr

    with xr.open_zarr(out) as ds:
        np.testing.assert_array_equal(full, ds["openness"].values)
    np.testing.assert_array_equal(data.to_xarray()["openness"].values, full)

    rng = np.random.default_rng(0)
    genes = rng.integers(0, 11, 200)
    samples = rng.integers(0, 3, 200)
    np.testing.assert_array_equal(data.read_rows(genes, samples), full[genes, samples])
    np.testing.assert_array_equal(data.read_block(slice(2, 9), [2, 0]), full[2:9][:, [2, 0]])
    assert data.read_block(slice(0, 5), []).shape == (5, 0, 40)
    blocks = list(data.iter_gene_blocks([1, 2]))
    assert [b[0] for b in blocks] == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 11)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), full[:, [1, 2]])
    np.testing.assert_array_equal(data.sample_position(["C", "A"]), [2, 0])
    with pytest.raises(InputError, match="not in the dataset"):
        data.sample_position("Z")


def test_open_dataset_rejects_non_datasets(tmp_path) -> None:
    with pytest.raises(InputError, match="dataset not found"):
        open_dataset(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a chromexpr dataset"):
        open_dataset(tmp_path / "plain")


# --------------------------------------------------------------------------------------------
# chromexpr info
# ----------------------------------------------------------------------------------------------


def test_info_text_and_json(cli, tmp_path, inputs) -> None:
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"A\t{inputs['A']}\tgroupA\nC\t{inputs['C']}\tgroupC\n")
    out = tmp_path / "ds.zarr"
    cli("bin", TSS, "--samples", sheet, "-o", out, *GEOMETRY, "-q")
    text = cli("info", out).stdout
    assert "11 genes x 2 samples x 40 bins (float32)" in text
    assert "TSS +/- 2,000 bp, 100 bp bins, mean per bin" in text
    assert f"chromexpr {chromexpr.__version__}" in text
    sample_lines = [line.split() for line in text.splitlines() if line.startswith(("A ", "C "))]
    assert [row[:2] for row in sample_lines] == [["A", "groupA"], ["C", "groupC"]]

    described = json.loads(cli("info", out, "--json").stdout)
    data = open_dataset(out)
    assert described["shape"] == {"gene": 11, "sample": 2, "bin": 40}
    assert described["incomplete_samples"] == []
    for row, name in zip(described["samples"], ["A", "C"], strict=True):
        values = data.read_sample(name)
        assert row["sample"] == name
        assert row["mean"] == pytest.approx(values.mean(dtype=np.float64))
        assert row["max"] == pytest.approx(values.max())
        assert row["zero_genes"] == int((~values.any(axis=1)).sum()) >= 1  # g3_nosignal
