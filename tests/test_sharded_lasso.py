"""The pooled lasso's statistics pass over shards: shard sums equal one pass, and the fit is the
same in process, on a Dask cluster of processes and over torch.distributed (gloo) ranks."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chromexpr.cli import train as _train  # noqa: F401  (the import registers the command)
from chromexpr.dask_cluster import local_cluster
from chromexpr.dataset.store import open_dataset
from chromexpr.errors import InputError
from chromexpr.models.base import load_model
from chromexpr.models.design import BlockSource
from chromexpr.models.lasso import PooledLasso
from chromexpr.models.sharded_stats import (
    PassInput,
    PassStats,
    ShardTask,
    accumulate_shard,
    arrays_nbytes,
    pass_statistics,
    plan_shards,
    resolve_backend,
)
from chromexpr.models.splits import SplitConfig
from chromexpr.models.train import TrainOptions, fit_split, load_context, make_split
from chromexpr.models.transforms import OpennessConfig, fit_openness
from planted import Planted, make_planted

N_GENES, N_SAMPLES, CHUNK = 40, 16, 16  # 3 gene chunks (16, 16, 8 genes)
TEST_SAMPLES = ("S00", "S01")
FIT_PARAMS = {"tol": 1e-10, "max_iter": 100_000, "n_alphas": 8, "eps": 1e-2}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("sharded"), n_genes=N_GENES, n_samples=N_SAMPLES)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes, shared by this module's tests."""
    with local_cluster(2) as address:
        yield address


def _pass_input(planted: Planted, *, deviation: bool) -> PassInput:
    """Every sample trains (inner folds 0..3 by sample; openness fitted on them all)."""
    ds = open_dataset(planted.dataset)
    options = TrainOptions(model="lasso")
    ctx = load_context(ds, planted.expression, options)
    source = BlockSource(
        ds,
        ctx.genes["dataset_index"].to_numpy(np.int64),
        ctx.expression.sample_position,
        ctx.stats,
        fit_openness(OpennessConfig(), ctx.stats),
    )
    return PassInput(
        source=source,
        y=ctx.y,
        train=np.ones(ctx.y.shape, dtype=bool),
        y_mean=ctx.y.mean(axis=1),
        folds=np.arange(ctx.y.shape[1], dtype=np.int64) % 4,
        k=4,
        deviation=deviation,
        batch_rows=100,
    )


def _materialised(inp: PassInput) -> tuple[np.ndarray, np.ndarray]:
    """All rows (genes, samples, bins) and targets in float64, centred per gene for deviation."""
    x = np.concatenate([b for _, _, b in inp.source.iter_blocks()]).astype(np.float64)
    y = inp.y.copy()
    if inp.deviation:
        x -= x.mean(axis=1, keepdims=True)
        y -= inp.y_mean[:, None]
    return x, y


def _assert_stats_close(a: PassStats, b: PassStats, rtol: float) -> None:
    left, right = a.to_arrays(), b.to_arrays()
    assert left.keys() == right.keys()
    for key in left:
        if key in ("genes", "x_mean"):
            continue
        scale = max(float(np.abs(right[key]).max()), 1e-300)
        assert float(np.abs(left[key] - right[key]).max()) <= rtol * scale, key
    if a.x_mean is not None:
        np.testing.assert_array_equal(a.dense_x_mean(N_GENES), b.dense_x_mean(N_GENES))


def test_plan_shards_partitions_genes_in_whole_chunks(planted: Planted) -> None:
    inp = _pass_input(planted, deviation=False)
    per_chunk = plan_shards(inp.source)
    assert [s.tolist() for s in per_chunk] == [
        list(range(0, 16)),
        list(range(16, 32)),
        list(range(32, 40)),
    ]
    two = plan_shards(inp.source, 2)
    assert [int(s.size) for s in two] in ([16, 24], [32, 8])
    assert np.concatenate(two).tolist() == list(range(N_GENES))
    assert len(plan_shards(inp.source, 99)) == 3  # at most one shard per chunk


