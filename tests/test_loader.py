"""The neural networks' row feed (issue 13): the numba row kernel against numpy, direct chunk
decoding against zarr, the streaming :class:`RowLoader` and the device-resident
:class:`ResidentRows` against rows built by hand, the residence rule, and fc / ``train_mlp`` with
resident rows, mixed precision and ``torch.compile`` against their plain counterparts."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chromexpr.dataset.store import open_dataset
from chromexpr.errors import InputError
from chromexpr.models._loader_kernels import fill_rows
from chromexpr.models.design import BlockSource, RawCache
from chromexpr.models.loader import RowLoader
from chromexpr.models.resident import DEVICE_RESERVE, HOST_SHARE, ResidentRows, plan_residence
from chromexpr.models.splits import DEV, TEST, TRAIN, SplitConfig
from chromexpr.models.train import TrainOptions, load_context, train
from chromexpr.models.transforms import OpennessConfig, fit_openness
from planted import Planted, make_planted

N_GENES, N_SAMPLES, CHUNK = 40, 16, 16  # make_planted's store: gene blocks of 16, the last of 8


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("loader"), n_genes=N_GENES, n_samples=N_SAMPLES)


# --------------------------------------------------------------------------------------------
# The row kernel against numpy
# --------------------------------------------------------------------------------------------


def _scratch(p: int) -> np.ndarray:
    """The kernel's work space: float32 ``(4, p)``, row 3 zeros (as the loader's threads hold)."""
    return np.zeros((4, p), dtype=np.float32)


def _kernel(
    raw: np.ndarray, factor: float, log1p: bool, centre: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``fill_rows`` over every row of ``raw`` into shuffled places (rows in a scrambled order,
    centre rows reversed); returns the output (back in ``raw``'s order) and each row's centre."""
    n, p = raw.shape
    src = np.random.default_rng(n).permutation(n).astype(np.int64)
    dest = np.random.default_rng(n + 1).permutation(n).astype(np.int64)
    out = np.full((n, p), np.float32(-999.0), dtype=np.float32)
    if centre is None:
        table = np.zeros((0, p), dtype=np.float32)
        rows = np.zeros(n, dtype=np.int64)
    else:
        table = centre
        rows = np.arange(n, dtype=np.int64)[::-1][src] % centre.shape[0]
    fill_rows(raw, src, dest, np.float32(factor), log1p, table, rows, out, _scratch(p))
    back = np.empty_like(out)
    back[src] = out[dest]
    mean = np.zeros((n, p), np.float32) if centre is None else np.empty((n, p), np.float32)
    if centre is not None:
        mean[src] = table[rows]
    return back, mean


def _assert_log1p_close(got: np.ndarray, t: np.ndarray, mean: np.ndarray) -> None:
    """``got == t - mean`` where ``t`` is numpy's float32 log1p, the kernel's logarithm being
    within 3 ulp of ``t``: ``|got - (t - mean)| <= 3 ulp(t) + 1 ulp(t - mean)`` (the subtraction's
    own rounding), NaN where ``t`` is NaN."""
    ref = (t - mean).astype(np.float32)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan)
    bound = 3 * np.spacing(np.abs(t)) + np.spacing(np.abs(ref))
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bad = ~nan & ~(err <= bound)
    assert not bad.any(), (got[bad][:5], ref[bad][:5], t[bad][:5])


def _wide_raw(rng: np.random.Generator, n: int, p: int, factor: float) -> np.ndarray:
    """Values whose products with ``factor`` span [1e-40, 1e30] log-uniformly, with exact zeros,
    one row holding a negative in (-1, 0) and one a NaN."""
    z = 10.0 ** rng.uniform(-40.0, 30.0, size=(n, p))
    raw = (z / factor).astype(np.float32)
    raw[rng.random((n, p)) < 0.15] = 0.0
    raw[1, 3] = np.float32(-0.5 / factor)
    raw[2, 0] = np.nan
    return raw


@pytest.mark.parametrize("centred", [False, True])
def test_kernel_log1p_is_within_3_ulp_of_numpy_over_the_wide_range(centred: bool) -> None:
    rng = np.random.default_rng(7)
    p = 67  # not a multiple of the vector width: the tail lanes are checked too
    for factor in (1e-3, 0.37, 1.0, 1.9, 250.0):
        raw = _wide_raw(rng, 300, p, factor)
        centre = rng.normal(size=(5, p)).astype(np.float32) if centred else None
        got, mean = _kernel(raw, factor, True, centre)
        with np.errstate(invalid="ignore"):
            t = np.log1p(raw * np.float32(factor))
        _assert_log1p_close(got, t, mean)
        zeros = raw == 0
        np.testing.assert_array_equal(got[zeros], -mean[zeros])  # zero stays exactly zero
        if not centred:  # the plain log1p (no centre): max ulp distance over finite values
            finite = np.isfinite(t)
            np.testing.assert_array_max_ulp(got[finite], t[finite], maxulp=3)
        scaled, mean = _kernel(raw, factor, False, centre)  # depth scaling alone
        _assert_scaled_close(scaled, raw, np.float32(factor), mean)


