"""The pooled ``lasso``'s sufficient statistics, computed over shards of genes and summed.

Everything :class:`~chromexpr.models.lasso.PooledLasso` needs from the data is a sum over genes:
each inner fold's :class:`~chromexpr.models.lasso_solver.GramStats` of the training rows, in the
deviation formulation each fold's per-gene correction sums (``C_f``, ``docs/models.md``), and each
gene's mean bins over the training samples (one gene belongs to one shard, so those are placed,
not summed). A **shard** is a run of consecutive gene chunks of the store: every read stays
chunk-aligned, and a gene's training samples are all in its shard, so per-gene centring needs
nothing from other shards. The statistics of a set of shards are the sum of the shards'
statistics; only the float64 summation order differs from one pass.

Backends (:func:`pass_statistics` picks one):

``local`` (default)
    Shards in order, all accumulated into one set of statistics: the single streaming pass, with
    its memory (one block plus ``2 K`` ``p x p`` matrices).
``dask``
    One task per shard on a Dask cluster (``scheduler``: ``tcp://...`` or a scheduler JSON file);
    each task opens the dataset itself (the path must be readable on the workers), reads only its
    genes and returns its statistics as plain arrays (:meth:`PassStats.to_arrays`), which the
    client adds in shard order (deterministic). Needs ``pip install 'chromexpr[dask]'``.
``ranks``
    Under ``torchrun`` (``WORLD_SIZE > 1``) or inside an open ``torch.distributed`` group: rank
    ``r`` accumulates gene chunks ``r, r + world_size, ...`` and the ranks' arrays are summed with
    ``all_reduce``; every rank gets the same sums.

Only training samples are read, through the openness transform fitted on them by the caller:
nothing here fits a statistic on held-out samples.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from chromexpr import dask_cluster
from chromexpr.log import logger, progress_bar
from chromexpr.models.base import TrainingData
from chromexpr.models.design import BlockSource
from chromexpr.models.lasso_solver import GramStats
from chromexpr.models.splits import TRAIN
from chromexpr.models.transforms import FittedOpenness, SampleStatistics

__all__ = [
    "Backend",
    "PassInput",
    "PassStats",
    "accumulate_shard",
    "dask_client",
    "pass_statistics",
    "plan_shards",
    "resolve_backend",
]

Backend = Literal["local", "dask", "ranks"]
#: Default Dask shards per worker thread (more balance the load; each returns ``2 K p^2`` floats).
SHARDS_PER_THREAD = 2

_FIELDS = ("n", "sum_x", "sum_y", "xtx", "xty", "yty", "sum_w")


# ------------------------------------------------------------------------------------------------
# Statistics of a set of shards
# ------------------------------------------------------------------------------------------------


@dataclass
class PassStats:
    """What one statistics pass yields for some genes.

    Attributes
    ----------
    folds
        One :class:`GramStats` per inner fold over that fold's training rows (rows centred per gene
        in the deviation formulation).
    corr
        Deviation formulation: one per fold over the genes' sums of centred rows in the fold
        (``D_gf``, one "row" per gene); empty for ``raw``.
    genes
        ``int64 (m,)`` local gene indices whose mean bins are in ``x_mean``.
    x_mean
        ``float32 (m, p)`` each gene's mean transformed bins over the training samples
        (deviation formulation), or ``None``.
    """

    folds: list[GramStats]
    corr: list[GramStats]
    genes: np.ndarray
    x_mean: np.ndarray | None

    @classmethod
    def empty(cls, k: int, p: int, *, deviation: bool) -> PassStats:
        """Statistics of no rows: ``k`` folds, ``p`` features."""
        return cls(
            folds=[GramStats.empty(p) for _ in range(k)],
            corr=[GramStats.empty(p) for _ in range(k)] if deviation else [],
            genes=np.zeros(0, dtype=np.int64),
            x_mean=np.zeros((0, p), dtype=np.float32) if deviation else None,
        )

    @property
    def deviation(self) -> bool:
        """Whether the correction sums of the deviation formulation are held."""
        return bool(self.corr)

    def __iadd__(self, other: PassStats) -> PassStats:
        """Add another shard's statistics (disjoint genes) in place."""
        if len(other.folds) != len(self.folds) or other.deviation != self.deviation:
            raise ValueError("cannot add statistics of different folds or formulations")
        for mine, theirs in zip(self.folds + self.corr, other.folds + other.corr, strict=True):
            mine += theirs
        if self.x_mean is not None and other.x_mean is not None and other.genes.size:
            self.genes = np.concatenate([self.genes, other.genes])
            self.x_mean = np.concatenate([self.x_mean, other.x_mean])
        return self

    def total(self) -> GramStats:
        """All folds together: the statistics of every training row."""
        out = GramStats.empty(self.folds[0].p)
        for f in self.folds:
            out += f
        return out

    def dense_x_mean(self, n_genes: int) -> np.ndarray | None:
        """``float32 (n_genes, p)`` mean bins placed by gene (zeros for genes not held)."""
        if self.x_mean is None:
            return None
        out = np.zeros((n_genes, self.x_mean.shape[1]), dtype=np.float32)
        out[self.genes] = self.x_mean
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays, fold statistics stacked (``fold_xtx`` is ``(k, p, p)``...): what a Dask
        task returns. See :meth:`from_arrays`."""
        out = _stack("fold", self.folds)
        if self.deviation:
            out.update(_stack("corr", self.corr))
            assert self.x_mean is not None
            out["genes"] = self.genes
            out["x_mean"] = self.x_mean
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PassStats:
        """Rebuild from :meth:`to_arrays`."""
        deviation = "corr_n" in arrays
        return cls(
            folds=_unstack("fold", arrays),
            corr=_unstack("corr", arrays) if deviation else [],
            genes=np.asarray(arrays.get("genes", np.zeros(0)), dtype=np.int64),
            x_mean=np.asarray(arrays["x_mean"], dtype=np.float32) if deviation else None,
        )


def _stack(prefix: str, stats: Sequence[GramStats]) -> dict[str, np.ndarray]:
    """Each field of the folds' statistics stacked along a new first axis (one copy)."""
    return {
        f"{prefix}_{key}": np.stack([np.asarray(getattr(s, key)) for s in stats]) for key in _FIELDS
    }


