"""Fully connected networks (PyTorch): the poster's MLP over the binned accessibility of a
(gene, sample) pair.

The network and its training loop only; the caller streams the batches (``train_batches(epoch)``
seeded by ``epoch``, so that an interrupted run resumes exactly) and decides where things are
written. Checkpoints and weights hold tensors and plain Python containers only and load with
``torch.load(weights_only=True)``: no pickled code.

Under ``torchrun`` (``docs/models.md``, "Training on several processes, GPUs or nodes") the same
loop trains one model in :class:`~torch.nn.parallel.DistributedDataParallel`: each rank gets its
part of every batch from the caller, gradients are averaged, losses and early stopping are computed
from sums over all ranks, and only rank 0 writes checkpoints (:mod:`chromexpr.models.distributed`).

This module imports torch at the top; import it lazily (``chromexpr`` itself does not).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from chromexpr.errors import InputError
from chromexpr.models import distributed

__all__ = [
    "MLP",
    "TrainConfig",
    "build_mlp",
    "evaluate_mse",
    "load_weights",
    "resolve_device",
    "save_weights",
    "train_mlp",
]

#: Name of the checkpoint file inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"
#: Bump when the checkpoint layout changes.
CHECKPOINT_VERSION = 1
#: Config fields that may differ between an interrupted run and its resumption.
_RESUMABLE_CHANGES = frozenset({"epochs", "patience", "device"})

#: One batch from the caller's loader: x float32 (B, n_inputs), y float32 (B,), group int64 (B,) or
#: None.
Batch = tuple[np.ndarray, np.ndarray, np.ndarray | None]


# ------------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Linear-ReLU-Dropout blocks, then a Linear to one output; optionally a group embedding.

    Parameters
    ----------
    n_inputs
        Features per example.
    hidden
        Width of each hidden layer.
    dropout
        Dropout probability after each hidden ReLU (0 disables it).
    n_groups, group_dim
        With ``n_groups > 0``, an ``nn.Embedding(n_groups, group_dim)`` of the example's group is
        concatenated to its features.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int] = (1000, 1000, 1000),
        *,
        dropout: float = 0.0,
        n_groups: int = 0,
        group_dim: int = 8,
    ) -> None:
        super().__init__()
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be positive, got {n_inputs}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive, got {list(hidden)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if n_groups < 0 or (n_groups > 0 and group_dim < 1):
            raise ValueError(f"need n_groups >= 0 and group_dim >= 1, got {n_groups}, {group_dim}")
        self.n_inputs = n_inputs
        self.n_groups = n_groups
        self.embedding: nn.Embedding | None = (
            nn.Embedding(n_groups, group_dim) if n_groups > 0 else None
        )
        width = n_inputs + (group_dim if n_groups > 0 else 0)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions (B,) from features ``x`` (B, n_inputs) float32 and groups (B,) int64."""
        if self.embedding is not None:
            if group is None:
                raise ValueError("this network embeds sample groups: pass group")
            x = torch.cat([x, self.embedding(group).to(x.dtype)], dim=1)
        elif group is not None:
            raise ValueError("this network has no group embedding (n_groups=0) but group was given")
        out: torch.Tensor = self.body(x)
        return out.squeeze(-1)