finite_raw = st.one_of(
    st.sampled_from([0.0, -0.0]),
    st.floats(-40.0, 29.0).map(lambda e: 10.0**e),  # x factor <= 10: in [5e-42, 1e30]
    st.floats(-0.09, -1e-30),  # a row with a negative takes math.log1p
    st.floats(0.0, 50.0),  # the openness range
)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 9),
    p=st.integers(1, 21),
    factor=st.floats(0.05, 10.0),
    centred=st.booleans(),
    log1p=st.booleans(),
    nan_row=st.booleans(),
)
def test_kernel_matches_numpy(
    data: st.DataObject,
    n: int,
    p: int,
    factor: float,
    centred: bool,
    log1p: bool,
    nan_row: bool,
) -> None:
    values = data.draw(st.lists(finite_raw, min_size=n * p, max_size=n * p))
    raw = np.asarray(values, dtype=np.float32).reshape(n, p)
    if nan_row:
        raw[0, p // 2] = np.nan
    centre = None
    if centred:
        table = data.draw(st.lists(st.floats(-8, 8), min_size=2 * p, max_size=2 * p))
        centre = np.asarray(table, dtype=np.float32).reshape(2, p)
    got, mean = _kernel(raw, factor, log1p, centre)
    f = np.float32(factor)
    if log1p:
        _assert_log1p_close(got, np.log1p(raw * f), mean)
        zeros = raw == 0
        np.testing.assert_array_equal(got[zeros], -mean[zeros])  # zero maps to exactly -centre
    else:  # depth scaling only
        _assert_scaled_close(got, raw, f, mean)


def test_kernel_out_of_domain_values_give_numpys_infinities_and_nans() -> None:
    """Values where ``1 + v * factor`` leaves (0, largest float]: overflow to inf, -1 to -inf,
    below -1 and NaN to NaN, exactly as numpy; the rest of such a row stays exact too."""
    raw = np.array(
        [[3e38, 1.0, 0.0], [-0.5, 0.5, 0.0], [-2.0, 1.0, 1.0], [np.nan, 1.0, 1.0], [np.inf, 0, 0]],
        dtype=np.float32,
    )
    n = raw.shape[0]
    out = np.empty_like(raw)
    rows = np.arange(n, dtype=np.int64)
    empty = np.zeros((0, 3), dtype=np.float32)
    fill_rows(raw, rows, rows, np.float32(2.0), True, empty, rows, out, _scratch(3))
    with np.errstate(all="ignore"):
        expected = np.log1p(raw * np.float32(2.0))
    np.testing.assert_array_equal(out, expected)
    assert np.isposinf(out[0, 0]) and np.isneginf(out[1, 0]) and np.isnan(out[2, 0])


def test_kernel_refuses_a_scratch_of_the_wrong_shape() -> None:
    raw = np.ones((2, 5), dtype=np.float32)
    rows = np.arange(2, dtype=np.int64)
    out = np.empty_like(raw)
    with pytest.raises(ValueError, match="scratch"):
        fill_rows(raw, rows, rows, np.float32(1), True, np.zeros((0, 5), np.float32), rows, out,
                  np.zeros((3, 5), np.float32))  # fmt: skip


def _assert_scaled_close(got: np.ndarray, raw: np.ndarray, f: np.float32, mean: np.ndarray) -> None:
    """``got`` is exactly numpy's float32 ``raw * f - mean`` (two roundings, no fused
    multiply-add: the rows fc trains on equal the rows predict builds with numpy)."""
    with np.errstate(invalid="ignore", over="ignore"):
        np.testing.assert_array_equal(got, raw * f - mean)


# --------------------------------------------------------------------------------------------
# Dataset.read_chunk: one stored chunk decoded straight from its file
# --------------------------------------------------------------------------------------------


def _small_store(root: Path, *, n_genes: int = 10, chunk_genes: int = 4) -> tuple[Path, np.ndarray]:
    """A store of 3 samples written with chunks of ``chunk_genes`` genes (the last block partial)
    where the first sample is left incomplete: positions 0, 1 are store samples 1, 2."""
    import pandas as pd

    from chromexpr.binning.binner import BinSpec
    from chromexpr.dataset.store import add_samples, create_store, mark_complete, write_sample

    spec = BinSpec(flank=3_000, bin_size=1000)
    genes = pd.DataFrame(
        {
            "name": [f"G{i}" for i in range(n_genes)],
            "gene_name": [f"N{i}" for i in range(n_genes)],
            "gene_type": "protein_coding",
            "chrom": "chr1",
            "start": 100_000 + 50_000 * np.arange(n_genes),
            "strand": "+",
        }
    )
    values = np.random.default_rng(11).gamma(0.5, 2.0, size=(3, n_genes, spec.n_bins))
    values = values.astype(np.float32)
    path = root / "small.zarr"
    create_store(path, genes, spec, chunk_genes=chunk_genes)
    idx = add_samples(path, ["A", "B", "C"], ["", "", ""])
    for i in idx:
        write_sample(path, i, values[i])
    for i in idx[1:]:
        mark_complete(path, i)
    return path, values


def test_read_chunk_equals_zarr_including_the_partial_last_block(tmp_path: Path) -> None:
    import zarr

    path, values = _small_store(tmp_path)
    ds = open_dataset(path)
    assert ds.samples == ["B", "C"] and ds.chunk_genes == 4 and ds.n_genes == 10
    stored = zarr.open_group(str(path), mode="r")["openness"]
    out = np.full((4, ds.n_bins), np.float32(-1.0))
    for block, rows in ((0, 4), (1, 4), (2, 2)):  # genes 9-10 fill half of the last chunk
        for position, store_index in ((0, 1), (1, 2)):
            lo = block * 4
            got = ds.read_chunk(block, position)
            assert got.shape == (rows, ds.n_bins) and got.dtype == np.float32
            np.testing.assert_array_equal(got, stored[lo : lo + rows, store_index, :])
            np.testing.assert_array_equal(got, values[store_index, lo : lo + rows])
            np.testing.assert_array_equal(
                got, ds.read_block(slice(lo, lo + rows), [position])[:, 0]
            )
            into = ds.read_chunk(block, position, out)
            assert np.shares_memory(into, out)
            np.testing.assert_array_equal(into, got)
    with pytest.raises(IndexError):
        ds.read_chunk(3, 0)
    with pytest.raises(ValueError, match="out must be"):
        ds.read_chunk(0, 0, np.empty((3, ds.n_bins), np.float32))


def test_chunk_files_are_read_whole_whatever_their_size(tmp_path: Path) -> None:
    """The per-thread read buffer (1 MiB at first) grows for larger files (dense chunks)."""
    import os

    from chromexpr.dataset.store import _read_file

    for size in (0, 3, 1 << 20, (1 << 20) + 1, 3_500_000, 3_500_000 - 1):
        path = tmp_path / f"f{size}"
        data = os.urandom(size)
        path.write_bytes(data)
        assert bytes(_read_file(path)) == data


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_read_chunk_of_a_damaged_chunk_names_the_chunk_and_the_sample(
    tmp_path: Path, damage: str
) -> None:
    path, _ = _small_store(tmp_path)
    ds = open_dataset(path)
    chunk = path / "openness" / "2.2.0"  # last gene block (genes 9-10) of sample C (position 1)
    assert chunk.is_file()
    if damage == "missing":
        chunk.unlink()
    else:
        chunk.write_bytes(np.random.default_rng(3).bytes(64))
    with pytest.raises(InputError) as caught:
        ds.read_chunk(2, 1)
    text = str(caught.value)
    assert "chunk 2.2.0 of sample C (genes 9-10)" in text, text
    assert ("is missing" if damage == "missing" else "cannot be decoded") in text, text
    assert str(path) in text
    np.testing.assert_array_equal(ds.read_chunk(2, 0), ds.read_block(slice(8, 10), [0])[:, 0])


# --------------------------------------------------------------------------------------------
# RowLoader against rows built by hand
# --------------------------------------------------------------------------------------------

Y_STEP, Y_CENTRE_STEP = 1000.0, 10.0  # y[g, s] = 1000 g + s + 0.25, y_centre[g] = 10 g


@pytest.fixture(scope="module")
def contexts(planted: Planted) -> dict[bool, Any]:
    """``load_context`` without and with quantile normalisation (sample quantiles computed)."""
    return {
        q: load_context(
            planted.dataset, planted.expression, TrainOptions(openness=OpennessConfig(quantile=q))
        )
        for q in (False, True)
    }


def _source(
    ctx: Any, *, bins: np.ndarray | None = None, cache: RawCache | None = None
) -> BlockSource:
    config = OpennessConfig(quantile=ctx.stats.quantiles is not None)
    return BlockSource(
        ctx.dataset,
        ctx.genes["dataset_index"].to_numpy(),
        ctx.expression.sample_position,
        ctx.stats,
        fit_openness(config, ctx.stats),
        bins,
        cache,
    )


def _roles(n_genes: int, n_samples: int) -> np.ndarray:
    """Mostly TRAIN, with DEV and TEST pairs scattered, a whole DEV sample and a whole TEST gene."""
    rng = np.random.default_rng(5)
    roles = rng.choice(
        np.array([TRAIN, DEV, TEST], np.int8), size=(n_genes, n_samples), p=[0.7, 0.2, 0.1]
    )
    roles[:, 4] = DEV
    roles[7, :] = TEST
    return roles


def _loader(source: BlockSource, **changes: Any) -> RowLoader:
    n_genes, n_samples = source.gene_index.size, source.sample_position.size
    roles = _roles(n_genes, n_samples)
    y = Y_STEP * np.arange(n_genes)[:, None] + np.arange(n_samples)[None, :] + 0.25
    settings: dict[str, Any] = {
        "source": source,
        "y": y,
        "roles": roles,
        "role": TRAIN,
        "samples": np.arange(n_samples),
        "x_centre": source.gene_means(np.flatnonzero((roles == TRAIN).any(axis=0))),
        "y_centre": Y_CENTRE_STEP * np.arange(n_genes, dtype=np.float64),
        "groups": np.arange(n_samples, dtype=np.int64) % 3,
        "batch_size": 37,
        "buffer_rows": 100,
        "seed": 4,
        "threads": 2,
    }
    settings.update(changes)
    return RowLoader(**settings)


def _reference(source: BlockSource) -> np.ndarray:
    """Transformed rows ``(genes, samples, features)`` read sample by sample with
    ``BlockSource.read`` (``FittedOpenness.apply``), not centred."""
    out = np.empty(
        (source.gene_index.size, source.sample_position.size, source.n_features), np.float32
    )
    for genes, local in source.chunks():
        for col in range(source.sample_position.size):
            out[local, col] = source.read(genes, local, np.array([col]))[:, 0]
    return out


def _pairs(loader: RowLoader, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gene, sample) of rows from their centred targets ``(1000 - 10) g + s + 0.25``."""
    step = Y_STEP - (Y_CENTRE_STEP if loader.y_centre is not None else 0.0)
    g = np.floor(y / step).astype(np.int64)
    s = np.rint(y - step * g - 0.25).astype(np.int64)
    np.testing.assert_array_equal(y, (step * g + s + 0.25).astype(np.float32))  # exact targets
    return g, s


def _epoch(loader: RowLoader, epoch: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """The epoch's batches, copied as they are consumed (a recycling loader reuses buffers)."""
    return [(x.copy(), y.copy(), None if g is None else g.copy()) for x, y, g in loader(epoch)]


def _check_rows(
    loader: RowLoader,
    batches: list[Any],
    reference: np.ndarray,
    *,
    exact: bool = False,
    sizes: bool = True,
) -> None:
    """Every row of the loader's role exactly once; x the reference transform minus the gene's
    centre (to the kernel's logarithm: 3 ulp; ``exact``: bit for bit), the group code of the
    row's sample, full batches but the last."""
    if sizes:
        n = [b[0].shape[0] for b in batches]
        assert all(k == loader.batch_size for k in n[:-1]) and 0 < n[-1] <= loader.batch_size
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    g = np.concatenate([b[2] for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.float32 and g.dtype == np.int64
    gene, sample = _pairs(loader, y)
    want = np.argwhere(loader.roles == loader.role)  # (gene, sample) pairs in sorted order
    order = np.lexsort((sample, gene))
    np.testing.assert_array_equal(np.stack([gene, sample], axis=1)[order], want)  # once each
    centre = (
        np.zeros((gene.size, x.shape[1]), np.float32)
        if loader.x_centre is None
        else loader.x_centre[gene].astype(np.float32)
    )
    t = reference[gene, sample]
    if exact:
        np.testing.assert_array_equal(x, t - centre)
    else:
        _assert_log1p_close(x, t, centre)
    np.testing.assert_array_equal(g, loader.groups[sample])
    # the multiset of row sums too (independent of the matching above)
    np.testing.assert_allclose(np.sort(x.sum(axis=1)), np.sort((t - centre).sum(axis=1)), atol=1e-4)


def test_an_epoch_holds_every_training_row_once_transformed_and_centred(
    contexts: dict[bool, Any],
) -> None:
    source = _source(contexts[False])
    reference = _reference(source)
    loader = _loader(source)
    assert loader.n_rows() == int((loader.roles == TRAIN).sum())
    for epoch in (0, 1):
        _check_rows(loader, _epoch(loader, epoch), reference)
    # dev rows, in order (no shuffle), and without any centring
    dev = _loader(source, role=DEV, shuffle=False, x_centre=None, y_centre=None, recycle=True)
    _check_rows(dev, _epoch(dev, 0), reference)


def test_the_same_seed_and_epoch_give_the_same_batches(contexts: dict[bool, Any]) -> None:
    loader = _loader(_source(contexts[False]))
    first = _epoch(loader, 1)
    for other in (
        _epoch(loader, 1),
        _epoch(replace(loader, threads=1), 1),
        _epoch(replace(loader, recycle=True), 1),
        _epoch(replace(loader, recycle=True, threads=1), 1),
    ):
        assert len(other) == len(first)
        for (xa, ya, ga), (xb, yb, gb) in zip(first, other, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(ga, gb)
    for changed in (_epoch(loader, 2), _epoch(replace(loader, seed=5), 1)):
        assert not np.array_equal(changed[0][1], first[0][1])
        y_all = np.sort(np.concatenate([b[1] for b in changed]))
        np.testing.assert_array_equal(y_all, np.sort(np.concatenate([b[1] for b in first])))


def test_a_batch_mixes_samples_and_gene_chunks(contexts: dict[bool, Any]) -> None:
    loader = _loader(_source(contexts[False]))
    assert len(loader.source.chunks()) == 3  # blocks of 16, 16 and 8 genes
    for epoch in (0, 1, 2):
        _, y, _ = next(iter(loader(epoch)))
        gene, sample = _pairs(loader, y)
        assert np.unique(sample).size > 1, sample
        assert np.unique(gene // CHUNK).size > 1, gene
        # the batch's rows are not in (gene, sample) order: the buffer was shuffled
        assert not np.all(np.diff(gene * N_SAMPLES + sample) > 0)


def test_quantile_normalisation_bins_and_a_raw_cache_give_the_reference_rows(
    contexts: dict[bool, Any],
) -> None:
    # quantile normalisation: FittedOpenness transforms, the kernel only centres (bit for bit)
    quantile = _source(contexts[True])
    assert quantile.openness.reference is not None
    _check_rows(_loader(quantile), _epoch(_loader(quantile), 0), _reference(quantile), exact=True)
    # a subset of bins, not contiguous
    ctx = contexts[False]
    bins = np.array([0, 3, 4, 9, 15, 19], dtype=np.int64)
    subset = _source(ctx, bins=bins)
    reference = _reference(subset)
    np.testing.assert_array_equal(reference, _reference(_source(ctx))[:, :, bins])
    _check_rows(_loader(subset), _epoch(_loader(subset), 0), reference)
    # a raw cache of half the samples, holding other values than the store (twice them): those
    # samples come from the cache, the others from the store
    plain = _source(ctx)
    positions = plain.sample_position
    for kept in (None, bins):
        held = RawCache.build(ctx.dataset, plain.gene_index, positions[:8], kept)
        assert held is not None
        doubled = RawCache(held.gene_index, held.positions, held.bins, held.values * 2)
        cached = _source(ctx, bins=kept, cache=doubled)
        reference = _reference(cached)
        uncached = _reference(_source(ctx, bins=kept))
        assert not np.allclose(reference[:, :8], uncached[:, :8])
        np.testing.assert_array_equal(reference[:, 8:], uncached[:, 8:])
        _check_rows(_loader(cached), _epoch(_loader(cached), 0), reference)


# --------------------------------------------------------------------------------------------
# Rows held on the device
# --------------------------------------------------------------------------------------------

CPU = torch.device("cpu")


def _same_batches(resident: ResidentRows, loader: RowLoader, epoch: int) -> None:
    """The resident epoch's batches are the streamed ones, bit for bit (float32 tensors)."""
    batches = list(resident(epoch))
    streamed = _epoch(loader, epoch)
    assert len(batches) == len(streamed)
    for (x, y, g), (xs, ys, gs) in zip(batches, streamed, strict=True):
        assert x.dtype == torch.float32 and x.device == CPU
        np.testing.assert_array_equal(x.numpy(), xs)
        np.testing.assert_array_equal(y.numpy(), ys)
        if gs is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g.numpy(), gs)


def test_resident_rows_are_the_loaders_rows_batched_as_the_loader_batches_them(
    contexts: dict[bool, Any],
) -> None:
    source = _source(contexts[False])
    reference = _reference(source)
    loader = _loader(source)
    rows = ResidentRows.load(loader, CPU, "float32")
    n = loader.n_rows()
    assert rows.n_rows == n and rows.x.dtype == torch.float32
    assert rows.nbytes == n * (source.n_features * 4 + 4 + 8)
    held = (rows.x.numpy(), rows.y.numpy(), rows.g.numpy())
    _check_rows(loader, [held], reference, sizes=False)  # every row once, transformed
    # epoch e: the streaming loader's batches (units order, buffer shuffles, cuts), several
    # buffers with rows carried between them; batch_rows numbers them in the held rows
    for epoch in (0, 3):
        _same_batches(rows, loader, epoch)
        streamed = _epoch(loader, epoch)
        for ids, (x, y, _) in zip(loader.batch_rows(epoch), streamed, strict=True):
            np.testing.assert_array_equal(held[0][ids], x)
            np.testing.assert_array_equal(held[1][ids], y)
    # other batch sizes, buffers and read units; dev rows unshuffled and without groups
    for other in (
        replace(loader, batch_size=100, buffer_rows=150, unit_samples=3),
        replace(loader, batch_size=64, buffer_rows=10_000),  # one buffer, a short last batch
        replace(loader, role=DEV, shuffle=False, groups=None),
    ):
        _same_batches(ResidentRows.load(other, CPU), other, 2)
    assert not np.array_equal(_epoch(loader, 0)[0][1], _epoch(loader, 3)[0][1])


def test_loader_gene_means_equal_block_source_means(contexts: dict[bool, Any]) -> None:
    source = _source(contexts[False])
    loader = _loader(source, buffer_rows=50)
    cols = np.flatnonzero((loader.roles == TRAIN).any(axis=0))
    everything = replace(loader, roles=np.full_like(loader.roles, TRAIN), samples=cols)
    got = everything.gene_means()
    want = source.gene_means(cols)
    assert got.dtype == np.float32 and got.shape == want.shape
    # the kernel's logarithm within 3 ulp of numpy's: so is the mean of a gene's values
    np.testing.assert_allclose(got, want, rtol=4 * 2.0**-23, atol=1e-7)
    # over the loader's own rows only (TEST gene 7 has none: 0)
    means = loader.gene_means()
    reference = _reference(source)
    for gene in (0, 7, 20, 39):
        mask = loader.roles[gene] == TRAIN
        expect = reference[gene, mask].astype(np.float64).mean(axis=0) if mask.any() else 0.0
        np.testing.assert_allclose(means[gene], expect, rtol=4 * 2.0**-23, atol=1e-7)


def test_float16_rows_round_within_half_precision_and_refuse_overflow(
    contexts: dict[bool, Any],
) -> None:
    source = _source(contexts[False])
    loader = _loader(source, groups=None)
    full = ResidentRows.load(loader, CPU, "float32")
    half = ResidentRows.load(loader, CPU, "float16")
    assert half.x.dtype == torch.float16 and half.g is None
    assert half.nbytes == loader.n_rows() * (source.n_features * 2 + 4)
    for (xa, ya, _), (xb, yb, gb) in zip(full(2), half(2), strict=True):
        assert xb.dtype == torch.float32 and gb is None
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())  # targets stay float32
        a, b = xa.numpy().astype(np.float64), xb.numpy().astype(np.float64)
        # round to nearest with an 11-bit significand: relative 2**-11; subnormals (below
        # 2**-14) absolute 2**-25
        assert np.all(np.abs(a - b) <= 2.0**-11 * np.abs(a) + 2.0**-25)
    # a value beyond float16's range (65504): refused in float16, held in float32
    shifted = replace(loader, x_centre=np.full_like(loader.x_centre, -7.0e4))
    with pytest.raises(ValueError, match="float16"):
        ResidentRows.load(shifted, CPU, "float16")
    assert float(ResidentRows.load(shifted, CPU, "float32").x.min()) >= 7.0e4


# --------------------------------------------------------------------------------------------
# The residence rule
# --------------------------------------------------------------------------------------------


def test_plan_residence_rule() -> None:
    n_rows, width = 1000, 100
    need32 = n_rows * (width * 4 + 4 + 8)  # rows, targets, group codes
    need16 = n_rows * (width * 2 + 4 + 8)
    cuda = SimpleNamespace(type="cuda")

    def plan(choice: str, device: Any, free: int, **kw: Any) -> Any:
        return plan_residence(choice, n_rows, width, device, free=free, **kw)  # type: ignore[arg-type]

    # a CPU may use HOST_SHARE of the available memory, a GPU its free memory less the reserve
    host32 = int(np.ceil(need32 / HOST_SHARE))
    host16 = int(np.ceil(need16 / HOST_SHARE))
    for device, fits32, fits16 in (
        (CPU, host32, host16),
        (cuda, DEVICE_RESERVE + need32, DEVICE_RESERVE + need16),
    ):
        for choice in ("auto", "yes"):
            r = plan(choice, device, fits32)
            assert (r.resident, r.dtype, r.needed) == (True, "float32", need32), r
            r = plan(choice, device, fits32 - 2)  # only half the bytes fit
            assert (r.resident, r.dtype) == (True, "float16"), r
            r = plan(choice, device, fits16)
            assert (r.resident, r.dtype) == (True, "float16"), r
            r = plan(choice, device, fits32 * 10, dtype="float16")  # forced
            assert (r.resident, r.dtype) == (True, "float16"), r
            r = plan(choice, device, fits32, dtype="float32")
            assert (r.resident, r.dtype) == (True, "float32"), r
        for kw in ({}, {"dtype": "float32"}):
            small = fits16 - 2 if not kw else fits32 - 2
            r = plan("auto", device, small, **kw)  # nothing fits: streamed
            assert not r.resident and "streamed" in r.reason, r
            with pytest.raises(InputError, match="do not fit"):
                plan("yes", device, small, **kw)
        r = plan("no", device, fits32 * 10)
        assert not r.resident and "--data-on-device no" in r.reason
        r = plan("auto", device, fits32 * 10, distributed=True)
        assert not r.resident and "rank" in r.reason
        with pytest.raises(InputError, match="torchrun"):
            plan("yes", device, fits32 * 10, distributed=True)
    # below the reserve a GPU holds nothing
    assert not plan("auto", cuda, DEVICE_RESERVE - 1).resident
    assert plan("auto", CPU, fits32 * 10).available == int(fits32 * 10 * HOST_SHARE)
    with pytest.raises(InputError, match="auto, yes or no"):
        plan("maybe", CPU, fits32)


# --------------------------------------------------------------------------------------------
# fc with resident rows; mixed precision and torch.compile in train_mlp
# --------------------------------------------------------------------------------------------


@pytest.fixture
def _one_torch_thread() -> Any:
    """Tiny networks: torch's intra-op threads only add synchronisation on a busy 2-core machine
    (as in tests/test_fc_net.py); the setting is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fc(planted: Planted, out: Path, **params: Any) -> tuple[dict[str, Any], Any]:
    """fc (16 hidden units, no backbone, 6 epochs on CPU) on the planted data with 3 test and 2
    dev samples: the record's ``fitted`` part and the test predictions, by gene and sample."""
    base = {
        "hidden": (16,),
        "epochs": 6,
        "patience": 6,
        "lr": 0.01,
        "batch_size": 32,
        "backbone": "none",
        "device": "cpu",
    }
    split = SplitConfig(test_samples=("S00", "S01", "S02"), dev_samples=("S03", "S04"))
    options = TrainOptions(model="fc", params={**base, **params}, split=split, seed=0)
    result = train(planted.dataset, planted.expression, out, options)
    fitted = json.loads((out / "config.json").read_text())["fitted"]
    pred = result.predictions
    pred = pred[pred["split"] == "test"].sort_values(["gene_id", "sample"])
    return fitted, pred


@pytest.mark.usefixtures("_one_torch_thread")
def test_fc_trains_the_same_on_resident_and_streamed_rows(planted: Planted, tmp_path: Path) -> None:
    """Held rows are batched as the streaming loader batches them: the same network, bit for bit
    in float32 on CPU. Float16 rows (each value rounded by at most 2**-11) move the test
    predictions by at most 0.0126 of their deviations' spread over seeds 0-7 (1.6e-4 at seed 0;
    bound 0.05)."""
    fitted, pred = {}, {}
    for name, params in {
        "no": {"data_on_device": "no"},
        "yes": {"data_on_device": "yes"},
        "float16": {"data_on_device": "yes", "resident_dtype": "float16"},
    }.items():
        fitted[name], pred[name] = _fc(planted, tmp_path / name, **params)
    for name, held, dtype in (
        ("no", False, "float32"),
        ("yes", True, "float32"),
        ("float16", True, "float16"),
    ):
        data = fitted[name]["data"]
        assert (data["resident"], data["dtype"], data["compile"]) == (held, dtype, False), data
    pairs = pred["no"][["gene_id", "sample"]].to_numpy()
    for name in ("yes", "float16"):
        assert (pred[name][["gene_id", "sample"]].to_numpy() == pairs).all()
    np.testing.assert_array_equal(pred["yes"]["predicted"], pred["no"]["predicted"])
    observed = (pred["no"]["observed"] - pred["no"]["train_mean"]).to_numpy()
    dev = {k: (p["predicted"] - p["train_mean"]).to_numpy() for k, p in pred.items()}
    assert np.corrcoef(dev["no"], observed)[0, 1] > 0.25  # it learned the planted signal (0.42)
    diff = np.abs(dev["float16"] - dev["yes"])
    assert 0 < diff.max() < 0.05 * dev["yes"].std(), (diff.max(), dev["yes"].std())


def _regression(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = x @ np.linspace(-1.0, 1.0, 12) + 0.8 * np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]
    return x, (y + 0.05 * rng.normal(size=n)).astype(np.float32)


def _train_tiny(seed: int, **config: Any) -> tuple[np.ndarray, float, torch.nn.Module]:
    """A (32, 16) MLP trained 8 epochs on 512 in-memory rows (batches of 64, shuffled per epoch);
    its eval-mode predictions on 256 other rows, and its best dev MSE."""
    from chromexpr.models.fc_net import TrainConfig, build_mlp, train_mlp

    x, y = _regression(512, seed)
    xd, yd = _regression(256, seed + 100)

    def batches(epoch: int) -> Any:
        order = np.random.default_rng([seed, epoch]).permutation(y.size)
        for lo in range(0, y.size, 64):
            yield x[order[lo : lo + 64]], y[order[lo : lo + 64]], None

    net = build_mlp(12, (32, 16), seed=seed)
    settings = {"epochs": 8, "lr": 3e-3, "patience": 0, "seed": seed, "device": "cpu"}
    history = train_mlp(
        net, batches, lambda: iter([(xd, yd, None)]), TrainConfig(**settings, **config)
    )
    with torch.no_grad():
        pred = net.eval()(torch.from_numpy(xd)).numpy()
    return pred, min(h["dev_mse"] for h in history), net


@pytest.mark.usefixtures("_one_torch_thread")
def test_bfloat16_autocast_on_cpu_stays_close_to_float32() -> None:
    """bfloat16 keeps 8 significant bits: over seeds 0-3 the predictions moved by 0.005-0.016 of
    their spread (bound 0.05) and the dev MSE by at most 0.5% (bound 2%)."""
    for seed in (0, 2):
        full, full_dev, _ = _train_tiny(seed, amp=False)
        half, half_dev, _ = _train_tiny(seed, amp=True, amp_dtype="bfloat16")
        diff = np.abs(half - full).max()
        assert 1e-4 * full.std() < diff < 0.05 * full.std(), (diff, full.std())  # autocast ran
        assert abs(half_dev - full_dev) < 0.02 * full_dev, (half_dev, full_dev)


@pytest.mark.usefixtures("_one_torch_thread")
# torch's own import-time deprecation (torch/utils/mkldnn.py), met on the first CPU compile
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_training_equals_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """TorchInductor's fused kernels round differently from eager: predictions within 3e-7 of
    their spread here (bound 1e-4). Compiling costs 11-23 s cold, 3-4 s with inductor's cache."""
    assert shutil.which("g++") or shutil.which("c++"), (
        "torch.compile on CPU needs a C++ compiler: apt-get install g++ (.ci/run installs it)"
    )
    from torch._inductor.compile_fx import compile_fx

    compiled: list[Any] = []
    graphs: list[int] = []
    real = torch.compile

    def inductor(graph: Any, example_inputs: Any) -> Any:
        # TorchInductor itself, counting the graphs it really compiled: training falls back to
        # eager on a compile error, and a fallback must not pass for a compiled run
        result = compile_fx(graph, example_inputs)
        graphs.append(1)
        return result

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(model)
        return real(model, *args, **{**kwargs, "backend": inductor})

    monkeypatch.setattr(torch, "compile", spy)
    torch._dynamo.reset()
    try:
        eager, eager_dev, _ = _train_tiny(1, amp=False)
        assert not compiled
        started = time.perf_counter()
        fast, fast_dev, net = _train_tiny(1, amp=False, compile=True)
        seconds = time.perf_counter() - started
    finally:
        torch._dynamo.reset()
    assert len(compiled) == 1 and compiled[0] is net
    assert graphs, "TorchInductor compiled nothing: the run fell back to eager"
    assert torch._dynamo.config.suppress_errors is False  # the fallback setting did not leak
    np.testing.assert_allclose(fast, eager, rtol=0, atol=1e-4 * eager.std())
    assert abs(fast_dev - eager_dev) < 1e-5 * eager_dev
    print(f"compiled training: {seconds:.1f} s")


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def test_cli_data_on_device(planted: Planted, tmp_path: Path, cli: Any) -> None:
    base = ["train", planted.dataset, "-e", planted.expression, "--model", "fc", "--epochs", "1"]
    base += ["--hidden", "8", "--backbone", "none", "--device", "cpu", "--threads", "1", "-q"]
    out = tmp_path / "model"
    cli(*base, "-o", out, "--data-on-device", "yes", "--compile", "no")
    data = json.loads((out / "config.json").read_text())["fitted"]["data"]
    assert (data["resident"], data["dtype"], data["compile"]) == (True, "float32", False), data
    for option in ("--data-on-device", "--compile"):
        refused = tmp_path / "refused"
        result = cli(*base, "-o", refused, option, "maybe", expect=2)
        assert f"'{option}'" in result.stderr and "maybe" in result.stderr, result.stderr
        assert not refused.exists()
