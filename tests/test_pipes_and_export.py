"""Pipes and compression as Unix tools behave, and deepTools matrices of gene subsets/sub-windows.

Outputs: ``-o -`` is standard output, ``NAME.gz`` is gzip (no file name or time in the header), any
other name plain text. Inputs: ``-``/``/dev/stdin`` are read and their format detected from the
content. A reader that closes the pipe early ends chromexpr quietly with status 0.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.binning.binner import BinSpec
from chromexpr.dataset import store
from chromexpr.dataset.export import export_deeptools
from chromexpr.dataset.store import open_dataset
from chromexpr.io.expression import write_long_table

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
GTF = FIXTURES / "gencode_v29_chr1_subset.gtf.gz"


def gzip_header_is_anonymous(path: Path) -> bool:
    """FLG without FNAME and MTIME 0: nothing of the temporary file or the clock leaks."""
    head = path.read_bytes()[:10]
    return head[:2] == b"\x1f\x8b" and head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0"


# --------------------------------------------------------------------------------------------
# tss: -o -, .gz, stdin
# --------------------------------------------------------------------------------------------


def test_tss_outputs_stdout_gzip_and_plain(cli, tmp_path: Path) -> None:
    plain = tmp_path / "tss.bed"
    cli("tss", GTF, "-o", plain, "-q")
    expected = plain.read_text()
    assert expected.count("\n") == 120 and not plain.read_bytes().startswith(b"\x1f\x8b")

    to_stdout = cli("tss", GTF, "-o", "-", "-q")
    assert to_stdout.stdout == expected
    assert not Path("-").exists()

    packed = tmp_path / "tss.bed.gz"
    cli("tss", GTF, "-o", packed, "-q")
    assert gzip_header_is_anonymous(packed)
    assert gzip.decompress(packed.read_bytes()).decode() == expected
    # bedtools reads it as it is
    if shutil.which("bedtools"):
        done = subprocess.run(
            ["bedtools", "merge", "-i", str(packed), "-d", "-1"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.count("\n") > 50


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_tss_reads_stdin_detecting_the_format(cli, tmp_path: Path, name: str) -> None:
    """A gzipped GTF, a plain GTF and a TSS BED, each piped in without a telling name."""
    from typer.testing import CliRunner

    from chromexpr.cli import app

    reference = cli("tss", GTF, "-q").stdout
    runner = CliRunner()
    for data in (GTF.read_bytes(), gzip.decompress(GTF.read_bytes()), reference.encode()):
        if name == "/dev/stdin":  # a real pipe: CliRunner's stdin is not /dev/stdin
            done = subprocess.run(
                [sys.executable, "-m", "chromexpr", "tss", name, "-q"],
                input=data,
                capture_output=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            assert done.stdout.decode() == reference
        else:
            result = runner.invoke(app, ["tss", name, "-q"], input=data)
            assert result.exit_code == 0, result.stderr
            assert result.stdout == reference


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``chromexpr tss x.gtf | head -1`` under ``set -o pipefail`` (bash): status 0, nothing on
    stderr."""
    assert shutil.which("bash"), "this test runs a bash pipeline (set -o pipefail)"
    exe = f"'{sys.executable}' -m chromexpr"
    big = tmp_path / "big.bed"
    rows = [f"chr1\t{i * 10}\t{i * 10 + 1}\tg{i}\t0\t+\n" for i in range(200_000)]
    big.write_text("".join(rows))
    for _ in range(3):
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {exe} tss '{big}' -q | head -1"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONWARNINGS": "default"},
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert done.stdout.startswith("#chrom")


def test_long_tables_to_stdout_and_gzip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    frame = pd.DataFrame({"gene_id": ["g1", "g2"], "s1": [1.5, 2.0]})
    write_long_table("-", frame)
    assert capsys.readouterr().out == "gene_id\ts1\ng1\t1.5\ng2\t2\n"
    packed = tmp_path / "p.tsv.gz"
    write_long_table(packed, frame)
    assert gzip_header_is_anonymous(packed)
    pd.testing.assert_frame_equal(pd.read_csv(packed, sep="\t"), frame)
    plain = tmp_path / "p.tsv"
    write_long_table(plain, frame)
    assert plain.read_text().startswith("gene_id\ts1\n")


# --------------------------------------------------------------------------------------------
# export --format deeptools: genes, window, rebin, names, speed
# --------------------------------------------------------------------------------------------


def read_matrix(path: Path):
    from deeptools import heatmapper

    hm = heatmapper.heatmapper()
    hm.read_matrix_file(str(path))
    return hm