def _unstack(prefix: str, arrays: dict[str, np.ndarray]) -> list[GramStats]:
    """Inverse of :func:`_stack`; the fold statistics are views of ``arrays`` (no copy)."""
    k = int(np.asarray(arrays[f"{prefix}_n"]).shape[0])
    get = {key: np.asarray(arrays[f"{prefix}_{key}"], dtype=np.float64) for key in _FIELDS}
    if get["xtx"].shape[:1] != (k,) or get["xtx"].shape[1:] != 2 * get["sum_x"].shape[1:]:
        raise ValueError(f"inconsistent {prefix} arrays: xtx {get['xtx'].shape}")
    return [
        GramStats(
            n=int(arrays[f"{prefix}_n"][f]),
            sum_x=get["sum_x"][f],
            sum_y=float(get["sum_y"][f]),
            xtx=get["xtx"][f],
            xty=get["xty"][f],
            yty=float(get["yty"][f]),
            sum_w=float(get["sum_w"][f]),
        )
        for f in range(k)
    ]


def arrays_nbytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of a set of arrays (what a task sends back)."""
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


# ------------------------------------------------------------------------------------------------
# Inputs and one shard's pass
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassInput:
    """The training rows of the pass, over training samples only.

    Attributes
    ----------
    source
        Transformed openness of the modelled genes x **training samples** only.
    y
        ``float64 (n_genes, n_train)`` targets (model scale).
    train
        ``bool (n_genes, n_train)``: which pairs are training pairs.
    y_mean
        ``float64 (n_genes,)`` each gene's mean target over its training pairs.
    folds
        ``int64 (n_train,)`` inner fold of each training sample, ``0 ... k - 1``.
    k
        Number of folds.
    deviation
        Centre rows per gene (deviation formulation).
    batch_rows
        Rows per accumulated product (bounds memory).
    """

    source: BlockSource
    y: np.ndarray
    train: np.ndarray
    y_mean: np.ndarray
    folds: np.ndarray
    k: int
    deviation: bool
    batch_rows: int

    @classmethod
    def from_training(
        cls,
        data: TrainingData,
        cols: np.ndarray,
        folds: np.ndarray,
        *,
        batch_rows: int,
    ) -> PassInput:
        """The pass input of :class:`~chromexpr.models.base.TrainingData` ``data`` over training
        samples ``cols`` (local indices) with inner folds ``folds``."""
        src = data.source
        names = [src.stats.samples[int(c)] for c in cols]
        source = BlockSource(
            src.dataset,
            src.gene_index,
            src.sample_position[cols],
            src.stats.subset(names),
            src.openness,
            src.bins,
        )
        return cls(
            source=source,
            y=np.ascontiguousarray(data.y[:, cols]),
            train=data.roles[:, cols] == TRAIN,
            y_mean=np.asarray(data.y_mean),
            folds=np.asarray(folds, dtype=np.int64),
            k=int(folds.max()) + 1 if folds.size else 0,
            deviation=data.formulation == "deviation",
            batch_rows=int(batch_rows),
        )

    @property
    def n_genes(self) -> int:
        """Modelled genes."""
        return int(self.source.gene_index.size)

    def empty(self) -> PassStats:
        """Statistics of no rows, shaped for this pass."""
        return PassStats.empty(self.k, self.source.n_features, deviation=self.deviation)

    def n_rows(self, genes: np.ndarray | None = None) -> int:
        """Training rows of ``genes`` (default: all)."""
        mask = self.train if genes is None else self.train[genes]
        return int(mask.sum())


@dataclass(frozen=True)
class ShardTask:
    """One shard as a Dask task receives it: its genes' rows and the dataset's path, no open
    file.

    Attributes
    ----------
    dataset_path
        Where the task opens the dataset.
    genes
        ``int64 (m,)`` local gene indices of the shard (consecutive whole chunks).
    gene_index, sample_position, stats, openness, bins
        The shard's :class:`~chromexpr.models.design.BlockSource` but for the dataset.
    y, train, y_mean, folds, k, deviation, batch_rows
        The shard's genes' part of the :class:`PassInput`.
    """

    dataset_path: str
    genes: np.ndarray
    gene_index: np.ndarray
    sample_position: np.ndarray
    stats: SampleStatistics
    openness: FittedOpenness
    bins: np.ndarray | None
    y: np.ndarray
    train: np.ndarray
    y_mean: np.ndarray
    folds: np.ndarray
    k: int
    deviation: bool
    batch_rows: int

    @classmethod
    def of(cls, inp: PassInput, genes: np.ndarray) -> ShardTask:
        """The task of the genes ``genes`` of ``inp``."""
        src = inp.source
        return cls(
            dataset_path=str(src.dataset.path),
            genes=genes,
            gene_index=src.gene_index[genes],
            sample_position=src.sample_position,
            stats=src.stats,
            openness=src.openness,
            bins=src.bins,
            y=inp.y[genes],
            train=inp.train[genes],
            y_mean=inp.y_mean[genes],
            folds=inp.folds,
            k=inp.k,
            deviation=inp.deviation,
            batch_rows=inp.batch_rows,
        )

    def open(self) -> PassInput:
        """The shard's genes as a :class:`PassInput` (opens the dataset)."""
        from chromexpr.dataset.store import open_dataset

        source = BlockSource(
            open_dataset(self.dataset_path),
            self.gene_index,
            self.sample_position,
            self.stats,
            self.openness,
            self.bins,
        )
        return PassInput(
            source,
            self.y,
            self.train,
            self.y_mean,
            self.folds,
            self.k,
            self.deviation,
            self.batch_rows,
        )


