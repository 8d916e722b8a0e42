"""Tests of chromexpr.models.fc_net: the MLP, its training loop, checkpoints and exact resume."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from chromexpr.errors import InputError
from chromexpr.models.fc_net import (
    TrainConfig,
    build_mlp,
    load_weights,
    resolve_device,
    save_weights,
    train_mlp,
)

Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]


class Interrupt(Exception):
    """Raised from on_epoch to simulate a crash."""


def planted_data(n: int, p: int, seed: int, *, n_groups: int = 0) -> Batch:
    """``y = x w + 0.8 sin(2 x_0) + 0.5 x_1 x_2 (+ group offset) + small noise``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    w = np.linspace(-1.0, 1.0, p)
    y = x @ w + 0.8 * np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.05 * rng.normal(size=n)
    group = None
    if n_groups:
        group = rng.integers(0, n_groups, size=n).astype(np.int64)
        y = y + np.array([-1.5, 0.0, 2.0])[group]
    return x, y.astype(np.float32), group


def loader(
    data: Batch, batch_size: int, *, shuffle_seed: int | None = None, global_rng: bool = False
):
    """``train_batches(epoch)``: batches of ``data``, shuffled by a seed derived from the epoch, or
    (``global_rng``) by numpy's legacy global RNG, whose state the checkpoints must carry."""

    def batches(epoch: int = 0) -> Iterator[Batch]:
        x, y, g = data
        order = np.arange(len(y))
        if shuffle_seed is not None:
            order = np.random.default_rng([shuffle_seed, epoch]).permutation(len(y))
        if global_rng:
            order = np.random.permutation(len(y))  # noqa: NPY002
        for start in range(0, len(y), batch_size):
            rows = order[start : start + batch_size]
            yield x[rows], y[rows], None if g is None else g[rows]

    return batches


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """These networks are tiny: intra-op threads only add synchronisation (several-fold slower on a
    busy 2-core machine), so each test runs torch on one thread and restores the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def linear_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().clone() for m in model.modules() if isinstance(m, torch.nn.Linear)]


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def test_reference_network_shapes() -> None:
    net = build_mlp(2000, seed=0)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2000, 1000),
        (1000, 1000),
        (1000, 1000),
        (1000, 1),
    ]
    assert net(torch.zeros(5, 2000)).shape == (5,)
    assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in build_mlp(10, (4,), dropout=0.2).modules())


def test_group_embedding() -> None:
    net = build_mlp(6, (8, 4), n_groups=3, group_dim=2, seed=1)
    emb = [m for m in net.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(emb) == 1
    assert emb[0].weight.shape == (3, 2)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == 8
    x = torch.zeros(4, 6)
    out = net(x, torch.tensor([0, 1, 2, 0]))
    assert out.shape == (4,)
    assert out[0] == out[3] and out[0] != out[1]  # the group changes the prediction
    with pytest.raises(ValueError, match="group"):
        net(x)
    with pytest.raises(ValueError, match="no group embedding"):
        build_mlp(6, (4,))(x, torch.tensor([0, 1, 2, 0]))


def test_seeded_build_is_reproducible_and_leaves_global_rng() -> None:
    before = torch.get_rng_state()
    a, b = build_mlp(7, (5,), seed=3), build_mlp(7, (5,), seed=3)
    assert torch.equal(before, torch.get_rng_state())
    for wa, wb in zip(linear_weights(a), linear_weights(b), strict=True):
        assert torch.equal(wa, wb)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_training_fits_planted_linear_plus_nonlinear_function() -> None:
    train = planted_data(2000, 8, seed=0, n_groups=3)
    dev = planted_data(600, 8, seed=1, n_groups=3)
    net = build_mlp(8, (64, 64), n_groups=3, group_dim=2, seed=0)
    config = TrainConfig(epochs=25, lr=5e-3, batch_size=100, patience=10, device="cpu")
    history = train_mlp(net, loader(train, 100, shuffle_seed=5), loader(dev, 600), config)
    assert history[-1]["train_mse"] < 0.2 * history[0]["train_mse"]
    best = min(row["dev_mse"] for row in history)
    assert best < 0.05 * float(np.var(dev[1]))
    for row in history:
        assert set(row) == {"epoch", "train_mse", "dev_mse", "seconds", "examples_per_s"}
        assert row["seconds"] > 0 and row["examples_per_s"] > 0
    # the model returned holds the best epoch's weights
    with torch.no_grad():
        pred = net(torch.from_numpy(dev[0]), torch.from_numpy(dev[2])).numpy()
    assert float(np.mean((pred - dev[1]) ** 2)) == pytest.approx(best, rel=1e-5)


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_weight_penalties_shrink_weights(penalty: str) -> None:
    data = planted_data(800, 10, seed=2)
    norms = {}
    for strength in (0.0, 0.1):
        net = build_mlp(10, (16,), seed=4)
        config = TrainConfig(epochs=15, lr=1e-2, patience=0, device="cpu", **{penalty: strength})
        train_mlp(net, loader(data, 100), loader(data, 800), config)
        weights = linear_weights(net)
        order = 1 if penalty == "l1" else 2
        norms[strength] = sum(float(w.abs().pow(order).sum()) for w in weights)
    assert norms[0.1] < 0.5 * norms[0.0]


def test_early_stopping_stops_and_keeps_best() -> None:
    train = planted_data(500, 5, seed=3)
    rng = np.random.default_rng(9)
    # dev targets unrelated to x: dev MSE rises as the network fits the training data
    dev = (train[0][:200], rng.normal(size=200).astype(np.float32), None)
    net = build_mlp(5, (32,), seed=5)
    config = TrainConfig(epochs=50, lr=1e-2, patience=3, device="cpu")
    history = train_mlp(net, loader(train, 50), loader(dev, 200), config)
    dev_mse = [row["dev_mse"] for row in history]
    best = int(np.argmin(dev_mse))
    assert len(history) == best + 1 + 3 < 50
    with torch.no_grad():
        pred = net(torch.from_numpy(dev[0])).numpy()
    assert float(np.mean((pred - dev[1]) ** 2)) == pytest.approx(dev_mse[best], rel=1e-5)


def test_no_dev_data_keeps_last_epoch() -> None:
    data = planted_data(200, 4, seed=4)
    net = build_mlp(4, (8,), seed=6)
    history = train_mlp(
        net, loader(data, 50), lambda: iter(()), TrainConfig(epochs=3, device="cpu")
    )
    assert len(history) == 3
    assert all(math.isnan(row["dev_mse"]) for row in history)


# --------------------------------------------------------------------------------------------
# Checkpoints and resume
# --------------------------------------------------------------------------------------------


def _run(tmp: Path | None, *, resume: bool = False, stop_at: int | None = None, seed: int = 7):
    train = planted_data(600, 6, seed=10, n_groups=3)
    dev = planted_data(200, 6, seed=11, n_groups=3)
    net = build_mlp(6, (16, 8), dropout=0.3, n_groups=3, group_dim=2, seed=seed)
    config = TrainConfig(epochs=6, lr=5e-3, patience=10, seed=1, device="cpu")

    def on_epoch(row: dict) -> None:
        if stop_at is not None and row["epoch"] == stop_at:
            raise Interrupt

    history = train_mlp(
        net,
        loader(train, 64, global_rng=True),
        loader(dev, 200),
        config,
        checkpoint_dir=tmp,
        resume=resume,
        on_epoch=on_epoch,
    )
    return net, history


def _strip(history: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in ("seconds", "examples_per_s")} for row in history
    ]


def test_resume_after_interrupt_equals_uninterrupted(tmp_path: Path) -> None:
    np.random.seed(0)  # noqa: NPY002 - the legacy global RNG is part of what is checkpointed
    reference, ref_history = _run(tmp_path / "a")
    ref_numpy = np.random.random()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    with pytest.raises(Interrupt):
        _run(tmp_path / "b", stop_at=2)
    np.random.seed(123)  # noqa: NPY002 - clobbered; resume must restore it
    resumed, history = _run(tmp_path / "b", resume=True, seed=99)  # different initial weights
    assert np.random.random() == ref_numpy  # noqa: NPY002
    assert _strip(history) == _strip(ref_history)
    ref_state, state = reference.state_dict(), resumed.state_dict()
    assert ref_state.keys() == state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], state[key]), key
    # a finished run resumes to the same answer without training
    again, history_again = _run(tmp_path / "b", resume=True, seed=5)
    assert _strip(history_again) == _strip(ref_history)
    for key in ref_state:
        assert torch.equal(ref_state[key], again.state_dict()[key])


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    with pytest.raises(Interrupt):
        _run(tmp_path, stop_at=1)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["next_epoch"] == 2
    assert len(ckpt["history"]) == 2
    assert set(ckpt["rng"]) >= {"torch", "numpy"}
    assert isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)
    assert ckpt["config"]["lr"] == 5e-3


def test_resume_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no checkpoint"):
        _run(tmp_path / "missing", resume=True)
    with pytest.raises(Interrupt):
        _run(tmp_path / "c", stop_at=0)
    net = build_mlp(6, (16, 8), dropout=0.3, n_groups=3, group_dim=2)
    changed = TrainConfig(epochs=6, lr=1e-1, patience=10, seed=1, device="cpu")
    with pytest.raises(InputError, match="lr"):
        train_mlp(
            net,
            lambda e: iter(()),
            lambda: iter(()),
            changed,
            checkpoint_dir=tmp_path / "c",
            resume=True,
        )


def test_save_and_load_weights(tmp_path: Path) -> None:
    a, b = build_mlp(5, (4,), n_groups=2, seed=1), build_mlp(5, (4,), n_groups=2, seed=2)
    save_weights(a, tmp_path / "w.pt")
    assert isinstance(torch.load(tmp_path / "w.pt", weights_only=True), dict)
    load_weights(b, tmp_path / "w.pt")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="device"):
        resolve_device("tpu")


def test_config_validation() -> None:
    with pytest.raises(InputError):
        TrainConfig(lr=0.0)
    with pytest.raises(InputError):
        TrainConfig(betas=(0.9, 1.5))
    assert TrainConfig().to_dict()["betas"] == [0.9, 0.999]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_training_on_cuda_with_amp() -> None:
    train = planted_data(2000, 8, seed=0, n_groups=3)
    dev = planted_data(500, 8, seed=1, n_groups=3)
    net = build_mlp(8, (64, 64), n_groups=3, group_dim=2, seed=0)
    config = TrainConfig(epochs=10, lr=3e-3, patience=5, device="cuda", amp=True)
    history = train_mlp(net, loader(train, 250, shuffle_seed=1), loader(dev, 500), config)
    assert next(net.parameters()).device.type == "cuda"
    assert history[-1]["train_mse"] < 0.5 * history[0]["train_mse"]
    assert min(row["dev_mse"] for row in history) < 0.2 * float(np.var(dev[1]))
