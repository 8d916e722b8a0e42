"""Models on a small dataset with a planted signal: recovery, scikit-learn parity, CV algebra,
resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.errors import InputError
from chromexpr.evaluate.metrics import per_gene_table
from chromexpr.models.base import load_model
from chromexpr.models.splits import SplitConfig
from chromexpr.models.train import TrainOptions, fit_split, load_context, make_split, train
from planted import Planted, make_planted, materialise


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("planted"))


def _within_gene(pred: pd.DataFrame) -> tuple[float, float]:
    """Median within-gene r of predicted deviations, and the median per-gene MSE ratio to the
    mean."""
    table = per_gene_table(pred)
    ratio = (table["mse"] / table["baseline_mse"]).median()
    return float(table["pearson_deviation"].median()), float(ratio)


@pytest.mark.parametrize(
    ("model", "params", "min_r"),
    [
        ("lasso-gene", {}, 0.6),
        ("lasso", {}, 0.3),
        ("activity", {}, 0.2),
        ("fc", {"hidden": (32,), "epochs": 15, "patience": 15, "lr": 3e-3}, 0.2),
    ],
)
def test_planted_signal_beats_the_mean_within_genes(
    tmp_path: Path, planted: Planted, model: str, params: dict[str, object], min_r: float
) -> None:
    options = TrainOptions(model=model, folds=4, params=params, seed=1)
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    pred = result.predictions
    assert set(pred["split"]) == {"oof"}
    assert sorted(pred["sample"].unique()) == planted.samples  # every sample predicted out of fold
    r, ratio = _within_gene(pred)
    assert r > min_r, (model, r)
    assert ratio < 1.0, (model, ratio)  # lower per-gene error than the gene's training mean


def test_lasso_gene_finds_the_planted_bins(planted: Planted) -> None:
    options = TrainOptions(model="lasso-gene", params={"prior": "none"})
    ctx = load_context(planted.dataset, planted.expression, options)
    split = make_split(
        replace(options.split, dev_fraction=0.0, test_fraction=0.0),
        ctx.samples,
        ctx.groups,
        ctx.genes["chrom"].tolist(),
    )
    fitted = fit_split(ctx, split, "lasso-gene").fitted
    coef = fitted.model.coef  # type: ignore[attr-defined]
    assert fitted.bins is not None
    strongest = fitted.bins[np.argmax(np.abs(coef), axis=1)]
    hits = np.mean([s in links for s, links in zip(strongest, planted.links, strict=True)])
    assert hits > 0.8


@pytest.mark.parametrize("formulation", ["raw", "deviation"])
def test_pooled_lasso_matches_scikit_learn(planted: Planted, formulation: str) -> None:
    from sklearn.linear_model import Lasso

    alpha = 0.01
    options = TrainOptions(
        model="lasso",
        formulation=formulation,  # type: ignore[arg-type]
        params={"alpha": alpha, "tol": 1e-12, "max_iter": 100_000},
    )
    ctx = load_context(planted.dataset, planted.expression, options)
    split = make_split(
        SplitConfig(test_fraction=0.0, dev_fraction=0.0),
        ctx.samples,
        ctx.groups,
        ctx.genes["chrom"].tolist(),
    )
    fitted = fit_split(ctx, split, "lasso").fitted
    x, y = materialise(planted, options)
    if formulation == "deviation":
        x = x - x.mean(axis=1, keepdims=True)
        y = y - y.mean(axis=1, keepdims=True)
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(x.reshape(-1, x.shape[2]), y.ravel())
    np.testing.assert_allclose(fitted.model.coef, ref.coef_, atol=2e-5)  # type: ignore[attr-defined]


def test_pooled_lasso_cv_errors_equal_explicit_refits(planted: Planted) -> None:
    """The one-pass fold algebra (deviation formulation) equals refitting each fold explicitly."""
    from chromexpr.models.lasso import PooledLasso, PooledLassoParams
    from chromexpr.models.lasso_solver import GramStats, lasso_path_gram

    options = TrainOptions(model="lasso", params={"tol": 1e-10, "n_alphas": 4, "eps": 0.05})
    ctx = load_context(planted.dataset, planted.expression, options)
    split = make_split(
        SplitConfig(test_fraction=0.0, dev_fraction=0.0),
        ctx.samples,
        ctx.groups,
        ctx.genes["chrom"].tolist(),
    )
    fitted = fit_split(ctx, split, "lasso").fitted
    model = fitted.model
    assert isinstance(model, PooledLasso)
    x, y = materialise(planted, options)
    from chromexpr.models.train import inner_folds

    folds = inner_folds(ctx.samples, [""] * len(ctx.samples), 5, seed=0)
    errors = np.zeros(model.alphas.size)
    for members in folds:
        held = np.isin(ctx.samples, members)
        xt, yt = x[:, ~held], y[:, ~held]
        xm, ym = xt.mean(axis=1, keepdims=True), yt.mean(axis=1, keepdims=True)
        stats = GramStats.empty(x.shape[2])
        stats.update((xt - xm).reshape(-1, x.shape[2]), (yt - ym).ravel())
        coefs, _ = lasso_path_gram(stats, model.alphas, tol=1e-10, max_iter=100_000)
        xh, yh = x[:, held] - xm, y[:, held] - ym
        for a in range(model.alphas.size):
            errors[a] += float((((xh @ coefs[a]) - yh) ** 2).sum())
    n_rows = x.shape[0] * x.shape[1]
    assert isinstance(model.params, PooledLassoParams)
    np.testing.assert_allclose(model.cv_mse, errors / n_rows, rtol=1e-4)


def test_save_load_predicts_the_same(tmp_path: Path, planted: Planted) -> None:
    from chromexpr.dataset.store import open_dataset
    from chromexpr.models.predict import predict_matrix

    options = TrainOptions(model="lasso-gene", split=SplitConfig(test_samples=("S00", "S01")))
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    fitted = load_model(tmp_path / "m")
    ds = open_dataset(planted.dataset)
    values = predict_matrix(fitted, ds, ["S00", "S01"])
    pred = result.predictions.pivot(index="gene_id", columns="sample", values="predicted")
    np.testing.assert_allclose(
        values, pred.loc[fitted.genes["gene_id"], ["S00", "S01"]].to_numpy(), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(Exception, match="exists"):
        train(planted.dataset, planted.expression, tmp_path / "m", options)


def test_fc_resume_equals_uninterrupted(tmp_path: Path, planted: Planted) -> None:
    import torch

    params = {"hidden": (16, 8), "epochs": 4, "patience": 10, "batch_size": 64, "dropout": 0.1}
    options = TrainOptions(model="fc", params=params, split=SplitConfig(test_samples=("S00",)))
    train(planted.dataset, planted.expression, tmp_path / "full", options)

    class Stop(KeyboardInterrupt):
        pass

    def interrupt(row: dict[str, object]) -> None:
        if row["epoch"] == 1:  # 0-based: after the second epoch
            raise Stop

    with pytest.raises(Stop):
        train(planted.dataset, planted.expression, tmp_path / "cut", options, on_epoch=interrupt)
    assert not (tmp_path / "cut").exists()  # nothing half-written
    assert (tmp_path / "cut.checkpoints").is_dir()
    train(planted.dataset, planted.expression, tmp_path / "cut", options, resume=True)
    assert not (tmp_path / "cut.checkpoints").exists()
    a = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ha = pd.read_csv(tmp_path / "full" / "history.tsv", sep="\t")
    hb = pd.read_csv(tmp_path / "cut" / "history.tsv", sep="\t")
    np.testing.assert_array_equal(ha["train_mse"], hb["train_mse"])
    with pytest.raises(InputError, match="nothing to resume"):
        train(planted.dataset, planted.expression, tmp_path / "other", options, resume=True)


def test_row_loader_is_bounded_seeded_and_complete(planted: Planted) -> None:
    from chromexpr.models.design import BlockSource
    from chromexpr.models.loader import RowLoader
    from chromexpr.models.transforms import fit_openness

    options = TrainOptions()
    ctx = load_context(planted.dataset, planted.expression, options)
    source = BlockSource(
        ctx.dataset,
        ctx.genes["dataset_index"].to_numpy(),
        ctx.expression.sample_position,
        ctx.stats,
        fit_openness(options.openness, ctx.stats),
        None,
    )
    roles = np.zeros(ctx.y.shape, dtype=np.int8)
    roles[:, :2] = 2  # two samples held out
    loader = RowLoader(
        source,
        ctx.y.astype(np.float32),
        roles,
        0,
        np.arange(len(ctx.samples)),
        batch_size=50,
        buffer_rows=120,
        seed=3,
    )
    batches = list(loader(0))
    assert max(b[0].shape[0] for b in batches) <= 50
    ys = np.sort(np.concatenate([b[1] for b in batches]))
    np.testing.assert_allclose(ys, np.sort(ctx.y[:, 2:].astype(np.float32).ravel()))
    again = list(loader(0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    other = list(loader(1))
    assert not np.array_equal(batches[0][1], other[0][1])


def test_per_gene_models_refuse_chromosome_splits(planted: Planted) -> None:
    options = TrainOptions(model="lasso-gene", split=SplitConfig(kind="chromosome"))
    ctx = load_context(planted.dataset, planted.expression, options)
    split = make_split(options.split, ctx.samples, ctx.groups, ctx.genes["chrom"].tolist())
    with pytest.raises(InputError, match="--split sample"):
        fit_split(ctx, split, "lasso-gene")
    raw = fit_split(ctx, split, "lasso")  # pooled models switch to the raw formulation
    assert raw.fitted.formulation == "raw"
    assert set(raw.predictions["split"]) <= {"dev", "test"}


def test_auto_picks_a_model_by_cross_validation(tmp_path: Path, planted: Planted) -> None:
    options = TrainOptions(
        model="auto",
        auto_candidates=("activity", "lasso-gene"),
        split=SplitConfig(test_samples=("S00", "S01", "S02")),
    )
    result = train(planted.dataset, planted.expression, tmp_path / "m", options)
    assert result.model == "lasso-gene"
    scores = result.record["auto"]["scores"]
    assert scores["lasso-gene"] > scores["activity"]
