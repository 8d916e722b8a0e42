"""Transforms fitted on training samples only (no leakage) and the properties of splits and
folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chromexpr.binning.binner import BinSpec
from chromexpr.dataset.store import add_samples, create_store, mark_complete, write_sample
from chromexpr.errors import InputError
from chromexpr.models.splits import (
    DEV,
    TEST,
    TRAIN,
    UNUSED,
    Split,
    SplitConfig,
    auto_groups,
    groups_kept_whole,
    make_folds,
    make_split,
)
from chromexpr.models.transforms import (
    OpennessConfig,
    SampleStatistics,
    backward_expression,
    fit_openness,
    forward_expression,
    quantile_map,
)

# ------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("kind", ["log2p1", "log1p", "none"])
def test_expression_round_trip(kind: str) -> None:
    tpm = np.array([[0.0, 1.0, 1000.0], [3.5, 0.25, 7.0]])
    y = forward_expression(tpm, kind)  # type: ignore[arg-type]
    np.testing.assert_allclose(backward_expression(y, kind), tpm, rtol=1e-12, atol=1e-12)  # type: ignore[arg-type]


def test_negative_tpm_with_log_is_a_one_line_error() -> None:
    with pytest.raises(InputError, match=r"negative expression value.*gene g2, sample s1") as info:
        forward_expression(
            np.array([[1.0, 2.0], [-0.5, 1.0]]),
            "log2p1",
            gene_ids=["g1", "g2"],
            samples=["s1", "s2"],
        )
    assert "\n" not in str(info.value)
    np.testing.assert_array_equal(forward_expression(np.array([[-1.0]]), "none"), [[-1.0]])


def test_quantile_map_is_monotone_and_hits_the_reference() -> None:
    rng = np.random.default_rng(0)
    own = np.sort(rng.gamma(1.0, size=101))
    reference = np.sort(rng.normal(size=101))
    values = np.sort(rng.gamma(1.0, size=500))
    mapped = quantile_map(values, own, reference)
    assert np.all(np.diff(mapped) >= -1e-6)
    np.testing.assert_allclose(quantile_map(own, own, reference), reference, atol=1e-5)


def test_quantile_normalised_samples_share_a_distribution() -> None:
    rng = np.random.default_rng(1)
    config = OpennessConfig(depth=True, log1p=True, quantile=True, n_quantiles=201)
    levels = np.linspace(0, 1, 201)
    raw = [rng.gamma(0.5, scale=s, size=4000).astype(np.float32) for s in (1.0, 3.0, 10.0)]
    stats = SampleStatistics(
        ("a", "b", "c"),
        np.array([r.sum() for r in raw], dtype=np.float64),
        np.stack([np.quantile(r.astype(np.float64), levels) for r in raw]),
    )
    fitted = fit_openness(config, stats)
    block = np.stack(raw, axis=0)[None]  # (1 gene, 3 samples, 4000 "bins")
    out = fitted.apply(block, stats)
    medians = np.median(out[0], axis=1)
    assert np.ptp(medians) < 0.05 * np.abs(medians).max() + 1e-3


def test_transform_statistics_ignore_held_out_samples() -> None:
    train = SampleStatistics(("a", "b"), np.array([10.0, 30.0]), np.array([[0.0, 1.0], [0.0, 3.0]]))
    config = OpennessConfig(quantile=True, n_quantiles=2)
    first = fit_openness(config, train)
    again = fit_openness(config, train.subset(["a", "b"]))
    assert first.depth_target == again.depth_target == 20.0
    assert first.reference is not None and again.reference is not None
    np.testing.assert_array_equal(first.reference, again.reference)


# ------------------------------------------------------------------------------------------- splits

SAMPLES = [f"s{i:02d}" for i in range(12)]
GROUPS = ["A"] * 3 + ["B"] * 3 + ["C"] * 3 + ["D"] * 3
CHROMS = ["chr1"] * 5 + ["chr2"] * 4 + ["chr3"] * 3
GENE_IDS = [f"g{i}" for i in range(len(CHROMS))]


def test_sample_split_holds_out_whole_groups_and_is_seeded() -> None:
    config = SplitConfig(kind="sample", test_fraction=0.25, dev_fraction=0.2, seed=3)
    split = make_split(config, SAMPLES, GROUPS, CHROMS)
    assert split.grouped
    for role in ("train", "dev", "test"):
        members = split.samples_with_role(role)
        assert members
        groups = {GROUPS[SAMPLES.index(s)] for s in members}
        for g in groups:  # a group never straddles two roles
            same = [s for s, gg in zip(SAMPLES, GROUPS, strict=True) if gg == g]
            assert all(split.sample_roles[s] == role for s in same)
    again = make_split(config, SAMPLES, GROUPS, CHROMS)
    assert again.sample_roles == split.sample_roles
    roles = split.roles(GENE_IDS, CHROMS, SAMPLES)
    train_cols = {SAMPLES[j] for j in np.flatnonzero((roles == TRAIN).any(axis=0))}
    assert train_cols == set(split.train_samples)
    assert not train_cols & set(split.samples_with_role("test"))


def test_unknown_samples_are_never_training() -> None:
    split = make_split(SplitConfig(test_fraction=0.25, dev_fraction=0.0), SAMPLES, GROUPS, CHROMS)
    roles = split.roles(GENE_IDS, CHROMS, [*SAMPLES, "new"])
    assert (roles[:, -1] == TEST).all()


def test_chromosome_split_keeps_test_genes_out_of_training() -> None:
    config = SplitConfig(kind="chromosome", test_chroms=("chr2",), dev_chroms=("chr3",))
    split = make_split(config, SAMPLES, GROUPS, CHROMS)
    roles = split.roles(GENE_IDS, CHROMS, SAMPLES)
    chroms = np.asarray(CHROMS)
    assert (roles[chroms == "chr2"] == TEST).all()
    assert (roles[chroms == "chr3"] == DEV).all()
    assert (roles[chroms == "chr1"] == TRAIN).all()


def test_sample_and_chromosome_split_is_strictest() -> None:
    config = SplitConfig(
        kind="sample+chromosome",
        test_fraction=0.25,
        dev_fraction=0.0,
        test_chroms=("chr3",),
        seed=1,
    )
    split = make_split(config, SAMPLES, GROUPS, CHROMS)
    roles = split.roles(GENE_IDS, CHROMS, SAMPLES)
    test_samples = np.isin(SAMPLES, split.samples_with_role("test"))
    test_genes = np.asarray(CHROMS) == "chr3"
    assert (roles[np.ix_(test_genes, test_samples)] == TEST).all()
    assert (roles[np.ix_(~test_genes, ~test_samples)] == TRAIN).all()
    assert (roles[np.ix_(test_genes, ~test_samples)] == UNUSED).all()
    assert (roles[np.ix_(~test_genes, test_samples)] == UNUSED).all()


def test_random_split_warns_and_is_reproducible(caplog: pytest.LogCaptureFixture) -> None:
    config = SplitConfig(kind="random", test_fraction=0.3, dev_fraction=0.1, seed=5)
    split = make_split(config, SAMPLES, GROUPS, CHROMS)
    assert "leak" in caplog.text or "optimistic" in caplog.text
    genes = [f"g{i}" for i in range(400)]
    roles = split.roles(genes, ["chr1"] * 400, SAMPLES)
    assert abs((roles == TEST).mean() - 0.3) < 0.03
    assert abs((roles == DEV).mean() - 0.1) < 0.03
    restored = Split.from_dict(split.to_dict())
    np.testing.assert_array_equal(restored.roles(genes, ["chr1"] * 400, SAMPLES), roles)


def test_explicit_lists_and_bad_lists() -> None:
    config = SplitConfig(test_samples=("s00", "s01"), dev_samples=("s02",))
    split = make_split(config, SAMPLES, [""] * 12, CHROMS)
    assert split.samples_with_role("test") == ["s00", "s01"]
    assert split.samples_with_role("dev") == ["s02"]
    with pytest.raises(InputError, match="not among the samples"):
        make_split(SplitConfig(test_samples=("nope",)), SAMPLES, [""] * 12, CHROMS)
    with pytest.raises(InputError, match="no modelled gene"):
        make_split(SplitConfig(kind="chromosome", test_chroms=("chr9",)), SAMPLES, GROUPS, CHROMS)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=30),
    n_groups=st.integers(min_value=0, max_value=6),
    k_frac=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_folds_partition_the_samples(n: int, n_groups: int, k_frac: float, seed: int) -> None:
    samples = [f"s{i}" for i in range(n)]
    groups = [f"g{i % n_groups}" if n_groups else "" for i in range(n)]
    k = 2 + round(k_frac * (n - 2))
    folds = make_folds(samples, groups, k, seed=seed)
    assert len(folds) == k
    assert all(folds)
    assert sorted(s for f in folds for s in f) == sorted(samples)
    assert folds == make_folds(samples, groups, k, seed=seed)
    if n_groups and n_groups >= k and k < n:
        # groups_kept_whole is False by definition when every group is a single sample
        assert groups_kept_whole(samples, groups, folds) or len(set(groups)) == n


def test_leave_one_out_folds() -> None:
    folds = make_folds(SAMPLES, GROUPS, len(SAMPLES))
    assert folds == [[s] for s in SAMPLES]
    assert not groups_kept_whole(SAMPLES, GROUPS, folds)
    with pytest.raises(InputError, match="between 2"):
        make_folds(SAMPLES, GROUPS, 13)


def test_auto_groups_recover_planted_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(3, 200))
    truth = np.repeat(np.arange(3), 5)
    y = (centres[truth] + rng.normal(scale=0.5, size=(15, 200))).T
    labels = auto_groups(y, [f"s{i}" for i in range(15)], seed=0)
    table = pd.crosstab(pd.Series(labels), pd.Series(truth))
    assert (table.gt(0).sum(axis=1) == 1).all() and len(set(labels)) == 3


# ----------------------------------------------------------------------------------- no leakage


def _store(path: Path, values: np.ndarray, samples: list[str]) -> Path:
    n_genes = values.shape[0]
    genes = pd.DataFrame(
        {
            "name": [f"ENSG{i:011d}" for i in range(n_genes)],
            "gene_name": [f"G{i}" for i in range(n_genes)],
            "gene_type": "protein_coding",
            "chrom": ["chr1"] * n_genes,
            "start": 100_000 + 50_000 * np.arange(n_genes),
            "strand": "+",
        }
    )
    create_store(path, genes, BinSpec(flank=5_000, bin_size=1000), chunk_genes=8)
    idx = add_samples(path, samples, [""] * len(samples))
    for j, i in enumerate(idx):
        write_sample(path, i, values[:, j, :])
        mark_complete(path, i)
    return path


def _expression(path: Path, y: np.ndarray, samples: list[str]) -> Path:
    frame = pd.DataFrame(np.exp2(y) - 1, columns=samples)
    frame.insert(0, "gene_id", [f"ENSG{i:011d}.1" for i in range(y.shape[0])])
    frame.to_csv(path, sep="\t", index=False)
    return path


@pytest.mark.parametrize("model", ["lasso", "activity", "lasso-gene"])
def test_fitted_statistics_do_not_depend_on_held_out_samples(tmp_path: Path, model: str) -> None:
    """Changing the held-out samples' openness and expression leaves every fitted array
    unchanged."""
    from chromexpr.models.base import _arrays_of
    from chromexpr.models.train import TrainOptions, fit_split, load_context

    rng = np.random.default_rng(0)
    samples = [f"s{i}" for i in range(10)]
    x = rng.gamma(0.6, size=(20, 10, 10)).astype(np.float32)
    y = np.log1p(x[:, :, 5]) * 2 + rng.normal(scale=0.2, size=(20, 10)) + 3
    held = ["s8", "s9"]
    config = SplitConfig(test_samples=tuple(held))
    options = TrainOptions(
        model=model,
        split=config,
        openness=OpennessConfig(quantile=True),
        standardize=True,
        params={"n_alphas": 5},
    )
    arrays = []
    for variant in range(2):
        xv, yv = x.copy(), y.copy()
        if variant:
            xv[:, 8:] = rng.gamma(2.0, scale=5.0, size=xv[:, 8:].shape)
            yv[:, 8:] += rng.normal(scale=4.0, size=yv[:, 8:].shape) + 10
        ds = _store(tmp_path / f"d{variant}.zarr", xv, samples)
        ex = _expression(tmp_path / f"e{variant}.tsv", yv, samples)
        ctx = load_context(ds, ex, options)
        split = make_split(
            replace_dev(config), ctx.samples, ctx.groups, ctx.genes["chrom"].tolist()
        )
        result = fit_split(ctx, split, model)
        arrays.append(_arrays_of(result.fitted))
        # the held-out predictions do change: the test would be vacuous otherwise
        arrays[-1]["__pred"] = result.predictions["predicted"].to_numpy()
    assert set(arrays[0]) == set(arrays[1])
    for key in arrays[0]:
        if key == "__pred":
            assert not np.allclose(arrays[0][key], arrays[1][key])
        else:
            np.testing.assert_array_equal(arrays[0][key], arrays[1][key], err_msg=key)


def replace_dev(config: SplitConfig) -> SplitConfig:
    """The split config with an explicit zero dev fraction (as the train API resolves it)."""
    from dataclasses import replace

    return replace(config, dev_fraction=0.0)
