"""Tests of chromexpr.evaluate.metrics and .outliers, and of the evaluation tables' files.

Oracles: scipy.stats (pearsonr, spearmanr), scikit-learn (r2_score, mean_squared_error) and tables
computed by hand. The leave-one-out test plants a within-gene signal and checks that the deviation
correlation recovers it where the raw correlation is biased negative.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_squared_error, r2_score

from chromexpr.errors import InputError, OutputExistsError
from chromexpr.evaluate.metrics import (
    ALL_GROUPS,
    BASELINE_MODEL,
    GENE_TABLE_COLUMNS,
    METRICS,
    METRICS_TABLE_COLUMNS,
    PREDICTION_COLUMNS,
    SAMPLE_TABLE_COLUMNS,
    check_predictions,
    error_vs_expression,
    error_vs_removal,
    metrics_table,
    noise_ceiling,
    pearson,
    per_gene_table,
    per_sample_table,
    prepare_predictions,
    spearman,
)
from chromexpr.evaluate.outliers import robust_outliers
from chromexpr.io.evaluation_files import read_evaluation, write_evaluation

# ------------------------------------------------------------------------------------- helpers


def long_frame(
    observed: np.ndarray,
    predicted: np.ndarray,
    train_mean: np.ndarray,
    *,
    model: str = "lasso",
    split: str = "test",
    groups: list[str] | None = None,
) -> pd.DataFrame:
    """Long predictions frame from genes x samples arrays (genes g0.., samples s0..)."""
    n_g, n_s = observed.shape
    genes = [f"g{i}" for i in range(n_g)]
    samples = [f"s{j}" for j in range(n_s)]
    group = groups if groups is not None else [""] * n_s
    return pd.DataFrame(
        {
            "gene_id": np.repeat(genes, n_s),
            "gene_name": np.repeat([f"G{i}" for i in range(n_g)], n_s),
            "sample": np.tile(samples, n_g),
            "group": np.tile(group, n_g),
            "split": split,
            "observed": observed.reshape(-1),
            "predicted": predicted.reshape(-1),
            "train_mean": np.broadcast_to(train_mean, observed.shape).reshape(-1),
            "model": model,
        }
    )


def metric(table: pd.DataFrame, name: str, *, model: str = "lasso", group: str = "all") -> float:
    rows = table[(table["model"] == model) & (table["group"] == group) & (table["metric"] == name)]
    assert len(rows) == 1, (model, group, name)
    return float(rows["value"].iloc[0])


def loo(y: np.ndarray) -> np.ndarray:
    """Leave-one-sample-out training means: column s is the mean of y over the other samples."""
    n = y.shape[1]
    return (y.sum(axis=1, keepdims=True) - y) / (n - 1)


# ------------------------------------------------------------------------ pearson and spearman

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=3, max_size=40))
def test_pearson_spearman_match_scipy(pairs: list[tuple[float, float]]) -> None:
    a = np.array([p[0] for p in pairs]).round(1)  # rounding makes ties common
    b = np.array([p[1] for p in pairs]).round(1)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert math.isnan(pearson(a, b))
        assert math.isnan(spearman(a, b))
        return
    assert pearson(a, b) == pytest.approx(scipy.stats.pearsonr(a, b)[0], abs=1e-9)
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b)[0], abs=1e-9)


def test_correlation_undefined_cases() -> None:
    assert math.isnan(pearson([1.0, 2.0], [1.0, 3.0]))  # fewer than 3 points
    assert math.isnan(pearson([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]))  # zero variance
    assert math.isnan(pearson([0.1, 0.1, 0.1], [1.0, 2.0, 4.0]))  # constant despite rounding
    assert math.isnan(spearman([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="lengths differ"):
        pearson([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------------- per gene


def test_per_gene_table_matches_scipy_with_ties_and_missing_samples() -> None:
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(12, 7)).round(1)
    prd = (obs + rng.normal(size=obs.shape)).round(1)
    prd[3] = 2.5  # constant prediction: r undefined
    tm = rng.normal(size=(12, 1))
    frame = long_frame(obs, prd, tm)
    # gene g0 keeps 2 samples (below the minimum of 3), gene g1 keeps 3
    drop = ((frame["gene_id"] == "g0") & ~frame["sample"].isin(["s0", "s1"])) | (
        (frame["gene_id"] == "g1") & frame["sample"].isin(["s0", "s5", "s6", "s2"])
    )
    frame = frame[~drop].sample(frac=1.0, random_state=3)  # row order must not matter
    table = per_gene_table(frame)
    assert list(table.columns) == GENE_TABLE_COLUMNS
    assert table["gene_id"].tolist() == sorted(f"g{i}" for i in range(12))
    for row in table.itertuples():
        sub = frame[frame["gene_id"] == row.gene_id]
        o, p, t = (sub[c].to_numpy() for c in ("observed", "predicted", "train_mean"))
        assert row.n_samples == len(sub)
        assert row.gene_name == "G" + row.gene_id[1:]
        assert row.mse == pytest.approx(mean_squared_error(o, p))
        assert row.baseline_mse == pytest.approx(mean_squared_error(o, t))
        assert row.mean_observed == pytest.approx(o.mean())
        assert row.sd_observed == pytest.approx(o.std(ddof=1))
        if len(sub) < 3 or np.ptp(p) == 0:
            assert math.isnan(row.pearson) and math.isnan(row.spearman)
        else:
            assert row.pearson == pytest.approx(scipy.stats.pearsonr(p, o)[0], abs=1e-9)
            assert row.spearman == pytest.approx(scipy.stats.spearmanr(p, o)[0], abs=1e-9)
            # one fixed training set per gene: the deviation correlation is the raw one
            assert row.pearson_deviation == pytest.approx(row.pearson, abs=1e-12)
        assert math.isnan(row.baseline_pearson)  # constant train_mean across samples


def test_leave_one_out_bias_is_removed_by_the_deviation_correlation() -> None:
    """EVALUATION.md trap 2: LOO training means move against the held-out value.

    The model's predicted deviation carries a real within-gene signal, but it is small next to the
    swing of the LOO training mean, so the raw out-of-fold prediction correlates negatively with
    the observations. The deviation correlation must equal the correlation of the planted deviation
    with the observations, gene by gene.
    """
    rng = np.random.default_rng(7)
    n_genes, n_samples = 300, 12
    signal = rng.normal(size=(n_genes, n_samples))
    y = rng.normal(5.0, 2.0, size=(n_genes, 1)) + signal + 0.7 * rng.normal(size=signal.shape)
    deviation = 0.04 * (signal + 0.5 * rng.normal(size=signal.shape))  # shrunken but informative
    tm = loo(y)
    frame = long_frame(y, tm + deviation, tm, split="oof")
    table = per_gene_table(frame)

    truth = np.array([scipy.stats.pearsonr(deviation[g], y[g])[0] for g in range(n_genes)])
    got = table.set_index("gene_id").loc[[f"g{g}" for g in range(n_genes)]]
    np.testing.assert_allclose(got["pearson_deviation"].to_numpy(), truth, atol=1e-9)
    assert np.median(truth) > 0.5
    assert got["pearson"].median() < 0.0  # the trap: raw r biased negative
    assert got["pearson_deviation"].median() - got["pearson"].median() > 0.5
    # the mean baseline under LOO: train_mean = (total - y) / (n - 1) is a falling line in y
    np.testing.assert_allclose(got["baseline_pearson"].to_numpy(), -1.0, atol=1e-9)

    summary = metrics_table(frame)
    assert metric(summary, "gene_pearson_median") < 0.0
    assert metric(summary, "gene_pearson_deviation_median") == pytest.approx(np.median(truth))
    # the baseline's deviation is constant (0): correlation undefined, reported NaN
    assert math.isnan(metric(summary, "gene_pearson_deviation_median", model=BASELINE_MODEL))
    assert metric(summary, "gene_pearson_median", model=BASELINE_MODEL) == pytest.approx(-1.0)
    assert metric(summary, "fraction_genes_r_gt_0", model=BASELINE_MODEL) == 0.0


# ------------------------------------------------------------------------------- per sample


def test_per_sample_table_matches_sklearn_and_flags_the_planted_outlier() -> None:
    rng = np.random.default_rng(11)
    n_genes, n_samples = 200, 15
    obs = rng.normal(size=(n_genes, 1)) * 3 + rng.normal(size=(n_genes, n_samples))
    prd = obs + 0.5 * rng.normal(size=obs.shape)
    prd[:, 9] = obs[:, 9] + 3.0 * rng.normal(size=n_genes)  # sample s9: poorly predicted
    tm = obs.mean(axis=1, keepdims=True)
    groups = ["A"] * 8 + ["B"] * 7
    table = per_sample_table(long_frame(obs, prd, tm, groups=groups))
    assert list(table.columns) == SAMPLE_TABLE_COLUMNS
    assert table["sample"].tolist() == sorted(f"s{j}" for j in range(n_samples))
    for row in table.itertuples():
        j = int(row.sample[1:])
        o, p = obs[:, j], prd[:, j]
        assert row.group == groups[j]
        assert row.n_genes == n_genes
        assert row.mse == pytest.approx(mean_squared_error(o, p))
        assert row.r2 == pytest.approx(r2_score(o, p))
        assert row.pearson == pytest.approx(scipy.stats.pearsonr(p, o)[0])
        assert row.spearman == pytest.approx(scipy.stats.spearmanr(p, o)[0])
        assert row.baseline_mse == pytest.approx(mean_squared_error(o, tm[:, 0]))
        assert row.baseline_pearson == pytest.approx(scipy.stats.pearsonr(tm[:, 0], o)[0])
    assert table.loc[table["is_outlier"], "sample"].tolist() == ["s9"]
    worst = table.sort_values("mse_rank").iloc[0]
    assert worst["sample"] == "s9" and worst["mse_rank"] == 1
    z, _ = robust_outliers(table["mse"].to_numpy())
    np.testing.assert_allclose(table["robust_z"].to_numpy(), z)
    assert sorted(table["mse_rank"].tolist()) == list(range(1, n_samples + 1))


# ---------------------------------------------------------------------------------- outliers


def test_robust_outliers_formula_and_high_side_only() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0, -100.0])
    z, flag = robust_outliers(x)
    median = 2.5
    mad = np.median(np.abs(x - median))
    np.testing.assert_allclose(z, 0.6745 * (x - median) / mad)
    assert flag.tolist() == [False, False, False, False, True, False]  # low error is no outlier
    assert robust_outliers(x, threshold=1e9)[1].sum() == 0


def test_robust_outliers_mad_zero_nan_and_constant() -> None:
    x = np.array([1.0, 1.0, 1.0, 1.0, 10.0])  # MAD = 0: mean absolute deviation instead
    z, flag = robust_outliers(x)
    assert z[-1] == pytest.approx(9.0 / (1.253314 * 9.0 / 5.0))
    assert flag.tolist() == [False, False, False, False, True]
    z, flag = robust_outliers(np.array([2.0, 2.0, 2.0]))
    assert z.tolist() == [0.0, 0.0, 0.0] and not flag.any()
    z, flag = robust_outliers(np.array([1.0, np.nan, 1.2, 0.8, 9.0]))
    assert math.isnan(z[1]) and not flag[1] and flag[4]
    z, flag = robust_outliers(np.array([]))
    assert z.shape == (0,) and flag.shape == (0,)
    with pytest.raises(ValueError, match="positive"):
        robust_outliers(np.ones(3), threshold=0.0)


# ----------------------------------------------------------------------------- metrics table


def test_metrics_table_hand_computed() -> None:
    # 2 genes x 3 samples; sample s2 in group B, the others in A
    obs = np.array([[1.0, 2.0, 3.0], [4.0, 6.0, 5.0]])
    prd = np.array([[1.5, 2.0, 2.5], [4.0, 5.0, 6.0]])
    tm = np.array([[2.0], [5.0]])
    frame = long_frame(obs, prd, tm, groups=["A", "A", "B"])
    table = metrics_table(frame)
    assert list(table.columns) == METRICS_TABLE_COLUMNS
    got = table[(table["model"] == "lasso") & (table["group"] == ALL_GROUPS)]
    assert got["metric"].tolist() == list(METRICS)
    o, p = obs.reshape(-1), prd.reshape(-1)
    assert metric(table, "n_pairs") == 6
    assert metric(table, "n_genes") == 2 and metric(table, "n_samples") == 3
    assert metric(table, "mse") == pytest.approx(mean_squared_error(o, p))  # (0.25*2 + 1 + 1)/6
    assert metric(table, "mse") == pytest.approx(2.5 / 6)
    assert metric(table, "r2") == pytest.approx(r2_score(o, p))
    assert metric(table, "pearson") == pytest.approx(scipy.stats.pearsonr(p, o)[0])
    assert metric(table, "spearman") == pytest.approx(scipy.stats.spearmanr(p, o)[0])
    # gene g0: r = 1; gene g1: r(pred=[4,5,6], obs=[4,6,5]) = 0.5
    assert metric(table, "gene_pearson_median") == pytest.approx(0.75)
    assert metric(table, "gene_pearson_q25") == pytest.approx(0.625)
    assert metric(table, "gene_pearson_q75") == pytest.approx(0.875)
    assert metric(table, "gene_pearson_deviation_median") == pytest.approx(0.75)
    assert metric(table, "gene_spearman_median") == pytest.approx(0.75)
    assert metric(table, "fraction_genes_r_gt_0") == 1.0
    assert metric(table, "n_genes_scored") == 2
    sample_r = [scipy.stats.pearsonr(prd[:, j], obs[:, j])[0] for j in range(3)]
    assert math.isnan(metric(table, "sample_pearson_median"))  # only 2 genes per sample
    assert np.isfinite(sample_r).all()
    assert metric(table, "sample_mse_median") == pytest.approx(np.median([0.125, 0.5, 0.625]))
    # group A has 2 samples: within-gene metrics undefined, pooled ones defined
    assert metric(table, "n_samples", group="A") == 2
    assert math.isnan(metric(table, "gene_pearson_median", group="A"))
    assert metric(table, "n_genes_scored", group="A") == 0
    assert metric(table, "mse", group="B") == pytest.approx((0.25 + 1.0) / 2)
    # the mean baseline beside it: a constant per gene gives no within-gene correlation
    base = table[table["model"] == BASELINE_MODEL]
    assert set(base["baseline_of"]) == {"lasso"}
    assert set(base["group"]) == {"all", "A", "B"}
    t = np.repeat(tm[:, 0], 3)
    assert metric(table, "mse", model=BASELINE_MODEL) == pytest.approx(mean_squared_error(o, t))
    assert math.isnan(metric(table, "gene_pearson_median", model=BASELINE_MODEL))
    assert math.isnan(metric(table, "gene_pearson_deviation_median", model=BASELINE_MODEL))
    assert math.isnan(metric(table, "fraction_genes_r_gt_0", model=BASELINE_MODEL))


def test_metrics_table_baselines_per_model() -> None:
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(20, 6))
    tm = obs.mean(axis=1, keepdims=True)
    a = long_frame(obs, obs + rng.normal(size=obs.shape), tm, model="a")
    b = long_frame(obs, obs + rng.normal(size=obs.shape), tm, model="b")
    mean = long_frame(obs, np.broadcast_to(tm, obs.shape), tm, model="mean")
    table = metrics_table(pd.concat([a, b, mean]))
    assert set(table["model"]) == {"a", "b", "mean", BASELINE_MODEL}
    assert set(table.loc[table["model"] == BASELINE_MODEL, "baseline_of"]) == {"a,b"}
    # the mean model's own rows equal the baseline rows
    mine = table[table["model"] == "mean"].set_index("metric")["value"]
    base = table[table["model"] == BASELINE_MODEL].set_index("metric")["value"]
    pd.testing.assert_series_equal(mine, base)
    assert math.isnan(mine["gene_pearson_deviation_median"])
    # different training means: one named baseline per model, keys stay unique
    c = long_frame(obs, obs, tm + 1.0, model="c")
    table = metrics_table(pd.concat([a, c]))
    names = set(table["model"])
    assert names == {"a", "c", "mean (baseline of a)", "mean (baseline of c)"}
    assert not table.duplicated(["model", "split", "group", "metric"]).any()
    assert not metrics_table(a, baseline=False)["model"].eq(BASELINE_MODEL).any()


def test_metrics_splits_are_scored_separately() -> None:
    rng = np.random.default_rng(5)
    obs = rng.normal(size=(10, 5))
    train = long_frame(obs, obs, obs.mean(axis=1, keepdims=True), split="train")
    oof = long_frame(obs, obs + 1.0, obs.mean(axis=1, keepdims=True), split="oof")
    table = metrics_table(pd.concat([train, oof]), baseline=False)
    mse = table[table["metric"] == "mse"].set_index("split")["value"]
    assert mse["train"] == 0.0 and mse["oof"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ bad inputs


def test_bad_predictions_are_input_errors() -> None:
    obs = np.arange(6.0).reshape(2, 3)
    good = long_frame(obs, obs, obs.mean(axis=1, keepdims=True))
    with pytest.raises(InputError, match="missing column"):
        per_gene_table(good.drop(columns="train_mean"))
    bad = good.copy()
    bad.loc[2, "observed"] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        per_gene_table(bad)
    with pytest.raises(InputError, match="duplicated"):
        per_gene_table(pd.concat([good, good.iloc[:1]]))
    with pytest.raises(InputError, match="unknown split"):
        per_gene_table(good.assign(split="validation"))
    bad = good.copy()
    bad.loc[0, "group"] = "other"
    with pytest.raises(InputError, match="more than one group"):
        per_sample_table(bad)
    with pytest.raises(InputError, match="reserved"):
        metrics_table(good.assign(group="all"))
    bad = good.copy()
    bad.loc[1, "gene_id"] = None
    with pytest.raises(InputError, match="missing values"):
        per_gene_table(bad)


def test_check_predictions_cleans_types() -> None:
    frame = pd.DataFrame(
        {
            "gene_id": [1, 1, 1],
            "gene_name": ["A", None, "A"],
            "sample": [10, 11, 12],
            "group": [np.nan, np.nan, np.nan],
            "split": "dev",
            "observed": ["1", "2", "3"],
            "predicted": [1, 2, 3],
            "train_mean": 2,
            "model": "m",
            "extra": 0,
        }
    )
    clean = check_predictions(frame)
    assert list(clean.columns) == PREDICTION_COLUMNS
    assert clean["gene_id"].tolist() == ["1", "1", "1"]
    assert clean["group"].tolist() == ["", "", ""]
    assert clean["gene_name"].tolist() == ["A", "", "A"]
    assert clean["observed"].dtype == np.float64
    prepared = prepare_predictions(frame)
    assert prepare_predictions(prepared) is prepared
    pd.testing.assert_frame_equal(per_gene_table(prepared), per_gene_table(frame))


# --------------------------------------------------------------------------- noise ceiling


def test_noise_ceiling() -> None:
    rng = np.random.default_rng(2)
    genes = [f"g{i}" for i in range(30)]
    samples = [f"s{j}" for j in range(8)]
    free = pd.DataFrame(rng.normal(size=(30, 8)) + 4, index=genes, columns=samples)
    perfect = noise_ceiling(free, free, samples)
    assert perfect["gene_pearson_median"] == pytest.approx(1.0)
    assert perfect["mse"] == 0.0 and perfect["fraction_genes_r_gt_0"] == 1.0
    assert "gene_pearson_deviation_median" not in perfect
    noisy = free + 0.8 * rng.normal(size=free.shape)
    held_out = samples[2:]
    ceiling = noise_ceiling(noisy.iloc[::-1], free.iloc[5:], held_out)  # order-free, common genes
    r = [scipy.stats.pearsonr(free.loc[g, held_out], noisy.loc[g, held_out])[0] for g in genes[5:]]
    assert ceiling["gene_pearson_median"] == pytest.approx(np.median(r))
    assert ceiling["n_genes"] == 25 and ceiling["n_samples"] == 6
    sub_o = noisy.loc[genes[5:], held_out].to_numpy().ravel()
    sub_f = free.loc[genes[5:], held_out].to_numpy().ravel()
    assert ceiling["mse"] == pytest.approx(mean_squared_error(sub_o, sub_f))
    assert ceiling["r2"] == pytest.approx(r2_score(sub_o, sub_f))
    with pytest.raises(InputError, match="not in the"):
        noise_ceiling(noisy, free, ["s0", "nope"])
    with pytest.raises(InputError, match="no gene_id in common"):
        noise_ceiling(noisy, free.rename(index=lambda g: "x" + g), samples)


# ---------------------------------------------------------------------------- error analyses


def test_error_vs_removal_is_monotone_and_drops_the_planted_outlier_first() -> None:
    rng = np.random.default_rng(4)
    n_genes, n_samples = 60, 10
    obs = rng.normal(size=(n_genes, 1)) * 2 + rng.normal(size=(n_genes, n_samples))
    scale = np.linspace(0.2, 1.0, n_samples)
    scale[6] = 6.0  # planted outlier sample
    prd = obs + scale * rng.normal(size=obs.shape)
    # gene-level error varies too, and one gene has fewer samples
    prd[:5] += 2.0 * rng.normal(size=(5, n_samples))
    frame = long_frame(obs, prd, obs.mean(axis=1, keepdims=True))
    frame = frame[~((frame["gene_id"] == "g7") & frame["sample"].isin(["s0", "s1"]))]

    by_sample = error_vs_removal(frame, "sample", steps=10)
    assert by_sample["removed_n"].tolist() == [0, 1, 2, 3, 4, 5]  # K = 5: one by one
    assert by_sample["removed_fraction"].tolist() == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    mse = by_sample["mse"].to_numpy()
    assert (np.diff(mse) <= 1e-12).all()
    assert mse[0] == pytest.approx(mean_squared_error(frame["observed"], frame["predicted"]))
    without = frame[frame["sample"] != "s6"]
    assert mse[1] == pytest.approx(mean_squared_error(without["observed"], without["predicted"]))
    assert mse[1] < 0.5 * mse[0]
    g = per_gene_table(without)
    assert by_sample["gene_pearson_median"].iloc[1] == pytest.approx(g["pearson"].median())

    by_gene = error_vs_removal(frame, "gene", steps=4, max_fraction=0.2)
    assert by_gene["removed_n"].tolist() == [0, 3, 6, 9, 12]
    assert (np.diff(by_gene["mse"].to_numpy()) <= 1e-12).all()
    genes = per_gene_table(frame).sort_values("mse", ascending=False)
    keep = genes["gene_id"].iloc[3:]
    rest = frame[frame["gene_id"].isin(keep)]
    assert by_gene["mse"].iloc[1] == pytest.approx(
        mean_squared_error(rest["observed"], rest["predicted"])
    )
    assert by_gene["gene_pearson_median"].iloc[1] == pytest.approx(
        genes["pearson"].iloc[3:].median()
    )
    with pytest.raises(ValueError, match="by must be"):
        error_vs_removal(frame, "group")  # type: ignore[arg-type]


def test_error_vs_expression_hand_computed() -> None:
    obs = np.array([[0.0, 1.0, 2.0, 4.0]])
    prd = np.array([[1.0, 1.0, 1.0, 2.0]])
    table = error_vs_expression(long_frame(obs, prd, np.zeros((1, 1))), n_bins=2)
    assert table["bin_lo"].tolist() == [0.0, 2.0] and table["bin_hi"].tolist() == [2.0, 4.0]
    assert table["bin_center"].tolist() == [1.0, 3.0]
    assert table["n"].tolist() == [2, 2]
    assert table["mse"].tolist() == pytest.approx([0.5, (1 + 4) / 2])
    assert table["mean_abs_error"].tolist() == pytest.approx([0.5, 1.5])
    assert table["bias"].tolist() == pytest.approx([0.5, -1.5])
    assert table["mean_predicted"].tolist() == pytest.approx([1.0, 1.5])
    wide = error_vs_expression(long_frame(obs, prd, np.zeros((1, 1))), n_bins=8)
    assert wide["n"].sum() == 4 and (wide["n"] == 0).any()
    assert wide.loc[wide["n"] == 0, "mse"].isna().all()
    quant = error_vs_expression(
        long_frame(obs, prd, np.zeros((1, 1))), n_bins=2, binning="quantile"
    )
    assert quant["n"].tolist() == [2, 2]


# --------------------------------------------------------------------------------- files


def test_evaluation_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    obs = rng.normal(size=(6, 5))
    frame = long_frame(obs, obs + rng.normal(size=obs.shape), obs.mean(axis=1, keepdims=True))
    frame["sample"] = [str(i % 5 + 1) for i in range(len(frame))]  # numeric-looking names
    tables = {
        "metrics": metrics_table(frame),
        "per_gene": per_gene_table(frame),
        "per_sample": per_sample_table(frame),
    }
    out = tmp_path / "eval"
    paths = write_evaluation(out, tables)
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.tsv",
        "per_gene.tsv",
        "per_sample.tsv",
    ]
    assert paths["metrics"] == out / "metrics.tsv"
    back = read_evaluation(out)
    assert set(back) == set(tables)
    for name, table in tables.items():
        pd.testing.assert_frame_equal(back[name], table, check_dtype=False, rtol=1e-9)
    assert back["per_sample"]["sample"].tolist() == tables["per_sample"]["sample"].tolist()
    assert back["per_sample"]["group"].eq("").all()
    assert back["per_sample"]["is_outlier"].dtype == bool
    assert back["metrics"]["value"].isna().any()
    with pytest.raises(OutputExistsError):
        write_evaluation(out, {"metrics": tables["metrics"]})
    write_evaluation(out, {"metrics": tables["metrics"].iloc[:3]}, force=True)
    assert len(read_evaluation(out)["metrics"]) == 3
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="table name"):
        write_evaluation(out, {"../x": tables["metrics"]})
    with pytest.raises(InputError, match="not a directory"):
        read_evaluation(tmp_path / "missing")
