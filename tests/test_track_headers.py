"""Chromosome sizes come from a source that knows them, never a guess; the dataset as netCDF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chromexpr.dataset.store import open_dataset
from chromexpr.errors import InputError
from chromexpr.explain.run import attribute
from explain_toys import LinearToy

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TSS = FIXTURES / "signal_tss.bed"
PEAKS = FIXTURES / "signal_narrow.narrowPeak"
SIZES = FIXTURES / "signal.chrom.sizes"


def test_peaks_without_sizes_record_none_and_attribute_asks(cli, tmp_path: Path) -> None:
    out = tmp_path / "ds.zarr"
    cli("bin", TSS, PEAKS, "-o", out, "--flank", 2000, "--bin-size", 100, "-q")
    data = open_dataset(out)
    assert data.attrs["chrom_sizes"] == {}  # peaks carry no sizes: none is made up
    with pytest.raises(InputError, match=r"no size known for chromosome\(s\) chr1.*--chrom-sizes"):
        attribute(LinearToy(data), data, tmp_path / "attr", device="cpu")
    assert not (tmp_path / "attr").exists()


def test_sizes_from_a_fai_reach_the_bigwig_header(cli, tmp_path: Path) -> None:
    import pyBigWig

    fai = tmp_path / "genome.fa.fai"  # samtools faidx layout: name, length, offset, ...
    fai.write_text(
        "".join(
            f"{c}\t{s}\t{i * 100}\t60\t61\n"
            for i, (c, s) in enumerate(line.split() for line in SIZES.read_text().splitlines())
        )
    )
    out = tmp_path / "ds.zarr"
    cli(
        "bin", TSS, PEAKS, "-o", out, "--flank", 2000, "--bin-size", 100, "--chrom-sizes", fai, "-q"
    )
    data = open_dataset(out)
    assert data.attrs["chrom_sizes"] == {"chr1": 60_000, "chr2": 25_000, "chr3": 40_000}
    paths = attribute(LinearToy(data), data, tmp_path / "attr", device="cpu")
    bw = pyBigWig.open(str(paths.tracks[0]))
    assert bw.chroms() == {"chr1": 60_000, "chr2": 25_000, "chr3": 40_000}
    bw.close()


def test_dataset_to_netcdf_round_trips(cli, tmp_path: Path) -> None:
    import xarray as xr

    out = tmp_path / "ds.zarr"
    cli("bin", TSS, PEAKS, "-o", out, "--flank", 2000, "--bin-size", 100, "-q")
    data = open_dataset(out)
    nc = tmp_path / "ds.nc"
    data.to_xarray().to_netcdf(nc)
    with xr.open_dataset(nc) as back:
        np.testing.assert_array_equal(back["openness"].values[:, 0], data.read_sample(0))
        provenance = json.loads(back.attrs["provenance"])
        assert provenance["step"] == "bin"
        assert json.loads(back.attrs["sources"]).keys() == {"signal_narrow"}
