"""``chromexpr train``, ``evaluate`` and ``predict`` end to end, and their one-line errors on bad
input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.cli import evaluate as _evaluate  # noqa: F401  (each import registers a command)
from chromexpr.cli import predict as _predict  # noqa: F401
from chromexpr.cli import train as _train  # noqa: F401
from planted import Planted, make_planted


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("cli"), n_genes=24, n_samples=12, n_groups=3)


def test_train_evaluate_predict(tmp_path: Path, planted: Planted, cli) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "model"
    cli(
        "train",
        planted.dataset,
        "-e",
        planted.expression,
        "--model",
        "lasso-gene",
        "-o",
        model,
        "--test-samples",
        "S00,S01,S02",
        "-q",
    )
    config = json.loads((model / "config.json").read_text())
    assert config["model"] == "lasso-gene"
    assert config["formulation"] == "deviation"
    assert config["split"]["sample_roles"]["S00"] == "test"
    assert config["dataset"]["geometry"]["n_bins"] == 20
    assert config["dataset"]["genes"]["checksum"].startswith("sha256:")
    assert config["provenance"]["inputs"]  # the expression file's checksum
    history = pd.read_csv(model / "history.tsv", sep="\t")
    assert list(history.columns[:4]) == ["epoch", "train_mse", "dev_mse", "seconds"]
    pred = pd.read_csv(model / "predictions.tsv", sep="\t")
    assert set(pred["split"]) == {"test"}
    assert set(pred["sample"]) == {"S00", "S01", "S02"}

    evaluation = tmp_path / "eval"
    cli("evaluate", model, planted.dataset, "-e", planted.expression, "-o", evaluation, "-q")
    for name in ("metrics", "per_gene", "per_sample", "predictions", "history"):
        assert (evaluation / f"{name}.tsv").is_file(), name
    assert json.loads((evaluation / "model.json").read_text())["model"] == "lasso-gene"
    metrics = pd.read_csv(evaluation / "metrics.tsv", sep="\t", keep_default_na=False)
    assert {"lasso-gene", "mean (baseline)"} <= set(metrics["model"])
    assert {"train", "test"} <= set(metrics["split"])
    row = metrics[
        (metrics["model"] == "lasso-gene")
        & (metrics["split"] == "test")
        & (metrics["group"] == "all")
        & (metrics["metric"] == "gene_pearson_deviation_median")
    ]
    assert float(row["value"].iloc[0]) > 0.3
    assert set(metrics["group"]) >= {"all", "grp0"}  # metrics per sample group too

    out = tmp_path / "pred.tsv"
    cli("predict", model, planted.dataset, "-o", out, "-q")
    wide = pd.read_csv(out, sep="\t")
    assert list(wide.columns) == ["gene_id", "gene_name", *planted.samples]
    assert (wide[planted.samples].to_numpy() >= 0).all()
    logs = tmp_path / "log.tsv"
    cli(
        "predict",
        model,
        planted.dataset,
        "-o",
        logs,
        "--scale",
        "transformed",
        "--samples",
        "S00",
        "-q",
    )
    log_scale = pd.read_csv(logs, sep="\t")
    np.testing.assert_allclose(np.exp2(log_scale["S00"]) - 1, wide["S00"], rtol=1e-4, atol=1e-3)
    result = cli("predict", model, planted.dataset, "-o", out, expect=2)
    assert "exists" in result.stderr


def test_folds_write_out_of_fold_predictions_for_every_sample(
    tmp_path: Path,
    planted: Planted,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    model = tmp_path / "loo"
    cli(
        "train",
        planted.dataset,
        "-e",
        planted.expression,
        "--model",
        "activity",
        "-o",
        model,
        "--folds",
        str(len(planted.samples)),
        "-q",
    )
    pred = pd.read_csv(model / "predictions.tsv", sep="\t")
    assert set(pred["split"]) == {"oof"}
    assert sorted(pred["sample"].unique()) == planted.samples
    assert len(list((model / "folds").iterdir())) == len(planted.samples)
    # leave-one-out: each fold's training mean excludes its sample (EVALUATION.md, item 2)
    assert pred.groupby("gene_id")["train_mean"].nunique().min() > 1
    evaluation = tmp_path / "eval"
    cli("evaluate", model, planted.dataset, "-e", planted.expression, "-o", evaluation, "-q")
    metrics = pd.read_csv(evaluation / "metrics.tsv", sep="\t", keep_default_na=False)
    assert set(metrics.loc[metrics["model"] == "activity", "split"]) == {"oof"}


def test_chromosome_split_trains_raw_pooled_models(tmp_path: Path, planted: Planted, cli) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "chrom"
    cli(
        "train",
        planted.dataset,
        "-e",
        planted.expression,
        "--model",
        "lasso",
        "-o",
        model,
        "--split",
        "chromosome",
        "--test-chroms",
        "chr2",
        "-q",
    )
    config = json.loads((model / "config.json").read_text())
    assert config["formulation"] == "raw"
    pred = pd.read_csv(model / "predictions.tsv", sep="\t")
    chroms = dict(zip(config["genes"]["ids"], config["genes"]["chroms"], strict=True))
    assert {chroms[g] for g in pred["gene_id"]} == {"chr2"}


def _expression_variant(planted: Planted, path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    edit(pd.read_csv(planted.expression, sep="\t")).to_csv(path, sep="\t", index=False)
    return path


def _nan_at(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(S03=np.where(np.arange(len(frame)) == 2, np.nan, frame["S03"]))


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (_nan_at, ["bad.tsv:4:", "S03", "missing expression"]),
        (lambda f: f.assign(S04=-1.0), ["bad.tsv:2:", "negative expression", "log-transformed"]),
        (
            lambda f: f.rename(columns={s: f"X{s}" for s in f.columns[2:]}),
            ["no sample of the expression file is in the dataset"],
        ),
        (
            lambda f: f.assign(gene_id=[f"OTHER{i}" for i in range(len(f))], gene_name="none"),
            ["no gene of the expression file"],
        ),
    ],
)
def test_bad_expression_is_one_line(
    tmp_path: Path,
    planted: Planted,
    cli,
    helpers,
    edit,
    fragments: list[str],  # type: ignore[no-untyped-def]
) -> None:
    expr = _expression_variant(planted, tmp_path / "bad.tsv", edit)
    model = tmp_path / "m"
    result = cli("train", planted.dataset, "-e", expr, "--model", "mean", "-o", model, expect=None)
    helpers.error_line(result, *fragments)
    helpers.assert_nothing_written(model)


def test_predict_refuses_a_mismatched_dataset(
    tmp_path: Path, planted: Planted, cli, helpers
) -> None:  # type: ignore[no-untyped-def]
    from chromexpr.binning.binner import BinSpec
    from chromexpr.dataset.store import (
        add_samples,
        create_store,
        mark_complete,
        open_dataset,
        write_sample,
    )

    model = tmp_path / "model"
    cli(
        "train", planted.dataset, "-e", planted.expression, "--model", "activity", "-o", model, "-q"
    )
    ds = open_dataset(planted.dataset)
    genes = ds.genes.rename(columns={"gene_id": "name", "tss": "start"})

    def build(path: Path, frame: pd.DataFrame, spec: BinSpec) -> Path:
        create_store(path, frame, spec)
        (i,) = add_samples(path, ["new"], [""])
        write_sample(path, i, np.ones((len(frame), spec.n_bins), dtype=np.float32))
        mark_complete(path, i)
        return path

    wider = build(tmp_path / "wide.zarr", genes, BinSpec(flank=20_000, bin_size=1000))
    result = cli("predict", model, wider, "-o", tmp_path / "p.tsv", expect=None)
    helpers.error_line(result, "bin geometry differs", "flank 10000 vs 20000")
    fewer = build(tmp_path / "few.zarr", genes.iloc[2:], BinSpec(flank=10_000, bin_size=1000))
    result = cli("predict", model, fewer, "-o", tmp_path / "p.tsv", expect=None)
    helpers.error_line(result, "gene set differs", "2 of the model's 24 genes")
    moved = genes.assign(start=genes["start"] + 5)
    other = build(tmp_path / "moved.zarr", moved, BinSpec(flank=10_000, bin_size=1000))
    result = cli("predict", model, other, "-o", tmp_path / "p.tsv", expect=None)
    helpers.error_line(result, "gene list differs")
    helpers.assert_nothing_written(tmp_path / "p.tsv")
    ok = build(tmp_path / "same.zarr", genes, BinSpec(flank=10_000, bin_size=1000))
    cli("predict", model, ok, "-o", tmp_path / "p.tsv", "-q")
    assert list(pd.read_csv(tmp_path / "p.tsv", sep="\t").columns) == [
        "gene_id",
        "gene_name",
        "new",
    ]


def test_model_dir_is_not_overwritten(tmp_path: Path, planted: Planted, cli, helpers) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m"
    model.mkdir()
    result = cli(
        "train",
        planted.dataset,
        "-e",
        planted.expression,
        "--model",
        "mean",
        "-o",
        model,
        expect=None,
    )
    helpers.error_line(result, "exists", "--force")
    cli(
        "train",
        planted.dataset,
        "-e",
        planted.expression,
        "--model",
        "mean",
        "-o",
        model,
        "--force",
        "-q",
    )
    assert (model / "config.json").is_file()


def test_transform_and_group_options_are_recorded(tmp_path: Path, planted: Planted, cli) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m"
    cli(
        "train",
        planted.dataset,
        "-e",
        planted.expression,
        "--model",
        "lasso",
        "-o",
        model,
        "--groups",
        "auto",
        "--quantile-normalize",
        "--standardize",
        "--expr-transform",
        "log1p",
        "--seed",
        "7",
        "-q",
    )
    config = json.loads((model / "config.json").read_text())
    assert config["openness"]["quantile"] is True
    assert config["expression"] == {
        **config["expression"],
        "transform": "log1p",
        "standardize": True,
    }
    assert config["groups"]["mode"] == "auto"
    assert set(config["groups"]["samples"]) == set(planted.samples)
    assert config["options"]["seed"] == 7
    with np.load(model / "model.npz", allow_pickle=False) as arrays:
        assert arrays["openness_reference"].shape == (1001,)
        assert arrays["expr_scale"].shape == (24,)
    evaluation = tmp_path / "e"
    cli(
        "evaluate",
        model,
        planted.dataset,
        "-e",
        planted.expression,
        "-o",
        evaluation,
        "--splits",
        "test",
        "-q",
    )
    pred = pd.read_csv(evaluation / "predictions.tsv", sep="\t", keep_default_na=False)
    assert set(pred["split"]) == {"test"}
    assert set(pred["group"]) <= set(config["groups"]["samples"].values())