@pytest.mark.parametrize("deviation", [True, False])
def test_shard_sums_equal_the_one_pass_statistics(planted: Planted, deviation: bool) -> None:
    inp = _pass_input(planted, deviation=deviation)
    one = pass_statistics(inp)
    summed = inp.empty()
    for genes in reversed(plan_shards(inp.source)):  # another order: only rounding may differ
        shard = inp.empty()
        accumulate_shard(inp, genes, shard)
        summed += PassStats.from_arrays(shard.to_arrays())  # the round trip a Dask task makes
    _assert_stats_close(summed, one, rtol=1e-10)
    # and both are the statistics of the materialised rows (float32 products: 1e-5)
    x, y = _materialised(inp)
    for f in range(inp.k):
        rows = x[:, inp.folds == f].reshape(-1, x.shape[2])
        targets = y[:, inp.folds == f].ravel()
        stats = one.folds[f]
        assert stats.n == rows.shape[0]
        np.testing.assert_allclose(stats.xtx, rows.T @ rows, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.xty, rows.T @ targets, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.yty, targets @ targets, rtol=1e-10)
        if deviation:
            d_x = x[:, inp.folds == f].sum(axis=1)
            np.testing.assert_allclose(one.corr[f].xtx, d_x.T @ d_x, rtol=1e-5, atol=1e-6)
    if deviation:
        dense = one.dense_x_mean(N_GENES)
        assert dense is not None
        raw = np.concatenate([b for _, _, b in inp.source.iter_blocks()]).astype(np.float64)
        np.testing.assert_allclose(dense, raw.mean(axis=1), rtol=1e-5, atol=1e-6)
    else:
        assert one.x_mean is None and one.corr == []


def test_a_task_returns_its_shards_arrays_only(planted: Planted) -> None:
    """A Dask task's payload carries its genes' rows, and what it returns is ``2 K`` Grams."""
    inp = _pass_input(planted, deviation=True)
    genes = plan_shards(inp.source)[1]
    task = ShardTask.of(inp, genes)
    assert task.y.shape == (16, N_SAMPLES)
    assert task.dataset_path == str(planted.dataset)
    from chromexpr.models.sharded_stats import _shard_task

    arrays = _shard_task(task)  # what a worker runs, here in process
    got = PassStats.from_arrays(arrays)
    want = inp.empty()
    accumulate_shard(inp, genes, want)
    _assert_stats_close(got, want, rtol=0.0)
    assert got.genes.tolist() == genes.tolist()
    p = inp.source.n_features
    grams = 2 * inp.k * p * p * 8
    assert grams < arrays_nbytes(arrays) < grams + 16 * p * (4 + 2 * inp.k * 8) + 4096


def _fit(planted: Planted, params: dict[str, Any], formulation: str = "auto") -> dict[str, Any]:
    """Fit ``lasso`` on all samples but TEST_SAMPLES; the fitted values to compare."""
    options = TrainOptions(
        model="lasso",
        formulation=formulation,  # type: ignore[arg-type]
        params={**FIT_PARAMS, **params},
    )
    ctx = load_context(planted.dataset, planted.expression, options)
    config = SplitConfig(test_samples=TEST_SAMPLES, dev_fraction=0.0)
    split = make_split(config, ctx.samples, ctx.groups, ctx.genes["chrom"].tolist())
    result = fit_split(ctx, split, "lasso")
    model = result.fitted.model
    return {
        "coef": model.coef,  # type: ignore[attr-defined]
        "offset": model.offset,  # type: ignore[attr-defined]
        "alpha": model.alpha,  # type: ignore[attr-defined]
        "cv_mse": model.cv_mse,  # type: ignore[attr-defined]
        "predicted": result.predictions["predicted"].to_numpy(),
    }


