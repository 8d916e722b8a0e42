"""``store.write_sample`` writes a sample's chunks itself (for speed): the files must be the very
bytes zarr writes for the same values, and read back equal through zarr and xarray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.binning.binner import BinSpec
from chromexpr.dataset import store

SPEC = BinSpec(flank=5000, bin_size=100)  # 100 bins


def make_store(path: Path, n_genes: int, n_samples: int, chunk_genes: int) -> None:
    genes = pd.DataFrame(
        {
            "name": [f"g{i}" for i in range(n_genes)],
            "gene_name": [f"G{i}" for i in range(n_genes)],
            "gene_type": "protein_coding",
            "chrom": "chr1",
            "start": np.arange(n_genes, dtype=np.int64) * 10,
            "strand": "+",
        }
    )
    store.create_store(path, genes, SPEC, chunk_genes=chunk_genes)
    store.add_samples(path, [f"s{i}" for i in range(n_samples)], [""] * n_samples)


def sample_values(rng: np.random.Generator, n_genes: int, density: float) -> np.ndarray:
    mask = rng.random((n_genes, SPEC.n_bins)) < density
    return np.where(mask, rng.gamma(1.5, 4.0, mask.shape), 0.0).astype(np.float32)


@pytest.mark.parametrize("n_genes", [256, 300, 37])  # whole chunks, an edge chunk, one short chunk
def test_direct_chunks_are_the_bytes_zarr_writes(tmp_path: Path, n_genes: int) -> None:
    import zarr

    rng = np.random.default_rng(n_genes)
    values = [sample_values(rng, n_genes, d) for d in (0.1, 0.9)]
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    for path in (ours, theirs):
        make_store(path, n_genes, len(values), chunk_genes=128)
    reference = zarr.open_group(str(theirs), mode="r+", zarr_format=2)["openness"]
    assert store._direct_chunks(reference)
    for i, v in enumerate(values):
        store.write_sample(ours, i, v)
        reference[:, i, :] = v
    written = {p.name for p in (theirs / "openness").iterdir() if not p.name.startswith(".")}
    assert written  # zarr wrote every chunk (none is all zero here)
    for name in written:
        assert (ours / "openness" / name).read_bytes() == (theirs / "openness" / name).read_bytes()
    assert not list((ours / "openness").glob("*.partial"))
    stacked = np.stack(values, axis=1)
    got = zarr.open_group(str(ours), mode="r", zarr_format=2)["openness"][:]
    np.testing.assert_array_equal(got, stacked)


def test_rewriting_a_sample_replaces_every_chunk_and_xarray_reads_it(tmp_path: Path) -> None:
    import xarray as xr

    path = tmp_path / "ds.zarr"
    make_store(path, 300, 2, chunk_genes=128)
    rng = np.random.default_rng(7)
    first, second, other = (sample_values(rng, 300, 0.3) for _ in range(3))
    store.write_sample(path, 0, first)
    store.write_sample(path, 1, other)
    # an all-zero rewrite must not leave old chunks behind
    store.write_sample(path, 0, np.zeros_like(first))
    store.write_sample(path, 0, second)
    store.write_sample(path, 0, np.zeros_like(first))
    store.consolidate(path)
    openness = xr.open_zarr(str(path))["openness"].to_numpy()
    np.testing.assert_array_equal(openness[:, 0, :], 0.0)
    np.testing.assert_array_equal(openness[:, 1, :], other)


def test_write_sample_checks_shape_and_index(tmp_path: Path) -> None:
    path = tmp_path / "ds.zarr"
    make_store(path, 10, 1, chunk_genes=4)
    with pytest.raises(ValueError, match="shape"):
        store.write_sample(path, 0, np.zeros((9, SPEC.n_bins), dtype=np.float32))
    with pytest.raises(IndexError):
        store.write_sample(path, 1, np.zeros((10, SPEC.n_bins), dtype=np.float32))
