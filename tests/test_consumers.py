"""chromexpr's outputs opened by the programs users open them with, unaltered.

Each test runs the real consumer (IGV under xvfb, kent's bigBed library, coreutils ``sort``,
pyGenomeTracks, deepTools, bedtools) and asserts on what it read or drew.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.dataset.store import Dataset
from chromexpr.explain.links import INTERACT_COLUMNS
from chromexpr.explain.run import AttributionPaths, attribute
from consumers import coloured_pixels, read_bigbed_with_kent, read_png, run_igv
from explain_toys import CHROM_SIZES, LinearToy, make_dataset

#: IGV's default arc colour for BEDPE tracks.
IGV_ARC = (180, 25, 137)


@pytest.fixture(scope="module")
def attribution(tmp_path_factory: pytest.TempPathFactory) -> AttributionPaths:
    """Links and tracks of a linear toy model; its link scores are all below 1 (the IGV trap)."""
    work = tmp_path_factory.mktemp("consumers")
    dataset: Dataset = make_dataset(work / "ds.zarr")
    model = LinearToy(dataset)
    model.w *= np.float32(0.01)
    return attribute(
        model, dataset, work / "attr", method="input_x_gradient", top_k=4, device="cpu"
    )


def read_links(path: Path) -> pd.DataFrame:
    header = path.read_text().splitlines()[0]
    assert header.startswith("#chrom1\t")
    return pd.read_csv(path, sep="\t", comment=None, skiprows=1, names=header[1:].split("\t"))


def test_bedpe_score_is_bed_integer_with_raw_score_kept(attribution: AttributionPaths) -> None:
    links = read_links(attribution.links_bedpe)
    assert pd.api.types.is_integer_dtype(links["score"])
    assert links["score"].between(1, 1000).all() and links["score"].max() == 1000
    raw = links["raw_score"].to_numpy()
    assert raw.max() < 1  # the scores that broke IGV before
    expected = 1 + np.rint(999 * raw / raw.max())
    # raw_score is written with 6 significant digits: a score at a .5 boundary may round either way
    np.testing.assert_allclose(links["score"], expected, rtol=0, atol=1)


@pytest.mark.slow
def test_igv_draws_the_links_and_tracks(attribution: AttributionPaths, tmp_path: Path) -> None:
    """IGV 2.16 loads links.bedpe (arcs drawn, nothing logged) beside a bigWig track."""
    run = run_igv(
        tmp_path,
        CHROM_SIZES,
        [attribution.tracks[0], attribution.links_bedpe],
        "chrA:1-30000",
    )
    assert run.errors() == [], "\n".join(run.errors())
    image = read_png(run.png)
    arcs = coloured_pixels(image, IGV_ARC, tol=30)
    assert arcs.sum() > 500, f"only {arcs.sum()} arc pixels drawn"
    # arcs whose height is log(score) / log(max score): the mode the BED score range matters for
    proportional = run_igv(
        tmp_path / "proportional",
        CHROM_SIZES,
        [attribution.links_bedpe],
        "chrA:1-30000",
        preferences=["ARC_TYPE PROPORTIONAL_ARC"],
    )
    assert proportional.errors() == [], "\n".join(proportional.errors())
    assert coloured_pixels(read_png(proportional.png), IGV_ARC, tol=30).sum() > 500


def test_interact_rows_sorted_as_bedtobigbed_needs(attribution: AttributionPaths) -> None:
    """coreutils ``sort -c`` in the C locale: the order kent's bedToBigBed checks."""
    bed = attribution.links_interact_bed
    assert bed is not None
    assert not bed.read_text().startswith("track")
    done = subprocess.run(
        ["sort", "-c", "-k1,1", "-k2,2n", str(bed)],
        env={**os.environ, "LC_ALL": "C"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with_track = attribution.links_interact.read_text().splitlines()
    assert with_track[0].startswith("track type=interact ")
    assert with_track[1:] == bed.read_text().splitlines()


def test_biginteract_autosql_parses_in_kent(attribution: AttributionPaths, tmp_path: Path) -> None:
    """Build a bigInteract from links.interact.bed with the shipped interact.as (bigtools), read
    it back with kent's own C code (pybbi): the autoSql parses and every field round-trips."""
    pybigtools = pytest.importorskip("pybigtools")
    autosql = attribution.interact_as.read_text()
    lines = autosql.splitlines()
    assert lines[0] == "table interact"
    fields = [ln.split()[1].rstrip(";") for ln in lines if ln.strip().endswith('"') and ";" in ln]
    assert fields == INTERACT_COLUMNS  # one field per line, in file order
    assert attribution.links_interact_bed is not None
    rows = [ln.split("\t", 3) for ln in attribution.links_interact_bed.read_text().splitlines()]
    out = tmp_path / "links.inter.bb"
    writer = pybigtools.open(str(out), "w")
    writer.write(CHROM_SIZES, ((c, int(s), int(e), rest) for c, s, e, rest in rows), autosql)
    schema, records = read_bigbed_with_kent(out)
    assert schema["name"] == "interact"
    assert schema["columns"][3:] == INTERACT_COLUMNS[3:]
    assert schema["dtypes"]["score"] == "uint32" and schema["dtypes"]["value"] == "float64"
    got = sorted(tuple(map(str, r)) for rs in records.values() for r in rs)
    expected = sorted((c, s, e, *rest.split("\t")) for c, s, e, rest in rows)
    assert len(got) == len(expected) == 20
    for g, x in zip(got, expected, strict=True):
        assert g[:5] == x[:5] and g[6:] == x[6:]
        assert float(g[5]) == pytest.approx(float(x[5]), rel=1e-5)


# --------------------------------------------------------------------------------------------
# bigWig tracks: runs merged, read by kent's library and by deepTools
# --------------------------------------------------------------------------------------------


def test_bigwig_runs_of_equal_values_are_one_record(tmp_path: Path) -> None:
    """Blocks of 100-bp bins with long zero runs: one record per run, the same value per base
    for kent's reader (pybbi), and the same file whether written at once or block by block."""
    bbi = pytest.importorskip("bbi")
    from chromexpr.io.bigwig_writer import BigWigTrackWriter, write_bigwig

    rng = np.random.default_rng(4)
    sizes = {"chr1": 2_000_000, "chr2": 500_000}
    starts = np.arange(0, 1_000_000, 100)
    values = np.where(rng.random(starts.size) < 0.1, rng.normal(size=starts.size), 0.0)
    values[5000:5100] = 1.5  # a run of a non-zero value too
    expected_runs = 1 + int(np.count_nonzero(np.diff(values.astype(np.float32))))
    whole = tmp_path / "whole.bw"
    write_bigwig(whole, sizes, "chr1", starts, starts + 100, values)
    blocks = tmp_path / "blocks.bw"
    with BigWigTrackWriter(blocks, sizes) as writer:
        for lo in range(0, starts.size, 777):  # block edges cut through runs
            sl = slice(lo, lo + 777)
            writer.add("chr1", starts[sl], starts[sl] + 100, values[sl])
        writer.add("chr2", [0, 10], [10, 20], [0.0, 0.0])
    for path in (whole, blocks):
        records = list(bbi.fetch_intervals(str(path), "chr1", 0, sizes["chr1"]))
        assert len(records) == expected_runs < starts.size // 3
        per_base = bbi.fetch(str(path), "chr1", 0, 1_000_000, missing=np.nan)
        np.testing.assert_allclose(per_base, np.repeat(values.astype(np.float32), 100), rtol=1e-6)
    assert len(list(bbi.fetch_intervals(str(blocks), "chr2", 0, sizes["chr2"]))) == 1


# --------------------------------------------------------------------------------------------
# pyGenomeTracks: its links track reads column 7 as the score
# --------------------------------------------------------------------------------------------


def pygenometracks() -> str:
    """The ``pyGenomeTracks`` program: ``$CHROMEXPR_PYGENOMETRACKS`` (noxfile.py installs it in a
    virtualenv of its own), else the one on the PATH."""
    exe = os.environ.get("CHROMEXPR_PYGENOMETRACKS") or shutil.which("pyGenomeTracks")
    if not exe:
        pytest.skip("pyGenomeTracks is not installed: pip install pygenometracks (own virtualenv)")
    return exe


@pytest.mark.slow
def test_pygenometracks_reads_the_documented_conversion(
    attribution: AttributionPaths, tmp_path: Path
) -> None:
    """``cut -f1-6,8 links.bedpe > links.arcs`` (docs/explain.md): pyGenomeTracks takes every
    score and draws every arc; the unconverted BEDPE makes it drop the scores (column 7 = name)."""
    exe = pygenometracks()
    arcs = tmp_path / "links.arcs"
    with arcs.open("w") as out:
        subprocess.run(["cut", "-f1-6,8", str(attribution.links_bedpe)], stdout=out, check=True)
    n_links = len(read_links(attribution.links_bedpe))

    def draw(links: Path, name: str) -> tuple[Path, str]:
        ini = tmp_path / f"{name}.ini"
        ini.write_text(
            f"[links]\nfile = {links}\nfile_type = links\ntitle = links\nheight = 4\n"
            "color = viridis\n"
        )
        png = tmp_path / f"{name}.png"
        done = subprocess.run(
            [exe, "--tracks", str(ini), "--region", "chrA:1-30000", "-o", str(png)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return png, done.stdout + done.stderr

    png, log = draw(arcs, "converted")
    assert "score is not valid" not in log, log[-3000:]
    chr_a = int((read_links(attribution.links_bedpe)["chrom1"] == "chrA").sum())
    assert f"{chr_a} were links plotted" in log
    assert chr_a < n_links  # chrB's links are outside the region
    image = read_png(png)
    colours = {tuple(c) for c in image.reshape(-1, 3) if not (c == c[0]).all()}
    assert len(colours) > 10  # arcs coloured by their scores through the colormap

    _, raw_log = draw(attribution.links_bedpe, "unconverted")
    assert "score is not valid" in raw_log


def test_bigwig_zoom_levels_as_ucsc_builds_them(tmp_path: Path) -> None:
    """A sparse track (1-kb bins in 2 windows of 2 Mb on a 250-Mb chromosome, the shape of an
    attribution track): several x4 zoom levels (pyBigWig wrote 2), whose summaries kent's library
    reads back equal to the raw data's over aligned bins."""
    bbi = pytest.importorskip("bbi")
    from chromexpr.io.bigwig_writer import write_bigwig

    rng = np.random.default_rng(8)
    sizes = {"chr1": 248_956_422}
    starts = np.concatenate(
        [np.arange(10**7, 12 * 10**6, 1000), np.arange(10**8, 102 * 10**6, 1000)]
    )
    values = np.where(rng.random(starts.size) < 0.3, rng.normal(size=starts.size), 0.0)
    path = tmp_path / "sparse.bw"
    write_bigwig(path, sizes, "chr1", starts, starts + 1000, values)
    zooms = bbi.zooms(str(path))
    assert len(zooms) >= 4 and zooms[0] == 10_000
    assert all(b == 4 * a for a, b in itertools.pairwise(zooms))
    # 160-kb bins are whole 10/40/160-kb zoom records: their summaries are exact
    lo, n_bins, width = 96_000_000, 50, 160_000
    hi = lo + n_bins * width
    per_base = np.full(hi - lo, np.nan)  # NaN: no data
    for s, v in zip(starts, values.astype(np.float32), strict=True):
        if lo <= s < hi:
            per_base[s - lo : s - lo + 1000] = v
    blocks = per_base.reshape(n_bins, width)
    has = ~np.isnan(blocks).all(axis=1)
    assert 10 < has.sum() < n_bins  # bins with data and bins without
    for summary, reduce in (("max", np.nanmax), ("min", np.nanmin), ("mean", np.nanmean)):
        got = bbi.fetch(str(path), "chr1", lo, hi, bins=n_bins, summary=summary, missing=np.nan)
        want = np.array([reduce(b) if h else np.nan for b, h in zip(blocks, has, strict=True)])
        np.testing.assert_allclose(got[has], want[has], rtol=1e-5, atol=1e-7)
        assert np.isnan(got[~has]).all()


def test_written_bigwig_is_read_by_chromexpr_itself(tmp_path: Path) -> None:
    """The reader's completeness check (the file ends with the bigWig signature) and its values."""
    from chromexpr.io.bigwig import read_bigwig
    from chromexpr.io.bigwig_writer import write_bigwig

    path = tmp_path / "x.bw"
    write_bigwig(path, {"chr1": 1000, "chr2": 500}, ["chr1", "chr2"], [10, 0], [20, 5], [1.5, -2.0])
    assert path.read_bytes()[-4:] == path.read_bytes()[:4]
    data = read_bigwig(path)
    assert data.chroms == ["chr1", "chr2"] and data.chrom_sizes == {"chr1": 1000, "chr2": 500}
    assert data.starts.tolist() == [10, 0] and data.values.tolist() == [1.5, -2.0]