def make_random_dataset(path: Path, n_genes: int, spec: BinSpec, n_samples: int = 2):
    rng = np.random.default_rng(3)
    genes = pd.DataFrame(
        {
            "name": [f"G{i}" for i in range(n_genes)],
            "gene_name": [f"N{i}" for i in range(n_genes)],
            "gene_type": "protein_coding",
            "chrom": "chr1",
            "start": np.arange(n_genes, dtype=np.int64) * 20_000 + 10_000_000,
            "strand": np.where(np.arange(n_genes) % 2, "-", "+"),
        }
    )
    store.create_store(path, genes, spec, attrs={"chrom_sizes": {"chr1": 10**9}})
    names = [f"s{i}" for i in range(n_samples)]
    for i in store.add_samples(path, names, ["a"] * n_samples):
        values = rng.gamma(2.0, 1.0, size=(n_genes, spec.n_bins)).astype(np.float32)
        store.write_sample(path, i, values)
        store.mark_complete(path, i)
    return open_dataset(path)


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_export_subset_window_rebin_read_by_deeptools(tmp_path: Path, aggregate: str) -> None:
    spec = BinSpec(flank=2000, bin_size=100, aggregate=aggregate)
    data = make_random_dataset(tmp_path / "d.zarr", 40, spec)
    out = tmp_path / "m.tab"  # gzip whatever the name: deepTools reads matrices as gzip only
    export_deeptools(
        data, out, samples=["s1", "s0"], genes=["N7", "G3", "N30"], window=500, factor=2
    )
    assert gzip_header_is_anonymous(out)
    hm = read_matrix(out)
    assert hm.parameters["upstream"] == [500, 500] and hm.parameters["bin size"] == [200, 200]
    assert hm.parameters["sample_labels"] == ["s1", "s0"]
    assert [r[2] for r in hm.matrix.regions] == ["G3", "G7", "G30"]  # dataset order
    raw = np.stack([data.read_sample(s) for s in ("s1", "s0")], axis=1)[[3, 7, 30]]
    window = raw[:, :, 15:25].reshape(3, 2, 5, 2)  # bins within 500 bp of the TSS, in pairs
    merged = window.mean(axis=-1) if aggregate == "mean" else window.max(axis=-1)
    np.testing.assert_allclose(hm.matrix.matrix, merged.reshape(3, 10), rtol=1e-5)


@pytest.mark.slow
# deepTools 3.5 calls a colormap method that matplotlib >= 3.11 marks for deprecation: not ours
@pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")
def test_export_plotheatmap_and_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 genes x 1 sample at +-5 kb: written in seconds; plotHeatmap draws a subset."""
    from deeptools import plotHeatmap

    monkeypatch.setattr(sys, "argv", ["deeptools", "--in-process"])
    spec = BinSpec(flank=20_000, bin_size=100)
    data = make_random_dataset(tmp_path / "d.zarr", 20_000, spec, n_samples=1)
    out = tmp_path / "all.matrix.gz"
    start = time.perf_counter()
    export_deeptools(data, out, window=5000)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert gzip_header_is_anonymous(out)
    hm = read_matrix(out)
    assert hm.matrix.matrix.shape == (20_000, 100)
    sub = tmp_path / "sub.matrix.gz"
    export_deeptools(data, sub, genes=[f"G{i}" for i in range(0, 20_000, 50)], window=5000)
    png = tmp_path / "heatmap.png"
    plotHeatmap.main(["-m", str(sub), "-o", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_export_cli_to_stdout_and_bad_window(cli, helpers, tmp_path: Path) -> None:
    spec = BinSpec(flank=1000, bin_size=100)
    make_random_dataset(tmp_path / "d.zarr", 5, spec)
    result = cli("export", tmp_path / "d.zarr", "-o", "-", "--genes", "G1", "--window", 200)
    lines = gzip.decompress(result.stdout_bytes).decode().splitlines()
    assert lines[0].startswith("@{") and len(lines) == 2
    assert lines[1].split("\t")[:6] == ["chr1", "10020000", "10020001", "G1", "0", "-"]
    assert len(lines[1].split("\t")) == 6 + 2 * 4
    out = tmp_path / "m.gz"
    bad = cli("export", tmp_path / "d.zarr", "-o", out, "--window", 250, expect=2)
    helpers.error_line(bad, "window 250 must be a positive multiple of the bin size")
    helpers.assert_nothing_written(out)
    bad = cli("export", tmp_path / "d.zarr", "-o", out, "--window", 300, "--rebin", 4, expect=2)
    helpers.error_line(bad, "cannot be merged by 4")
    helpers.assert_nothing_written(out)


# --------------------------------------------------------------------------------------------
# bin: an accessibility input on standard input
# --------------------------------------------------------------------------------------------


def test_bin_reads_stdin_with_the_format_from_the_content(cli, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chromexpr.cli import app
    from chromexpr.io.samples import content_suffix

    assert content_suffix(FIXTURES / "signal_bigwig.bw") == ".bw"
    assert content_suffix(FIXTURES / "signal_narrow.narrowPeak") == ".narrowPeak"
    assert content_suffix(FIXTURES / "signal_broad.broadPeak.gz") == ".narrowPeak"
    assert content_suffix(FIXTURES / "signal_bedgraph_gz.bedGraph.gz") == ".bedGraph"
    assert content_suffix(FIXTURES / "signal_score.bed") == ".bed"
    assert content_suffix(FIXTURES / "signal.featureCounts.txt") == ".featureCounts.txt"

    geometry = ["--flank", "2000", "--bin-size", "100", "-q"]
    tss = FIXTURES / "signal_tss.bed"
    runner = CliRunner()
    for name in ("signal_bedgraph_gz.bedGraph.gz", "signal_narrow.narrowPeak", "signal_bigwig.bw"):
        source = FIXTURES / name
        named = tmp_path / f"named_{name}.zarr"
        cli("bin", tss, source, "-o", named, *geometry)
        piped = tmp_path / f"piped_{name}.zarr"
        args = ["bin", str(tss), "-", "-o", str(piped), *geometry]
        result = runner.invoke(app, args, input=source.read_bytes())
        assert result.exit_code == 0, result.stderr
        assert open_dataset(piped).samples == ["stdin"]
        np.testing.assert_array_equal(
            open_dataset(piped).read_sample(0), open_dataset(named).read_sample(0)
        )