def _assert_same_fit(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["alpha"] == pytest.approx(want["alpha"], rel=1e-12)
    assert np.flatnonzero(got["coef"]).tolist() == np.flatnonzero(want["coef"]).tolist()
    np.testing.assert_allclose(got["coef"], want["coef"], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(got["cv_mse"], want["cv_mse"], rtol=1e-9)
    np.testing.assert_allclose(got["offset"], want["offset"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got["predicted"], want["predicted"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("formulation", ["deviation", "raw"])
def test_dask_cluster_fit_equals_in_process(
    planted: Planted, cluster: str, formulation: str
) -> None:
    local = _fit(planted, {}, formulation)
    assert np.count_nonzero(local["coef"]) > 0 and np.isfinite(local["cv_mse"]).all()
    for shards in (2, 3):  # 2: a task sums two chunks; 3: one chunk per task
        sharded = _fit(planted, {"scheduler": cluster, "shards": shards}, formulation)
        _assert_same_fit(sharded, local)


def test_dask_fit_matches_scikit_learn(planted: Planted, cluster: str, tmp_path: Path) -> None:
    """The sharded sums give scikit-learn's solution (as test_models checks for one pass); the
    cluster is reached through a scheduler JSON file this time."""
    from sklearn.linear_model import Lasso

    from planted import materialise

    scheduler_file = tmp_path / "scheduler.json"  # what ``dask scheduler --scheduler-file`` writes
    scheduler_file.write_text(json.dumps({"type": "Scheduler", "address": cluster}))
    alpha = 0.01
    params = {"alpha": alpha, "tol": 1e-12, "max_iter": 100_000, "scheduler": str(scheduler_file)}
    options = TrainOptions(model="lasso", formulation="raw", params=params)
    ctx = load_context(planted.dataset, planted.expression, options)
    split = make_split(
        SplitConfig(test_fraction=0.0, dev_fraction=0.0),
        ctx.samples,
        ctx.groups,
        ctx.genes["chrom"].tolist(),
    )
    fitted = fit_split(ctx, split, "lasso").fitted
    x, y = materialise(planted, options)
    ref = Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(x.reshape(-1, x.shape[2]), y.ravel())
    np.testing.assert_allclose(fitted.model.coef, ref.coef_, atol=2e-5)  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(
    rank: int, world_size: int, port: int, dataset: str, expression: str, out: str
) -> None:
    """One torchrun-like rank: the environment torchrun sets, then the ordinary fit."""
    import os

    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    planted = Planted(Path(dataset), Path(expression), [], np.zeros((0, 0)))
    assert resolve_backend() == "ranks"
    fit = _fit(planted, {})
    stats: dict[str, Any] = pass_statistics(_pass_input(planted, deviation=True)).to_arrays()
    np.savez(Path(out) / f"rank{rank}.npz", **fit)
    np.savez(Path(out) / f"stats{rank}.npz", **stats)


def test_gloo_ranks_fit_equals_in_process(planted: Planted, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    local = _fit(planted, {})
    one_pass = pass_statistics(_pass_input(planted, deviation=True))
    args = (2, _free_port(), str(planted.dataset), str(planted.expression), str(tmp_path))
    mp.spawn(_rank_main, args=args, nprocs=2, join=True)
    for rank in range(2):
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            got = {k: saved[k] for k in saved.files}
        got["alpha"] = float(got["alpha"])
        _assert_same_fit(got, local)
        with np.load(tmp_path / f"stats{rank}.npz") as saved:
            summed = PassStats.from_arrays({k: saved[k] for k in saved.files})
        _assert_stats_close(summed, one_pass, rtol=1e-10)  # each chunk counted once


def test_cli_workers_trains_the_same_model(planted: Planted, tmp_path: Path, cli: Any) -> None:
    common = ["train", planted.dataset, "-e", planted.expression, "--model", "lasso", "-q"]
    common += ["--test-samples", ",".join(TEST_SAMPLES), "--dev-fraction", "0"]
    cli(*common, "-o", tmp_path / "local")
    cli(*common, "-o", tmp_path / "dask", "--workers", "1")
    local, dask = (load_model(tmp_path / name).model for name in ("local", "dask"))
    assert isinstance(local, PooledLasso) and isinstance(dask, PooledLasso)
    assert np.count_nonzero(local.coef) > 0
    np.testing.assert_allclose(dask.coef, local.coef, rtol=1e-7, atol=1e-9)
    assert dask.alpha == pytest.approx(local.alpha, rel=1e-12)
    pred = [pd.read_csv(tmp_path / n / "predictions.tsv", sep="\t") for n in ("local", "dask")]
    np.testing.assert_allclose(pred[1]["predicted"], pred[0]["predicted"], rtol=1e-9)


def test_cli_refuses_scale_out_for_other_models(planted: Planted, tmp_path: Path, cli: Any) -> None:
    common = ["train", planted.dataset, "-e", planted.expression, "-o", tmp_path / "m"]
    result = cli(*common, "--model", "activity", "--workers", "2", expect=2)
    assert "--model lasso only" in result.stderr
    result = cli(*common, "--model", "lasso", "--workers", "2", "--scheduler", "x", expect=2)
    assert "not both" in result.stderr
    assert not (tmp_path / "m").exists()


def test_missing_dask_is_a_one_line_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(InputError, match=r"pip install 'chromexpr\[dask\]'"), local_cluster(1):
        pass


def test_backend_is_local_without_options_or_ranks() -> None:
    assert resolve_backend() == "local"
    assert resolve_backend(workers=2) == "dask"
    assert resolve_backend(scheduler="tcp://127.0.0.1:1") == "dask"
