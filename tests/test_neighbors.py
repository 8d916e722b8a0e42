"""The ``neighbors`` baseline against scikit-learn's nearest-neighbour regressor, and its edge
cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chromexpr.dataset.store import open_dataset
from chromexpr.models.base import load_model
from chromexpr.models.design import window_bins
from chromexpr.models.predict import predict_matrix
from chromexpr.models.similarity import centred_gram, correlation_from_gram, power_weights
from chromexpr.models.splits import SplitConfig
from chromexpr.models.train import TrainOptions, load_context, train
from planted import Planted, make_planted

TEST_SAMPLES = ("S00", "S05", "S10")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("planted"), n_genes=48, n_samples=18, seed=3)


def _profiles(fitted, planted: Planted, samples: list[str]) -> np.ndarray:
    """Promoter profiles built by hand: the model's openness transform on the two TSS bins."""
    ds = open_dataset(planted.dataset)
    ctx = load_context(planted.dataset, planted.expression, TrainOptions())
    bins = window_bins(ds.spec.bin_offsets(), ds.spec.bin_size, 1_000)
    raw = np.stack([ds.read_sample(s) for s in samples], axis=1)
    x = fitted.openness.apply(raw, ctx.stats.subset(samples))[:, :, bins]
    rows = fitted.genes["dataset_index"].to_numpy()
    return x[rows].transpose(1, 0, 2).reshape(len(samples), -1).astype(np.float64)


def test_neighbors_equals_scikit_learn_nearest_neighbours(tmp_path: Path, planted: Planted) -> None:
    from sklearn.neighbors import KNeighborsRegressor

    exponent = 3.0
    options = TrainOptions(
        model="neighbors",
        params={"exponent": exponent},
        split=SplitConfig(test_samples=TEST_SAMPLES, dev_fraction=0.0),
    )
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    fitted = load_model(tmp_path / "m")
    train_samples = [s for s in planted.samples if s not in TEST_SAMPLES]
    p_train = _profiles(fitted, planted, train_samples)
    p_test = _profiles(fitted, planted, list(TEST_SAMPLES))
    centre = p_train.mean(axis=0)
    ctx = load_context(planted.dataset, planted.expression, TrainOptions())
    y_train = ctx.y[:, [ctx.samples.index(s) for s in train_samples]]
    peer = KNeighborsRegressor(
        n_neighbors=len(train_samples),
        metric="cosine",
        algorithm="brute",
        weights=lambda d: np.maximum(1.0 - d, 0.0) ** exponent,
    ).fit(p_train - centre, y_train.T)
    expected = peer.predict(p_test - centre).T  # (genes, test samples)
    pred = result.predictions.pivot(index="gene_id", columns="sample", values="predicted")
    got = pred.loc[fitted.genes["gene_id"], list(TEST_SAMPLES)].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the saved model predicts the same on the dataset, and the prediction is not the mean
    again = predict_matrix(fitted, open_dataset(planted.dataset), list(TEST_SAMPLES))
    np.testing.assert_allclose(again, got, rtol=1e-6, atol=1e-6)
    assert np.abs(got - fitted.train_mean[:, None]).max() > 0.05


def test_exponent_is_chosen_by_inner_cross_validation(tmp_path: Path, planted: Planted) -> None:
    options = TrainOptions(
        model="neighbors", split=SplitConfig(test_samples=TEST_SAMPLES, dev_fraction=0.0)
    )
    train(planted.dataset, planted.expression, tmp_path / "m", options)
    model = load_model(tmp_path / "m").model
    scores = model.cv_scores
    assert scores.shape == (len(model.params.exponents),) and np.isfinite(scores).all()
    assert model.exponent == pytest.approx(model.params.exponents[int(np.argmax(scores))])


def test_a_sample_like_no_training_sample_gets_the_training_mean() -> None:
    from chromexpr.models.neighbors import NeighborsModel

    model = NeighborsModel()
    model.mean_profile = np.zeros(4, dtype=np.float32)
    model.centred_profiles = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], dtype=np.float32)
    model.level = np.array([5.0, 7.0])
    model.deviation = np.array([[1.0, -1.0], [2.0, -2.0]], dtype=np.float32)
    model.exponent = 2.0
    weights = power_weights(model.similarity(np.array([[-1.0, -1.0, 0, 0], [1.0, 0, 0, 0]])), 2.0)
    assert weights.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    model._weights = weights
    out = model.predict_columns(np.zeros((2, 2, 0)), np.array([0, 1]), np.zeros(2), np.arange(2))
    assert out.tolist() == [[5.0, 6.0], [7.0, 9.0]]
    assert np.isfinite(out).all()


def test_centred_correlations_match_numpy() -> None:
    rng = np.random.default_rng(0)
    p = rng.normal(size=(7, 30))
    ref = np.array([0, 2, 3, 5])
    r = correlation_from_gram(centred_gram(p @ p.T, ref))
    c = p - p[ref].mean(axis=0)
    expected = (c @ c.T) / np.outer(np.linalg.norm(c, axis=1), np.linalg.norm(c, axis=1))
    np.testing.assert_allclose(r, expected, atol=1e-12)
