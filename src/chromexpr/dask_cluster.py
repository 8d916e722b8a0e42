"""Reaching a ``dask.distributed`` cluster: the one place where chromexpr imports Dask.

Used by ``chromexpr bin --scheduler/--workers`` (one task per sample) and by ``chromexpr train
--model lasso --scheduler/--workers`` (one task per shard of the statistics pass). Dask is an
optional extra: without it these functions raise a one-line :class:`~chromexpr.errors.InputError`
that says how to install it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chromexpr.errors import InputError

__all__ = ["INSTALL_FIX", "connect", "import_distributed", "local_cluster"]

INSTALL_FIX = "pip install 'chromexpr[dask]'"


def import_distributed() -> Any:
    """The ``distributed`` module, or a one-line InputError telling how to install it."""
    try:
        import distributed
    except ImportError:
        raise InputError(
            "running on Dask needs dask.distributed, which is not installed", fix=INSTALL_FIX
        ) from None
    return distributed


@contextmanager
def local_cluster(workers: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes; yields its address.

    Parameters
    ----------
    workers
        Worker processes (one task slot each).
    env
        Environment of the worker processes (e.g. numba and BLAS thread counts).
    """
    if workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers})")
    distributed = import_distributed()
    with distributed.LocalCluster(
        n_workers=int(workers),
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port (its HTTP server starts regardless)
        env=env or {},
    ) as cluster:
        yield str(cluster.scheduler_address)


@contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A ``distributed.Client`` of ``scheduler``, closed on exit.

    Parameters
    ----------
    scheduler
        ``tcp://HOST:PORT`` (any address Dask accepts), or the JSON file that
        ``dask scheduler --scheduler-file``, dask-jobqueue or dask-mpi write. The connect timeout is
        Dask's ``distributed.comm.timeouts.connect`` setting.

    Raises
    ------
    InputError
        Dask missing, ``scheduler`` neither an address nor an existing file, or no scheduler
        answering there.
    """
    distributed = import_distributed()
    kwargs: dict[str, Any] = {"set_as_default": False}
    if "://" in scheduler or not Path(scheduler).is_file():
        if "://" not in scheduler and ":" not in scheduler:
            raise InputError(
                f"--scheduler {scheduler!r} is neither a scheduler address nor an existing file",
                fix="give tcp://HOST:PORT or the JSON file of 'dask scheduler --scheduler-file'",
            )
        kwargs["address"] = scheduler
    else:
        kwargs["scheduler_file"] = scheduler
    try:
        client = distributed.Client(**kwargs)
    except (OSError, TimeoutError, ValueError, json.JSONDecodeError) as exc:
        raise InputError(
            f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}: {exc})",
            fix="check that the scheduler is running and reachable from this machine",
        ) from None
    with client:
        yield client
