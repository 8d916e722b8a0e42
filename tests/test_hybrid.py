"""The default ``hybrid`` model: its similarity term against scikit-learn's kernel ridge, its mix
chosen by inner cross-validation, and its saved form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chromexpr.dataset.store import open_dataset
from chromexpr.evaluate.metrics import per_gene_table
from chromexpr.models.base import load_model
from chromexpr.models.design import window_bins
from chromexpr.models.predict import predict_matrix
from chromexpr.models.splits import SplitConfig
from chromexpr.models.train import TrainOptions, load_context, train
from planted import Planted, make_planted

TEST_SAMPLES = ("S01", "S06", "S11")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("planted"), n_genes=48, n_samples=18, seed=5)


def test_similarity_term_equals_scikit_learn_kernel_ridge(tmp_path: Path, planted: Planted) -> None:
    from sklearn.kernel_ridge import KernelRidge

    ridge = 0.05
    options = TrainOptions(
        model="hybrid",
        params={"mixes": (0.0,), "ridges": (ridge,)},
        split=SplitConfig(test_samples=TEST_SAMPLES, dev_fraction=0.0),
    )
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    fitted = load_model(tmp_path / "m")
    assert fitted.model.mix == 0.0 and fitted.model.ridge == ridge
    ds = open_dataset(planted.dataset)
    ctx = load_context(planted.dataset, planted.expression, TrainOptions())
    train_samples = [s for s in planted.samples if s not in TEST_SAMPLES]
    bins = window_bins(ds.spec.bin_offsets(), ds.spec.bin_size, 1_000)
    rows = fitted.genes["dataset_index"].to_numpy()

    def profiles(samples: list[str]) -> np.ndarray:
        raw = np.stack([ds.read_sample(s) for s in samples], axis=1)
        x = fitted.openness.apply(raw, ctx.stats.subset(samples))[rows][:, :, bins]
        return x.transpose(1, 0, 2).reshape(len(samples), -1).astype(np.float64)

    p_train, p_test = profiles(train_samples), profiles(list(TEST_SAMPLES))
    centre = p_train.mean(axis=0)
    a = p_train - centre
    b = p_test - centre
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    kernel = (a @ a.T) / np.outer(na, na)
    cross = (b @ a.T) / np.outer(nb, na)
    y = ctx.y[:, [ctx.samples.index(s) for s in train_samples]]
    level = y.mean(axis=1, keepdims=True)
    peer = KernelRidge(alpha=ridge, kernel="precomputed").fit(kernel, (y - level).T)
    expected = level + peer.predict(cross).T
    pred = result.predictions.pivot(index="gene_id", columns="sample", values="predicted")
    got = pred.loc[fitted.genes["gene_id"], list(TEST_SAMPLES)].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # saved and reloaded, it predicts the same on the dataset
    again = predict_matrix(fitted, ds, list(TEST_SAMPLES))
    np.testing.assert_allclose(again, got, rtol=1e-6, atol=1e-6)


def test_the_mix_follows_where_the_signal_is(tmp_path: Path, planted: Planted) -> None:
    """Planted data: expression follows each gene's own bins and samples are unrelated, so inner
    cross-validation must lean on the regulatory LASSO, and the result must follow genes."""
    options = TrainOptions(model="hybrid", folds=3, seed=2)
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    fitted = load_model(tmp_path / "m")
    assert fitted.model.mix >= 0.5, fitted.model.scores
    table = per_gene_table(result.predictions)
    assert float(table["pearson_deviation"].median()) > 0.5
    parts = fitted.model.component_scores
    assert parts["hybrid"] >= max(parts["similarity"], parts["lasso-gene"]) - 1e-12
    # the regulatory part's weights are what attribution reads: non-zero on the planted bins
    coef = fitted.model.regulatory.coef
    assert (np.abs(coef) > 0).any(axis=1).mean() > 0.5


def test_a_damaged_hybrid_model_is_named_on_load(tmp_path: Path, planted: Planted) -> None:
    from chromexpr.errors import InputError

    options = TrainOptions(
        model="hybrid", split=SplitConfig(test_samples=TEST_SAMPLES, dev_fraction=0.0)
    )
    train(planted.dataset, planted.expression, tmp_path / "m", options)
    path = tmp_path / "m" / "model.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["model__window_pos"] = arrays["model__window_pos"] + 10_000
    np.savez_compressed(path, **arrays)
    with pytest.raises(InputError, match="window_pos"):
        load_model(tmp_path / "m")


def test_auto_reads_hybrid_lasso_and_neighbours_scores_from_one_fit(
    tmp_path: Path, planted: Planted
) -> None:
    options = TrainOptions(
        model="auto",
        auto_candidates=("activity", "neighbors", "lasso-gene", "hybrid"),
        split=SplitConfig(test_samples=TEST_SAMPLES, dev_fraction=0.0),
    )
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    scores = result.record["auto"]["scores"]
    assert set(scores) == {"activity", "neighbors", "lasso-gene", "hybrid"}
    assert result.record["auto"]["chosen"] == max(scores, key=lambda k: scores[k])
    # the hybrid's own inner-CV grid contains lasso-gene alone (mix 1): it scores at least as high
    assert scores["hybrid"] >= scores["lasso-gene"] - 1e-12
    assert load_model(tmp_path / "m").name == result.model