def plan_shards(source: BlockSource, n_shards: int | None = None) -> list[np.ndarray]:
    """Split the modelled genes into shards of consecutive whole gene chunks.

    Parameters
    ----------
    source
        The genes (``source.chunks()`` gives the store's chunks).
    n_shards
        At most this many shards, as even in chunks as possible (default: one per chunk).

    Returns
    -------
    list of numpy.ndarray
        Local gene indices of each shard, increasing, together every gene once.
    """
    chunks = [local for _, local in source.chunks()]
    if not chunks:
        return []
    n = len(chunks) if n_shards is None else max(1, min(int(n_shards), len(chunks)))
    bounds = np.linspace(0, len(chunks), n + 1).round().astype(np.int64)
    return [np.concatenate(chunks[lo:hi]) for lo, hi in itertools.pairwise(bounds.tolist())]


def _add_rows(stats: GramStats, x: np.ndarray, y: np.ndarray) -> None:
    """Add rows to ``stats`` with float32 products accumulated in float64 (the pass's speed)."""
    if x.shape[0] == 0:
        return
    stats.xtx += (x.T @ x).astype(np.float64)
    stats.xty += x.T.astype(np.float64) @ y
    stats.yty += float(y @ y)
    stats.sum_x += x.sum(axis=0, dtype=np.float64)
    stats.sum_y += float(y.sum())
    stats.n += int(x.shape[0])
    stats.sum_w += float(x.shape[0])