def build_mlp(
    n_inputs: int,
    hidden: Sequence[int] = (1000, 1000, 1000),
    *,
    dropout: float = 0.0,
    n_groups: int = 0,
    group_dim: int = 8,
    seed: int | None = None,
) -> torch.nn.Module:
    """The reference MLP (see :class:`MLP`); ``forward(x, group=None) -> (B,)``.

    ``seed`` makes the initial weights reproducible without touching the global torch RNG.

    Examples
    --------
    >>> net = build_mlp(20, (8, 4), seed=0)
    >>> net(torch.zeros(3, 20)).shape
    torch.Size([3])
    >>> net = build_mlp(20, (8,), n_groups=2, group_dim=3, seed=0)
    >>> net(torch.zeros(3, 20), torch.tensor([0, 1, 1])).shape
    torch.Size([3])
    """
    if seed is None:
        return MLP(n_inputs, hidden, dropout=dropout, n_groups=n_groups, group_dim=group_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(n_inputs, hidden, dropout=dropout, n_groups=n_groups, group_dim=group_dim)


# ------------------------------------------------------------------------------------------------
# Configuration and devices
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (round-trip through JSON with ``dataclasses.asdict``).

    Attributes
    ----------
    epochs
        Maximum passes over the training batches.
    lr, betas
        Adam's learning rate and moment decays.
    batch_size
        Recorded for the caller's loader (which makes the batches); not used by :func:`train_mlp`.
    l1, l2
        Penalties ``l1 * sum|W| + l2 * sum W^2`` over the Linear layers' weights (not biases, not
        the group embedding), added to the mean squared error.
    patience
        Stop after this many epochs without a lower dev MSE (0: never stop early).
    seed
        Seeds the torch RNG (dropout) at the start of training.
    device
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    amp
        Automatic mixed precision; with ``amp_dtype="auto"`` on CUDA only (bfloat16, or float16 with
        loss scaling where bfloat16 is unsupported).
    amp_dtype
        ``auto`` (as above), ``bfloat16`` or ``float16``: autocast to this type on any device when
        ``amp`` is on (CPU autocast supports bfloat16; tests use it to check the tolerance).
    compile
        Run the training steps through ``torch.compile`` (TorchInductor). Eager evaluation, weights
        and checkpoints are unchanged: the compiled module shares the model's parameters.
    """

    epochs: int = 50
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 10_000
    l1: float = 0.0
    l2: float = 0.0
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    amp_dtype: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.patience < 0:
            raise InputError(
                f"need epochs >= 0, batch size >= 1 and patience >= 0 "
                f"(got {self.epochs}, {self.batch_size}, {self.patience})"
            )
        if not self.lr > 0 or self.l1 < 0 or self.l2 < 0:
            raise InputError(f"need lr > 0, l1 >= 0, l2 >= 0 (got {self.lr}, {self.l1}, {self.l2})")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise InputError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.amp_dtype not in ("auto", "bfloat16", "float16"):
            raise InputError(f"amp_dtype must be auto, bfloat16 or float16, got {self.amp_dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``betas`` as a list)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other names are checked.

    Under ``torchrun``, ``"auto"`` and ``"cuda"`` mean ``cuda:LOCAL_RANK`` (one GPU per process).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and distributed.env_info().distributed:
        device = f"cuda:{distributed.env_info().local_rank}"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda was asked for but CUDA is not available", fix="use --device auto"
        )
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return dev


# ------------------------------------------------------------------------------------------------
# Weights and checkpoints
# ------------------------------------------------------------------------------------------------


def _atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary sibling, then rename (a crash never leaves a torn file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Write ``model.state_dict()`` (tensors only) with ``torch.save``, atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_torch_save(state, Path(path))


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load :func:`save_weights`' file into ``model`` (``weights_only=True``: no code runs)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state)


def _numpy_rng_state() -> dict[str, Any]:
    """numpy's legacy global RNG state as a tensor and numbers (``weights_only``-loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    _set_numpy_rng_state(state["numpy"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def _penalty(model: torch.nn.Module, l1: float, l2: float) -> torch.Tensor | None:
    """``l1 * sum|W| + l2 * sum W^2`` over every Linear layer's weight (None when both are 0)."""
    if l1 == 0 and l2 == 0:
        return None
    total: torch.Tensor | None = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            w = module.weight
            term = w.new_zeros(())
            if l1:
                term = term + l1 * w.abs().sum()
            if l2:
                term = term + l2 * w.pow(2).sum()
            total = term if total is None else total + term
    return total


