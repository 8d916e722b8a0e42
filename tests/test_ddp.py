"""Training one ``fc`` network on two processes (DistributedDataParallel, gloo on CPU) equals
training it on one: the ranks' parts of each batch, gradients averaged, dev sums all-reduced."""

from __future__ import annotations

import itertools
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from chromexpr.cli import train as _train  # noqa: F401  (registers the command)
from chromexpr.models import distributed
from chromexpr.models.design import BlockSource
from chromexpr.models.fc_net import TrainConfig, build_mlp, train_mlp
from chromexpr.models.loader import RowLoader
from chromexpr.models.splits import DEV, TRAIN
from chromexpr.models.train import TrainOptions, load_context
from chromexpr.models.transforms import fit_openness
from planted import Planted, make_planted

Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]

#: Float reduction order only: the ranks' partial sums are added in another order.
RTOL, ATOL = 1e-5, 1e-7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("ddp"), n_genes=32, n_samples=14)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def test_shard_bounds_cover_each_row_once() -> None:
    for n in (0, 1, 5, 64, 65):
        for world in (1, 2, 3):
            parts = [distributed.shard_bounds(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1


def test_outside_torchrun_everything_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.env_info() == distributed.DistInfo(0, 0, 1)
    assert distributed.is_main_process()
    assert distributed.sum_across([1.5, 2]) == [1.5, 2.0]
    assert distributed.broadcast_flags([True, False]) == [True, False]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert distributed.env_info() == distributed.DistInfo(1, 1, 2)
    assert not distributed.is_main_process()


def test_a_missing_rank_fails_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 of 2 whose partner never comes raises after CHROMEXPR_DIST_TIMEOUT, not never."""
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("CHROMEXPR_DIST_TIMEOUT", "2")
    start = time.perf_counter()
    with pytest.raises(RuntimeError), distributed.process_group(torch.device("cpu")):
        pass
    assert time.perf_counter() - start < 30
    assert not torch.distributed.is_initialized()


# --------------------------------------------------------------------------------------------
# The training loop on two spawned processes
# --------------------------------------------------------------------------------------------


def _loaders(planted: Planted, rank: int, world: int, batch: int) -> tuple[RowLoader, RowLoader]:
    """Training and dev loaders of ``rank`` on the planted data: 3 dev samples, group codes as an
    input, a shuffle buffer of 100 rows (several exchanges per epoch, rows carried over)."""
    ctx = load_context(planted.dataset, planted.expression, TrainOptions())
    source = BlockSource(
        ctx.dataset,
        ctx.genes["dataset_index"].to_numpy(),
        ctx.expression.sample_position,
        ctx.stats,
        fit_openness(TrainOptions().openness, ctx.stats),
        None,
    )
    roles = np.full(ctx.y.shape, TRAIN, dtype=np.int8)
    roles[:, :3] = DEV
    n_samples = len(ctx.samples)
    common: dict[str, Any] = {
        "source": source,
        "y": (ctx.y - ctx.y.mean()).astype(np.float32),
        "roles": roles,
        "samples": np.arange(n_samples),
        "groups": np.arange(n_samples, dtype=np.int64) % 3,
        "batch_size": batch,
        "buffer_rows": 100,
        "seed": 3,
        "rank": rank,
        "world_size": world,
    }
    return (
        RowLoader(role=TRAIN, shuffle=True, shard_by="batch", **common),
        RowLoader(role=DEV, shuffle=False, shard_by="unit", **common),
    )


def _check_parts(planted: Planted, train: RowLoader) -> None:
    """This rank's batches are its parts of the single-process batches, read from its own units."""
    single = replace(train, rank=0, world_size=1)
    whole = list(single(0))
    read = []
    plain_fill = train._fill_chunk

    def counting_fill(*args: Any) -> None:
        read.append(1)
        plain_fill(*args)

    train._fill_chunk = counting_fill  # type: ignore[method-assign]
    parts = list(train(0))
    del train._fill_chunk
    assert len(parts) == len(whole) and whole[-1][0].shape[0] == 1
    for (x, y, g), (xw, yw, gw) in zip(parts, whole, strict=True):
        lo, hi = distributed.shard_bounds(yw.size, train.rank, train.world_size)
        np.testing.assert_array_equal(x, xw[lo:hi])
        np.testing.assert_array_equal(y, yw[lo:hi])
        assert g is not None and gw is not None
        np.testing.assert_array_equal(g, gw[lo:hi])
    units = train.units(0)  # one stored chunk each: one read
    assert len(read) == len(units[train.rank :: train.world_size]) < len(units)


def _fit(
    rank: int, world: int, planted: Planted, batch: int, config: TrainConfig, out: Path
) -> None:
    """Train on ``world`` ranks (this one ``rank``) and save the weights and history; with
    ``out / "ckpt"`` existing, first train ``config.epochs - 2`` epochs, then resume."""
    torch.set_num_threads(1)
    train, dev = _loaders(planted, rank, world, batch)
    model = build_mlp(train.source.n_features, (12, 6), n_groups=3, group_dim=2, seed=1)

    def dev_batches() -> Iterator[Batch]:
        return dev(0)

    ckpt = out / "ckpt" if (out / "ckpt").is_dir() else None
    with distributed.process_group(torch.device("cpu")) as info:
        assert info.world_size == world
        if world > 1:
            _check_parts(planted, train)
        if ckpt is not None:
            short = replace(config, epochs=config.epochs - 2)
            train_mlp(model, train, dev_batches, short, checkpoint_dir=ckpt)
            model = build_mlp(train.source.n_features, (12, 6), n_groups=3, group_dim=2, seed=9)
        history = train_mlp(
            model, train, dev_batches, config, checkpoint_dir=ckpt, resume=ckpt is not None
        )
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"w{rank}.pt")
    pd.DataFrame(history).to_csv(out / f"h{rank}.tsv", sep="\t", index=False)


def _worker(rank: int, world: int, port: int, args: tuple[Any, ...]) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "CHROMEXPR_DIST_TIMEOUT": "60",
        }
    )
    _fit(rank, world, *args)