def _restrict(inp: PassInput, genes: np.ndarray) -> tuple[BlockSource, np.ndarray, np.ndarray]:
    """The source, targets and training mask of ``genes`` only."""
    src = inp.source
    sub = BlockSource(
        src.dataset, src.gene_index[genes], src.sample_position, src.stats, src.openness, src.bins
    )
    return sub, inp.y[genes], inp.train[genes]


def accumulate_shard(
    inp: PassInput,
    genes: np.ndarray,
    into: PassStats,
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Add the statistics of the genes ``genes`` (whole chunks) to ``into``, in place.

    One block (a gene chunk x every training sample) is read at a time; in the deviation
    formulation each gene's rows are centred by its own means over the training samples.

    Parameters
    ----------
    inp
        The pass.
    genes
        ``int64`` local gene indices of one shard (or several, consecutive whole chunks).
    into
        Statistics to add to (:meth:`PassInput.empty` for a fresh shard).
    progress
        Called with the number of training rows of each finished block.
    """
    source, y_all, train_all = _restrict(inp, genes)
    fold_masks = [inp.folds == f for f in range(inp.k)]
    means: list[np.ndarray] = []
    for local, _, x in source.iter_blocks():
        y = y_all[local]
        mask = train_all[local]
        if inp.deviation:
            xm = x.mean(axis=1)
            means.append(xm)
            x -= xm[:, None, :]
            y = y - inp.y_mean[genes[local]][:, None]
        for f, fc in enumerate(fold_masks):
            xf, yf, mf = x[:, fc], y[:, fc], mask[:, fc]
            rows_x, rows_y = xf[mf], yf[mf]
            for lo in range(0, rows_x.shape[0], inp.batch_rows):
                hi = lo + inp.batch_rows
                _add_rows(into.folds[f], rows_x[lo:hi], rows_y[lo:hi])
            if inp.deviation:
                _add_rows(into.corr[f], xf.sum(axis=1), yf.sum(axis=1))
        if progress is not None:
            progress(int(mask.sum()))
    if inp.deviation and into.x_mean is not None:
        into.genes = np.concatenate([into.genes, genes])
        into.x_mean = np.concatenate([into.x_mean, *means])


# ------------------------------------------------------------------------------------------------
# Backends
# ------------------------------------------------------------------------------------------------


def _local(inp: PassInput) -> PassStats:
    """Every chunk in order into one set of statistics (one streaming pass)."""
    out = inp.empty()
    with progress_bar("lasso: statistics", inp.n_rows()) as bar:
        for genes in plan_shards(inp.source):
            accumulate_shard(inp, genes, out, progress=bar.advance)  # type: ignore[attr-defined]
    return out


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: to ``scheduler`` (``tcp://...`` address or scheduler JSON file), else to a
    local cluster of ``workers`` single-threaded processes started for the duration (one BLAS
    thread each, Dask's default for its worker processes)."""
    if scheduler:
        with dask_cluster.connect(scheduler) as client:
            yield client
        return
    if workers is None:
        raise ValueError("give a scheduler or a number of workers")
    with dask_cluster.local_cluster(workers) as address, dask_cluster.connect(address) as client:
        yield client


def _shard_task(task: ShardTask) -> dict[str, np.ndarray]:
    """A Dask task: open the dataset, accumulate one shard, return its arrays."""
    inp = task.open()
    out = inp.empty()
    accumulate_shard(inp, np.arange(task.genes.size, dtype=np.int64), out)
    out.genes = task.genes[out.genes]
    return out.to_arrays()


def _dask(
    inp: PassInput, *, scheduler: str | None, workers: int | None, n_shards: int | None
) -> PassStats:
    """One task per shard on a Dask cluster; results added on the client in shard order."""
    out = inp.empty()
    with dask_client(scheduler, workers) as client:
        threads = max(1, sum(client.nthreads().values()))
        shards = plan_shards(inp.source, n_shards or SHARDS_PER_THREAD * threads)
        tasks = [ShardTask.of(inp, genes) for genes in shards]
        futures = client.map(_shard_task, tasks, pure=False)
        returned = []
        with progress_bar("lasso: statistics (dask)", inp.n_rows()) as bar:
            for genes, future in zip(shards, futures, strict=True):
                arrays = future.result()
                future.release()
                returned.append(arrays_nbytes(arrays))
                out += PassStats.from_arrays(arrays)
                bar.advance(inp.n_rows(genes))  # type: ignore[attr-defined]
    logger.info(
        "lasso: statistics of %d shard(s) on %d Dask worker thread(s), %.1f MB returned per shard",
        len(shards),
        threads,
        float(np.mean(returned)) / 1e6 if returned else 0.0,
    )
    return out


def _rank_group() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the open process group of several processes, opening a gloo
    group under ``torchrun`` if no one has; ``None`` for a single process.

    A group opened here stays open for the run's later fits (``--folds``, ``--model auto``) and is
    closed at exit: re-opening one under ``torchrun`` would rendezvous on the launcher's store,
    whose keys from the previous group are stale. Imports torch only for several processes.
    """
    if "torch.distributed" not in sys.modules:
        from chromexpr.models.distributed import env_info

        if not env_info().distributed:
            return None
    import torch.distributed as dist

    if not dist.is_available():
        return None
    if not dist.is_initialized():
        from chromexpr.models.distributed import env_info

        if not env_info().distributed:
            return None
        dist.init_process_group(backend="gloo")
        atexit.register(dist.destroy_process_group)
    world = dist.get_world_size()
    return (dist.get_rank(), world) if world > 1 else None


def _all_reduce(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Element-wise sums over the ranks (every rank gets the same)."""
    import torch
    import torch.distributed as dist

    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    out = {}
    for key, value in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(value)).to(device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        out[key] = t.cpu().numpy()
    return out


def _ranks(inp: PassInput, rank: int, world_size: int) -> PassStats:
    """Rank ``rank`` accumulates chunks ``rank::world_size``; the arrays are all-reduced."""
    mine = plan_shards(inp.source)[rank::world_size]
    part = inp.empty()
    rows = sum(inp.n_rows(g) for g in mine)
    with progress_bar(f"lasso: statistics (rank {rank} of {world_size})", rows) as bar:
        for genes in mine:
            accumulate_shard(inp, genes, part, progress=bar.advance)  # type: ignore[attr-defined]
    arrays = part.to_arrays()
    dense = part.dense_x_mean(inp.n_genes)
    if dense is not None:  # each gene is on one rank: a sum with zeros places it exactly
        arrays["genes"] = np.arange(inp.n_genes, dtype=np.int64)
        arrays["x_mean"] = dense
    summed = _all_reduce({k: v for k, v in arrays.items() if k != "genes"})
    if dense is not None:
        summed["genes"] = arrays["genes"]
    return PassStats.from_arrays(summed)


def resolve_backend(scheduler: str | None = None, workers: int | None = None) -> Backend:
    """``dask`` when a scheduler or workers are given, ``ranks`` under ``torchrun`` or an open
    process group, else ``local`` (without importing dask or torch to decide)."""
    if scheduler or workers:
        return "dask"
    if "torch.distributed" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return "ranks"
    from chromexpr.models.distributed import env_info

    return "ranks" if env_info().distributed else "local"


def pass_statistics(
    inp: PassInput,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    n_shards: int | None = None,
) -> PassStats:
    """The statistics of every training row, computed over shards and summed.

    Parameters
    ----------
    inp
        The pass (:meth:`PassInput.from_training`).
    scheduler
        Dask scheduler address (``tcp://host:port``) or scheduler JSON file.
    workers
        Without ``scheduler``: start a local Dask cluster of this many processes for this pass.
    n_shards
        Dask shards (default: :data:`SHARDS_PER_THREAD` per worker thread, at most one per chunk).

    Returns
    -------
    PassStats
        The sums over every shard, ``x_mean`` for every gene (deviation formulation).
    """
    start = time.perf_counter()
    backend = resolve_backend(scheduler, workers)
    if backend == "dask":
        out = _dask(inp, scheduler=scheduler, workers=workers, n_shards=n_shards)
    elif backend == "ranks":
        group = _rank_group()
        out = _local(inp) if group is None else _ranks(inp, *group)
    else:
        out = _local(inp)
    logger.info("lasso: statistics pass (%s) took %.2f s", backend, time.perf_counter() - start)
    return out