def _tensor(value: Any, dtype: torch.dtype, np_dtype: Any, device: torch.device) -> torch.Tensor:
    """A batch array (numpy, or a tensor already on some device) as a ``dtype`` tensor on
    ``device``; copies from page-locked host memory are asynchronous."""
    if not isinstance(value, torch.Tensor):
        value = torch.from_numpy(np.ascontiguousarray(value, dtype=np_dtype))
    return value.to(device, dtype=dtype, non_blocking=device.type == "cuda")


def _to_device(
    batch: Batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    x, y, group = batch
    xt = _tensor(x, torch.float32, np.float32, device)
    yt = _tensor(y, torch.float32, np.float32, device)
    if xt.ndim != 2 or yt.shape != (xt.shape[0],):
        raise ValueError(
            f"a batch must be x (B, n_inputs) and y (B,), got {tuple(xt.shape)}, {tuple(yt.shape)}"
        )
    gt = None if group is None else _tensor(group, torch.int64, np.int64, device)
    return xt, yt, gt


def evaluate_mse(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> tuple[float, int]:
    """Mean squared error of ``model`` over ``batches`` (eval mode, no gradients), example count.

    Under ``torchrun`` (a process group is open) each rank passes its own share of the batches and
    the error and count are those of all ranks together (every rank gets the same numbers).
    """
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with torch.no_grad():
        for batch in batches:
            x, y, group = _to_device(batch, device)
            with _autocast(device, amp_dtype):
                pred = model(x, group)
            total += (pred.float() - y).pow(2).sum(dtype=torch.float64)
            count += int(y.shape[0])
    sse, n = distributed.sum_across([float(total), count])
    return (sse / n if n else math.nan), int(n)


def _autocast(
    device: torch.device, amp_dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``amp_dtype`` on ``device``, or nothing when it is None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


@contextlib.contextmanager
def _eager_fallback(enabled: bool) -> Iterator[None]:
    """Inside this (when ``enabled``), a step torch.compile cannot compile (no Triton, an
    unsupported GPU) runs eagerly, with torch's warning, instead of stopping the run; dynamo's
    setting is restored on the way out."""
    if not enabled:
        yield
        return
    import torch._dynamo as dynamo

    with dynamo.config.patch(suppress_errors=True):
        yield


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if not config.amp:
        return None
    if config.amp_dtype != "auto":
        return torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_mlp(
    model: torch.nn.Module,
    train_batches: Callable[[int], Iterable[Batch]],
    dev_batches: Callable[[], Iterable[Batch]],
    config: TrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` with Adam on the mean squared error, early-stopping on the dev MSE.

    Parameters
    ----------
    model
        The network (moved to the configured device); on return it holds the best epoch's weights
        (lowest dev MSE; the last epoch's when there is no dev data).
    train_batches
        ``train_batches(epoch)`` yields ``(x float32 (B, n_inputs), y float32 (B,), group int64
        (B,) or None)``; it must depend only on ``epoch`` (e.g. shuffle with a seed derived from
        it), so that a resumed run sees the same batches. When a process group is open
        (``torchrun``, :func:`chromexpr.models.distributed.process_group`) the model is trained in
        DistributedDataParallel and each rank yields its own part of every batch: the same number
        of batches on every rank, parts possibly empty (see :func:`_train_epoch`).
    dev_batches
        ``dev_batches()`` yields the development batches (same layout); under ``torchrun`` this
        rank's share of them (each row on one rank).
    config
        Optimiser, penalties, early stopping, seed, device.
    checkpoint_dir
        When given, ``checkpoint_dir / "checkpoint.pt"`` is written (atomically) after every epoch:
        model, optimizer and loss-scaler states, next epoch, best state and its dev MSE, epochs
        without improvement, history, config, and the torch/CUDA/numpy RNG states: tensors and
        plain containers only, loadable with ``torch.load(..., weights_only=True)``. Under
        ``torchrun`` rank 0 writes it (``checkpoint_dir`` must then be on a file system every rank
        sees, for ``resume``), with every rank's RNG states.
    resume
        Continue from the checkpoint in ``checkpoint_dir``; on CPU the result equals an
        uninterrupted run bit for bit. ``epochs``, ``patience`` and ``device`` may change between
        runs; the other settings must match.
    on_epoch
        Called with each new history row, after the checkpoint is written (on every rank).

    Returns
    -------
    list of dict
        One row per epoch: ``epoch`` (0-based, the argument given to ``train_batches``),
        ``train_mse`` (mean over the epoch's examples, data term only, in training mode),
        ``dev_mse`` (NaN without dev data), ``seconds`` (the epoch's wall time) and
        ``examples_per_s`` (training examples per second).

    Raises
    ------
    InputError
        ``resume`` without a checkpoint, or with one written under incompatible settings.
    """
    device = resolve_device(config.device)
    amp_dtype = _amp_dtype(config, device)
    model.to(device)
    rank = distributed.env_info().rank if distributed.is_active() else 0
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    state = _State()
    if resume:
        state = _resume(path, config, model, optimizer, scaler, device, rank)
    else:
        # rank 0 draws the single-process dropout stream; the others draw their own
        torch.manual_seed(config.seed + rank)
        if device.type == "cuda":
            torch.cuda.manual_seed(config.seed + rank)
        if path is not None and rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
    # DistributedDataParallel under torchrun (rank 0's weights copied to every rank), else model
    net: torch.nn.Module = distributed.wrap_model(model, device)
    if config.compile:
        net = cast(torch.nn.Module, torch.compile(net))

    with _eager_fallback(config.compile):
        for epoch in range(state.next_epoch, config.epochs):
            if state.stopped:
                break
            t0 = time.perf_counter()
            sse, n_seen = _train_epoch(
                net, model, train_batches(epoch), optimizer, scaler, config, device, amp_dtype
            )
            train_seconds = time.perf_counter() - t0
            dev_mse, _ = evaluate_mse(model, dev_batches(), device=device, amp_dtype=amp_dtype)
            seconds = time.perf_counter() - t0
            row = {
                "epoch": epoch,
                "train_mse": sse / n_seen if n_seen else math.nan,
                "dev_mse": dev_mse,
                "seconds": seconds,
                "examples_per_s": n_seen / train_seconds if train_seconds > 0 else math.nan,
            }
            state.history.append(row)
            improved = math.isnan(dev_mse) or dev_mse < state.best_dev
            # the dev error is a sum over all ranks, so they agree; rank 0 decides all the same
            (improved,) = distributed.broadcast_flags([improved])
            if improved:
                state.best_dev = dev_mse if not math.isnan(dev_mse) else state.best_dev
                state.best_state = _cpu_state(model)
                state.bad_epochs = 0
            else:
                state.bad_epochs += 1
            state.stopped = config.patience > 0 and state.bad_epochs >= config.patience
            state.next_epoch = epoch + 1
            if path is not None:
                rng = distributed.all_gather_objects(_rng_state(device))
                if rank == 0:
                    _save_checkpoint(path, state, config, model, optimizer, scaler, rng)
            if on_epoch is not None:
                on_epoch(dict(row))
    if path is not None:
        distributed.barrier()  # rank 0's last checkpoint is on disk before any rank goes on
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    return state.history


@dataclass
class _State:
    """Where training stands between epochs (what a checkpoint keeps besides the modules)."""

    next_epoch: int = 0
    best_dev: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def _train_epoch(
    net: torch.nn.Module,
    model: torch.nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    config: TrainConfig,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> tuple[float, int]:
    """One pass of Adam steps; the data term's sum of squares and the rows, over all ranks.

    ``net`` is ``model`` or its DistributedDataParallel wrapper. Each rank holds its part of the
    step's batch; with ``B`` rows in the whole batch, ``W`` ranks and DDP averaging the ranks'
    gradients, a rank's loss ``W / B * sum(its squared errors) + penalty`` makes the averaged
    gradient that of ``mean(squared errors) + penalty`` over the whole batch: the single-process
    step, whatever the parts' sizes (an uneven or nearly empty last batch included), with the
    penalty counted once.
    """
    net.train()
    sse = torch.zeros((), dtype=torch.float64, device=device)
    n_seen = 0
    world = torch.distributed.get_world_size() if distributed.is_active() else 1
    for batch in batches:
        x, y, group = _to_device(batch, device)
        n_rows = int(y.shape[0])
        n_batch = n_rows if world == 1 else int(distributed.sum_across([n_rows])[0])
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp_dtype):
            pred = net(x, group)
        sq = (pred.float() - y).pow(2)
        data_loss = sq.mean() if world == 1 else sq.sum() * (world / max(n_batch, 1))
        penalty = _penalty(model, config.l1, config.l2)
        loss = data_loss if penalty is None else data_loss + penalty
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sse += sq.detach().sum(dtype=torch.float64)
        n_seen += n_rows
    total, count = distributed.sum_across([float(sse), n_seen])
    return total, int(count)


def _resume(
    path: Path | None,
    config: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    rank: int,
) -> _State:
    """Load the checkpoint into the modules and this rank's RNG; the training state."""
    if path is None or not path.exists():
        raise InputError(
            f"cannot resume: no checkpoint at {path}",
            fix="train without --resume to start afresh",
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError):
        raise InputError(
            "cannot resume: the checkpoint is damaged (truncated, or not a checkpoint of tensors)",
            path=path,
            fix="drop --resume and add --force to start afresh",
        ) from None
    _check_resumable(ckpt, config, path)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt["scaler"]:
        scaler.load_state_dict(ckpt["scaler"])
    bad_epochs = int(ckpt["bad_epochs"])
    (first,) = distributed.broadcast_ints([int(ckpt["next_epoch"])])
    if first != int(ckpt["next_epoch"]):
        raise InputError(
            f"cannot resume: rank {rank} sees another checkpoint than rank 0",
            path=path,
            fix="keep the checkpoints on a file system that every node sees",
        )
    rank_rng = ckpt.get("rank_rng") or [ckpt["rng"]]
    if rank < len(rank_rng):
        _set_rng_state(rank_rng[rank], device)
    else:  # more ranks than when the checkpoint was written: a fresh dropout stream
        torch.manual_seed(config.seed + rank + 1_000 * int(ckpt["next_epoch"]))
    return _State(
        next_epoch=int(ckpt["next_epoch"]),
        best_dev=float(ckpt["best_dev"]),
        best_state=ckpt["best_state"],
        bad_epochs=bad_epochs,
        stopped=config.patience > 0 and bad_epochs >= config.patience,
        history=[dict(row) for row in ckpt["history"]],
    )


def _save_checkpoint(
    path: Path,
    state: _State,
    config: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rank_rng: list[dict[str, Any]],
) -> None:
    """Write the checkpoint atomically (rank 0 only; ``rank_rng``: every rank's RNG states)."""
    _atomic_torch_save(
        {
            "version": CHECKPOINT_VERSION,
            "config": config.to_dict(),
            "model": _cpu_state(model),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "next_epoch": state.next_epoch,
            "best_dev": state.best_dev,
            "best_state": state.best_state,
            "bad_epochs": state.bad_epochs,
            "stopped": state.stopped,
            "history": state.history,
            "rng": rank_rng[0],
            "rank_rng": rank_rng,
        },
        path,
    )


def _check_resumable(ckpt: dict[str, Any], config: TrainConfig, path: Path) -> None:
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"checkpoint version {ckpt.get('version')} is not supported", path=path)
    saved = dict(ckpt["config"])
    current = config.to_dict()
    differ = sorted(
        k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k]
    )
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in differ)
        raise InputError(
            f"cannot resume: settings differ from the checkpoint's ({detail})",
            path=path,
            fix="resume with the original settings, or train afresh",
        )