def _assert_same_training(single: Path, ddp: Path) -> None:
    a = torch.load(single / "w0.pt", weights_only=True)
    for rank in (0, 1):
        b = torch.load(ddp / f"w{rank}.pt", weights_only=True)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=RTOL, atol=ATOL, msg=key)
    ha = pd.read_csv(single / "h0.tsv", sep="\t")
    for rank in (0, 1):
        hb = pd.read_csv(ddp / f"h{rank}.tsv", sep="\t")
        assert list(hb["epoch"]) == list(ha["epoch"])  # the same early stop on every rank
        np.testing.assert_allclose(hb["train_mse"], ha["train_mse"], rtol=RTOL)
        np.testing.assert_allclose(hb["dev_mse"], ha["dev_mse"], rtol=RTOL)


def test_uneven_batches_and_resume_equal_one_process(tmp_path: Path, planted: Planted) -> None:
    """Two spawned ranks on the RowLoader: each reads only its read units and gets its part of
    every single-process batch (27 rows split 14/13; the last batch has one row, so rank 1's part
    is empty); L1 and L2 penalties, a group embedding, early stopping on the all-reduced dev error
    and a resume from rank 0's checkpoint: the weights equal single-process training's."""
    batch = 27  # 32 genes x 11 training samples = 352 = 13 x 27 + 1
    config = TrainConfig(
        epochs=6, lr=3e-3, l1=1e-4, l2=1e-3, patience=2, seed=0, device="cpu", amp=False
    )
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    (ddp / "ckpt").mkdir()
    _fit(0, 1, planted, batch, config, single)
    mp.spawn(_worker, args=(2, _free_port(), (planted, batch, config, ddp)), nprocs=2, join=True)
    _assert_same_training(single, ddp)
    history = pd.read_csv(single / "h0.tsv", sep="\t")
    assert len(history) >= 4 and all(np.isfinite(history["dev_mse"]))
    assert sorted(p.name for p in (ddp / "ckpt").iterdir()) == ["checkpoint.pt"]
    ckpt = torch.load(ddp / "ckpt" / "checkpoint.pt", weights_only=True)
    assert len(ckpt["rank_rng"]) == 2
    assert not math.isnan(ckpt["best_dev"])


# --------------------------------------------------------------------------------------------
# torchrun -m chromexpr train
# --------------------------------------------------------------------------------------------


def _train_args(planted: Planted) -> list[str]:
    return [
        str(planted.dataset),
        "-e",
        str(planted.expression),
        "--model",
        "fc",
        "--backbone",
        "none",
        "--hidden",
        "16,8",
        "--epochs",
        "4",
        "--patience",
        "10",
        "--batch-size",
        "45",
        "--dropout",
        "0",
        "--l2",
        "1e-4",
        "--device",
        "cpu",
        "--test-samples",
        "S00",
        "--dev-samples",
        "S01,S02",
    ]


def test_torchrun_train_equals_one_process(tmp_path: Path, planted: Planted, cli: Any) -> None:
    """``torchrun --nproc-per-node 2 -m chromexpr train`` writes the model that one process
    trains (weights, history, predictions), and only rank 0 writes or logs."""
    args = _train_args(planted)
    cli("train", *args, "-o", tmp_path / "single", "-q")
    logs = tmp_path / "logs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CHROMEXPR_DIST_TIMEOUT": "120"}
    env.pop("WORLD_SIZE", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "--log-dir",
            str(logs),
            "--redirects",
            "3",
            "-m",
            "chromexpr",
            "train",
            *args,
            "-o",
            str(tmp_path / "ddp"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    a = torch.load(tmp_path / "single" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "weights.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=RTOL, atol=ATOL, msg=key)
    ha = pd.read_csv(tmp_path / "single" / "history.tsv", sep="\t")
    hb = pd.read_csv(tmp_path / "ddp" / "history.tsv", sep="\t")
    assert len(hb) == 4
    np.testing.assert_allclose(hb["train_mse"], ha["train_mse"], rtol=RTOL)
    np.testing.assert_allclose(hb["dev_mse"], ha["dev_mse"], rtol=RTOL)
    pa = pd.read_csv(tmp_path / "single" / "predictions.tsv", sep="\t")
    pb = pd.read_csv(tmp_path / "ddp" / "predictions.tsv", sep="\t")
    assert len(pa) == len(pb) > 0
    np.testing.assert_allclose(pb["predicted"], pa["predicted"], rtol=RTOL)
    # only rank 0 wrote: one MODEL_DIR, no temporary siblings, no checkpoints left; rank 1 silent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "logs", "single"]
    stderr = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert sorted(stderr) == [0, 1], sorted(stderr)
    assert "wrote" in stderr[0] and "epoch 4" in stderr[0]
    assert "chromexpr" not in stderr[1], stderr[1][-2000:]
