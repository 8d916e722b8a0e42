"""Bin samples on a ``dask.distributed`` cluster: one task per sample, one writer of metadata.

Each task loads one sample, bins it with the in-process code (:func:`~chromexpr.binning.pipeline.
_load`, :func:`~chromexpr.binning.pipeline._bin_one`) and writes that sample's chunks of the store
on the shared file system. A sample is one column of chunks, so no two tasks write the same file.
Tasks return a few hundred bytes of metadata (checksum, chromosome sizes, chromosome-name
findings), never values; the client alone marks samples ``complete`` (the only file that several
samples share), as results arrive.

A new dataset is built in ``.NAME.partial-DIGEST`` next to the output, named by a fingerprint of
everything that determines its values (parameters, TSS table, sample list). An interrupted run
leaves it behind; running the same command again bins only the samples not flagged complete, then
renames it into place. A partial dataset made with other parameters is never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr import dask_cluster
from chromexpr.binning.pipeline import (
    BinOptions,
    _append_todo,
    _bin_one,
    _chrom_sizes_for,
    _ChromReport,
    _load,
    _validate_genes,
)
from chromexpr.dataset import store
from chromexpr.errors import ChromexprError, InputError
from chromexpr.io.samples import SampleSource
from chromexpr.log import progress_bar
from chromexpr.provenance import record

logger = logging.getLogger("chromexpr")

PARTIAL_KEY = "chromexpr_partial"
"""Root attribute of a partial dataset: fingerprint, per-sample bookkeeping (removed at the end)."""

FLAG_WRITE_RATIO = 10.0
"""Seconds between two writes of ``complete`` flags, at least this times the last write's duration
(:class:`_BatchFlagger`)."""


@dataclass
class DaskBinResult:
    """What a distributed run did.

    Attributes
    ----------
    path
        The dataset.
    computed
        Samples binned by this run, in completion order.
    skipped
        Samples already complete (from an earlier, interrupted run or in the appended dataset).
    max_rss
        Peak resident memory (bytes) of each worker process that ran a task, by worker address.
    """

    path: Path
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    max_rss: dict[str, int] = field(default_factory=dict)


def partial_path(output: str | Path, fingerprint: str) -> Path:
    """Where a new dataset is built until every sample is complete: ``.NAME.partial-DIGEST``.

    The digest is the run's fingerprint (parameters, TSS table, sample list), so a run with other
    parameters never shares a directory with the tasks of an interrupted one that may still be
    running on a cluster (Dask cannot stop a task that has started).
    """
    out = Path(output)
    return out.with_name(f".{out.name}.partial-{fingerprint.split(':')[-1][:16]}")


def partial_paths(output: str | Path) -> list[Path]:
    """The partial datasets of ``output`` left by interrupted runs, of any fingerprint."""
    import re

    out = Path(output)
    pattern = re.compile(rf"\.{re.escape(out.name)}\.partial-[0-9a-f]{{16}}")
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir())


# ------------------------------------------------------------------------------------------------
# Worker side
# ------------------------------------------------------------------------------------------------


def _set_task_threads(threads: int | None) -> None:
    """Numba threads of this task: ``threads``, else 1 on a multi-threaded worker, else the
    process's CPUs (at most ``NUMBA_NUM_THREADS``)."""
    import numba

    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if threads is None:
        try:
            from distributed import get_worker

            threads = 1 if get_worker().state.nthreads > 1 else _usable_cpus()
        except ValueError:  # not in a worker (tests calling the task directly)
            threads = limit
    numba.set_num_threads(max(1, min(threads, limit)))


def _usable_cpus() -> int:
    """CPUs this process may run on (a Slurm/cgroup allocation, not the whole node)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _genes_from_store(path: str, widths: np.ndarray | None) -> pd.DataFrame:
    """The TSS table as ``_bin_one`` reads it, from the store (``end = start + widths``)."""
    import zarr

    root: Any = zarr.open_group(path, mode="r", zarr_format=2, use_consolidated=False)
    start = np.asarray(root["tss"][:], dtype=np.int64)
    return pd.DataFrame(
        {
            "name": [str(v) for v in root["gene"][:].tolist()],
            "chrom": [str(v) for v in root["chrom"][:].tolist()],
            "start": start,
            "end": start + (1 if widths is None else widths),
            "strand": [str(v) for v in root["strand"][:].tolist()],
        }
    )


def _bin_task(
    path: str,
    index: int,
    source: SampleSource,
    options: BinOptions,
    widths: np.ndarray | None,
    threads: int | None,
) -> dict[str, Any]:
    """Bin one sample and write its chunks; return its metadata (runs on a worker).

    A :class:`~chromexpr.errors.ChromexprError` (bad input: retrying cannot help) is returned
    under ``"error"`` rather than raised, so that dask does not retry it.
    """
    started = time.perf_counter()
    _set_task_threads(threads)
    report = _ChromReport()
    with _captured_warnings() as warnings:
        try:
            genes = _genes_from_store(path, widths)
            loaded = _load(source, options)
            values = _bin_one(loaded, genes, options, report)
        except ChromexprError as exc:
            return {"sample": source.name, "index": index, "error": exc, "warnings": warnings}
    n_segments = loaded.track.n_segments
    store.write_sample(path, index, values)
    return {
        "sample": source.name,
        "index": index,
        "checksum": loaded.checksum,
        "chrom_sizes": dict(loaded.track.chrom_sizes),
        "renamed": sorted(report.renamed),
        "missing": dict(report.missing),
        "samples_missing": sorted(report.samples_missing),
        "segments": n_segments,
        "seconds": time.perf_counter() - started,
        "max_rss": _peak_rss(),
        "worker": _worker_address(),
        "warnings": warnings,
    }


@contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    """Collect the chromexpr warnings this thread logs (the client logs them again: a worker's
    own log is not where the user looks)."""
    import threading

    messages: list[str] = []
    thread = threading.get_ident()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                messages.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _peak_rss() -> int:
    """Peak resident memory of this process (bytes): ``VmHWM`` where /proc has it (getrusage's
    maxrss keeps the high-water mark of the process that spawned a worker, across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:
        return f"pid-{os.getpid()}"


# ------------------------------------------------------------------------------------------------
# Client side
# ------------------------------------------------------------------------------------------------


@contextmanager
def _connect(
    client: Any, address: str | None, workers: int | None, task_threads: int | None
) -> Iterator[tuple[Any, int | None]]:
    """Yield ``(client, numba threads per task)``: the given client, one connected to
    ``address``, or one of a local cluster of ``workers`` single-threaded processes."""
    if client is not None:
        yield client, task_threads
        return
    if workers is None:
        assert address is not None
        with dask_cluster.connect(address) as remote:
            yield remote, task_threads
        return
    threads = task_threads or max(1, _usable_cpus() // workers)
    env = {"NUMBA_NUM_THREADS": str(threads)}
    env.update({v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    logger.info(
        "starting a local Dask cluster: %d worker process(es), %d numba thread(s) per task",
        workers,
        threads,
    )
    with dask_cluster.local_cluster(workers, env) as local, dask_cluster.connect(local) as c:
        yield c, threads


def _fingerprint(
    genes: pd.DataFrame,
    sources: list[SampleSource],
    options: BinOptions,
    provenance: dict[str, Any] | None,
) -> str:
    """A digest of everything that determines a new dataset's layout and values, except the
    sample files' contents (checked per sample: a changed file is recomputed)."""
    from chromexpr._version import __version__

    columns = [
        c
        for c in ("name", "chrom", "start", "end", "strand", "gene_name", "gene_type")
        if c in genes
    ]
    regions = options.regions
    payload = {
        "version": __version__,
        "format": [store.FORMAT, store.FORMAT_VERSION],
        "options": options.to_dict(),
        "chrom_sizes": options.chrom_sizes,
        "chunk_genes": options.chunk_genes,
        "regions": _file_state(regions) if regions else None,
        "provenance": provenance or {},
        "genes": hashlib.sha256(genes[columns].to_csv(index=False).encode()).hexdigest(),
        "samples": [
            [s.name, str(Path(s.path).resolve()), s.kind, s.group, s.column] for s in sources
        ],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _file_state(path: str | Path) -> list[int]:
    """Size and modification time (ns) of an input: what tells a changed file cheaply."""
    stat = Path(path).stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def _tss_widths(genes: pd.DataFrame) -> np.ndarray | None:
    """``end - start`` per gene, or None when every TSS is 1 bp (always, from load_tss)."""
    widths = genes["end"].to_numpy(dtype=np.int64) - genes["start"].to_numpy(dtype=np.int64)
    return None if (widths == 1).all() else widths


def _submit(
    client: Any,
    path: Path,
    jobs: list[tuple[int, SampleSource]],
    options: BinOptions,
    widths: np.ndarray | None,
    threads: int | None,
    retries: int,
) -> list[Any]:
    token = uuid.uuid4().hex[:8]
    return [
        client.submit(
            _bin_task,
            str(path.resolve()),
            index,
            replace(source, path=Path(source.path).resolve()),
            options,
            widths,
            threads,
            key=f"chromexpr-bin-{index}-{token}",
            retries=retries,
            pure=False,
        )
        for index, source in jobs
    ]


def _collect(
    client: Any,
    path: Path,
    jobs: list[tuple[int, SampleSource]],
    futures: list[Any],
    on_done: Callable[[dict[str, Any]], None],
) -> tuple[_ChromReport, list[dict[str, Any]], list[BaseException]]:
    """Wait for the tasks; hand each result to ``on_done`` as it arrives (in the client)."""
    distributed = dask_cluster.import_distributed()
    report = _ChromReport()
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    names = {index: source.name for index, source in jobs}
    with progress_bar("binning samples", len(futures)) as bar:
        try:
            # the loop of this client: as_completed would otherwise look for a default client,
            # and ours is made with set_as_default=False (a library must not set process state)
            for future in distributed.as_completed(futures, loop=client.loop):
                if future.status == "error":
                    exc = future.exception()
                    index = int(str(future.key).split("-")[2])
                    errors.append(_task_failure(names[index], exc))
                    continue
                result = future.result()
                future.release()  # a lost worker must not make dask recompute a finished sample
                for message in result["warnings"]:
                    logger.warning("%s", message)
                if "error" in result:
                    errors.append(result["error"])
                    continue
                on_done(result)
                report.renamed.update(tuple(p) for p in result["renamed"])
                report.missing.update(result["missing"])
                report.samples_missing.update(result["samples_missing"])
                results.append(result)
                bar.advance(1)  # type: ignore[attr-defined]
        except BaseException:
            client.cancel(futures)
            raise
    return report, results, errors


def _task_failure(name: str, exc: BaseException) -> ChromexprError:
    if isinstance(exc, ChromexprError):
        return exc
    return ChromexprError(
        f"binning sample {name!r} failed on the cluster: {type(exc).__name__}: {exc}"
    )


def _run(
    client: Any,
    path: Path,
    jobs: list[tuple[int, SampleSource]],
    options: BinOptions,
    *,
    widths: np.ndarray | None,
    threads: int | None,
    retries: int,
    on_done: Callable[[dict[str, Any]], None],
    result: DaskBinResult,
) -> _ChromReport:
    """Bin ``jobs`` (store index, sample) on the cluster; raise the first failure at the end."""
    futures = _submit(client, path, jobs, options, widths, threads, retries)
    try:
        report, results, errors = _collect(client, path, jobs, futures, on_done)
    except BaseException:
        with suppress(Exception):  # samples not started yet are not started at all
            client.cancel(futures)
        logger.warning(
            "stopped: %d of %d sample(s) were binned and are kept in %s; "
            "run the same command again to bin the rest",
            len(result.computed),
            len(jobs),
            path,
        )
        raise
    for item in results:
        result.max_rss[item["worker"]] = max(result.max_rss.get(item["worker"], 0), item["max_rss"])
        logger.debug(
            "binned %s on %s in %.2f s (%d segments)",
            item["sample"],
            item["worker"],
            item["seconds"],
            item["segments"],
        )
    if result.max_rss:
        logger.info(
            "peak memory of the worker processes: %s MiB",
            ", ".join(f"{rss / 2**20:.0f}" for rss in sorted(result.max_rss.values())),
        )
    if errors:
        logger.warning(
            "%d sample(s) failed; the %d complete one(s) are kept in %s "
            "(fix the input and run the same command again to bin the rest)",
            len(errors),
            len(result.computed) + len(result.skipped),
            path,
        )
        raise errors[0]
    return report


def _merged_sizes(
    options: BinOptions, order: list[str], per_sample: dict[str, dict[str, int]]
) -> dict[str, int]:
    """Chromosome sizes as the in-process pipeline collects them: given ones, then the samples' in
    sample order (the first sample that knows a chromosome wins)."""
    sizes: dict[str, int] = dict(options.chrom_sizes or {})
    for name in order:
        for chrom, size in per_sample.get(name, {}).items():
            sizes.setdefault(chrom, int(size))
    return sizes


def _ordered_sources(path: Path, order: list[str]) -> None:
    """Rewrite the ``sources`` attribute in sample order (results arrive in any order)."""
    sources = store.root_attrs(path).get("sources", {})
    ordered = {n: sources[n] for n in order if n in sources}
    ordered.update({n: v for n, v in sources.items() if n not in ordered})
    store.update_attrs(path, {"sources": ordered})


# ------------------------------------------------------------------------------------------------
# Partial dataset (new output)
# ------------------------------------------------------------------------------------------------


def _open_partial(
    output: Path,
    genes: pd.DataFrame,
    sources: list[SampleSource],
    options: BinOptions,
    provenance: dict[str, Any] | None,
    *,
    force: bool,
) -> tuple[Path, list[tuple[int, SampleSource]], list[str]]:
    """Create or resume the partial dataset; return it, the samples to bin and those done."""
    fingerprint = _fingerprint(genes, sources, options, provenance)
    partial = partial_path(output, fingerprint)
    others = [p for p in partial_paths(output) if p != partial]
    if others and not force:
        raise InputError(
            "an interrupted run with other parameters or inputs left this partial dataset",
            path=others[0],
            fix="run that command again to finish it, or pass --force to discard it",
        )
    for other in others:
        logger.warning("discarding %s (made with other parameters or inputs)", other)
        shutil.rmtree(other, ignore_errors=True)  # a task of that run may still be writing
    if partial.exists() and _partial_meta(partial).get("fingerprint") == fingerprint:
        return partial, *_resume(partial, sources)
    shutil.rmtree(partial, ignore_errors=True)  # not a complete partial dataset: start again
    _create_partial(partial, genes, sources, options, provenance, fingerprint)
    return partial, list(enumerate(sources)), []


def _partial_meta(partial: Path) -> dict[str, Any]:
    try:
        meta = store.root_attrs(partial).get(PARTIAL_KEY)
    except InputError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _create_partial(
    partial: Path,
    genes: pd.DataFrame,
    sources: list[SampleSource],
    options: BinOptions,
    provenance: dict[str, Any] | None,
    fingerprint: str,
) -> None:
    """Build the empty partial store (every sample added, none complete) and rename it in place,
    so that a partial dataset always has its fingerprint."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial.with_name(f"{partial.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    attrs = {
        "provenance": record(step="bin", parameters={**options.to_dict(), **(provenance or {})}),
        PARTIAL_KEY: {"fingerprint": fingerprint, "samples": {}},
    }
    try:
        store.create_store(tmp, genes, options.spec, attrs=attrs, chunk_genes=options.chunk_genes)
        store.add_samples(tmp, [s.name for s in sources], [s.group for s in sources])
        tmp.rename(partial)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _resume(
    partial: Path, sources: list[SampleSource]
) -> tuple[list[tuple[int, SampleSource]], list[str]]:
    """Samples of a matching partial dataset still to bin (incomplete, or whose file changed)."""
    names, complete = store.sample_states(partial)
    files = _partial_meta(partial).get("samples", {})
    todo: list[tuple[int, SampleSource]] = []
    done: list[str] = []
    for index, source in enumerate(sources):
        if complete[index] and files.get(source.name, {}).get("file") != _file_state(source.path):
            logger.warning(
                "the input of sample %s changed since it was binned; binning it again", source.name
            )
            store.mark_incomplete(partial, index)
        elif complete[index]:
            done.append(source.name)
            continue
        todo.append((index, source))
    logger.info("resuming %s: %d of %d sample(s) already complete", partial, len(done), len(names))
    return todo, done


def _record_partial_samples(
    partial: Path, results: list[dict[str, Any]], by_index: dict[int, SampleSource]
) -> None:
    """Keep what the final dataset needs from finished samples and flag them complete, in one
    write (a sample flagged without its bookkeeping would be binned again: never lost)."""
    meta = _partial_meta(partial)
    samples = meta.setdefault("samples", {})
    for result in results:
        samples[result["sample"]] = {
            "file": _file_state(by_index[result["index"]].path),
            "chrom_sizes": result["chrom_sizes"],
        }
    flags = {r["index"]: _source_record(by_index[r["index"]], r["checksum"]) for r in results}
    store.mark_complete_many(partial, flags, attrs={PARTIAL_KEY: meta})


def _finish_partial(
    partial: Path,
    output: Path,
    genes: pd.DataFrame,
    sources: list[SampleSource],
    options: BinOptions,
    *,
    force: bool,
) -> None:
    """Check that every sample is complete, finalise the attributes and rename into place."""
    _, complete = store.sample_states(partial)
    if not complete.all():  # cannot happen unless someone else writes the partial dataset
        raise ChromexprError(f"{partial}: {int((~complete).sum())} sample(s) still incomplete")
    per_sample = {
        name: item.get("chrom_sizes", {})
        for name, item in _partial_meta(partial).get("samples", {}).items()
    }
    order = [s.name for s in sources]
    sizes = _merged_sizes(options, order, per_sample)
    store.update_attrs(partial, {"chrom_sizes": _chrom_sizes_for(genes, sizes)})
    _ordered_sources(partial, order)
    store.remove_attrs(partial, [PARTIAL_KEY])
    from chromexpr.atomic import check_writable, replace_into

    check_writable(output, force=force)
    replace_into(partial, output)


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def bin_dataset_on_dask(
    genes: pd.DataFrame,
    sources: list[SampleSource],
    output: str | Path,
    *,
    options: BinOptions | None = None,
    append: bool = False,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
    client: Any = None,
    address: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    task_threads: int | None = None,
    on_sample_done: Callable[[str], None] | None = None,
) -> DaskBinResult:
    """Bin every sample into the dataset at ``output`` with one ``dask.distributed`` task each.

    Values, coordinates and attributes are those of
    :func:`chromexpr.binning.pipeline.bin_dataset` (provenance time aside). The output directory
    must be on a file system that every worker sees at the same path, as must the inputs.

    Parameters
    ----------
    genes, sources, output, options, append, force, provenance
        As for :func:`~chromexpr.binning.pipeline.bin_dataset`.
    client
        A connected ``distributed.Client`` (library use).
    address
        Scheduler to connect to: ``tcp://host:port``, or the JSON file written by
        ``dask scheduler --scheduler-file`` (also dask-jobqueue, dask-mpi).
    workers
        Start a local cluster of this many worker processes (one thread each) instead.
    retries
        Times dask retries a task that raised (bad input is reported, not retried). A task whose
        worker dies is rescheduled by dask regardless.
    task_threads
        Numba threads per task. Default: with ``workers``, the CPUs divided among the workers;
        otherwise 1 on a worker with several threads and all of the worker's
        ``NUMBA_NUM_THREADS`` on a single-threaded one.
    on_sample_done
        Called in the client with each sample's name once it is flagged complete (samples are
        flagged in batches, see :class:`_BatchFlagger`).

    Returns
    -------
    DaskBinResult
        The dataset path, the samples binned by this run and those already complete.

    Raises
    ------
    InputError
        dask.distributed missing, scheduler unreachable, bad input, the output exists without
        ``force``, or a partial dataset made with other parameters exists without ``force``.
    """
    if retries < 0:
        raise InputError(f"--retries must be at least 0 (got {retries})")
    dask_cluster.import_distributed()
    options = options or BinOptions()
    output = Path(output)
    genes = _validate_genes(genes, options)
    _check_target(client, address, workers)
    if not append:
        from chromexpr.atomic import check_writable

        check_writable(output, force=force)  # before minutes spent reaching a cluster
    with (
        _lock(output),
        # reach the cluster before writing anything: a wrong address leaves nothing behind
        _connect(client, address, workers, task_threads) as (connected, threads),
    ):
        plan = (
            _plan_append(genes, sources, output, options)
            if append
            else _plan_new(genes, sources, output, options, provenance, force=force)
        )
        return _execute(
            plan,
            genes,
            output,
            options,
            client=connected,
            threads=threads,
            retries=retries,
            on_sample_done=on_sample_done,
        )


def _execute(
    plan: _Plan,
    genes: pd.DataFrame,
    output: Path,
    options: BinOptions,
    *,
    client: Any,
    threads: int | None,
    retries: int,
    on_sample_done: Callable[[str], None] | None,
) -> DaskBinResult:
    """Bin the plan's samples on the cluster, recording each as it completes, then finish."""
    result = DaskBinResult(path=output, skipped=plan.skipped)
    flagger = _BatchFlagger(plan.record, on_sample_done)

    def finished(item: dict[str, Any]) -> None:
        result.computed.append(item["sample"])
        flagger.add(item)

    if plan.jobs:
        try:
            report = _run(
                client,
                plan.store,
                plan.jobs,
                _for_workers(options),
                widths=_tss_widths(genes),
                threads=threads,
                retries=retries,
                on_done=finished,
                result=result,
            )
        except BaseException:
            flagger.flush(notify=False)  # their chunks are written: keep them for a re-run
            raise
        flagger.flush()
        report.emit()
    plan.finish()
    return result


def lock_path(output: str | Path) -> Path:
    """The lock file of a run building or appending to ``output``: ``.NAME.lock``."""
    out = Path(output)
    return out.with_name(f".{out.name}.lock")


@contextmanager
def _lock(output: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` (host and pid) while this client writes ``output`` or its partial
    dataset; a lock left by a dead process on this host is taken over."""
    import socket

    lock = lock_path(output)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock.read_text().strip() if lock.exists() else ""
            if not _stale(holder, socket.gethostname()):
                raise InputError(
                    f"another chromexpr bin ({holder or 'unknown process'}) is writing {output}",
                    path=lock,
                    fix="wait for it to finish, or delete the lock file if it is not running",
                ) from None
            logger.warning("removing the lock of a run that is no longer running (%s)", holder)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(me + "\n")
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _stale(holder: str, host: str) -> bool:
    """Whether a lock's ``host pid`` names a process of this host that no longer exists."""
    name, _, pid = holder.rpartition(" ")
    if name != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class _Plan:
    """The store to fill, its samples to bin, and how to record (a batch of task results) and
    finish them (client side)."""

    store: Path
    jobs: list[tuple[int, SampleSource]]
    skipped: list[str]
    record: Callable[[list[dict[str, Any]]], None]
    finish: Callable[[], None]


class _BatchFlagger:
    """Flags finished samples complete in batches, as their results reach the client.

    A flag write rewrites the ``sources`` attribute and the consolidated metadata, which grow with
    the samples: one write per sample costs time quadratic in the number of samples (measured:
    0.3 s per write at 1,000 samples, 195 s of writes in all). A batch is written once the time
    since the previous write is at least :data:`FLAG_WRITE_RATIO` times that write's duration,
    which keeps the writes under about a tenth of the client's time at any scale, and at the end.

    Parameters
    ----------
    record
        Writes a batch of task results (flags, sources, per-sample bookkeeping).
    on_flagged
        Called with each sample's name once its flag is written.
    """

    def __init__(
        self,
        record: Callable[[list[dict[str, Any]]], None],
        on_flagged: Callable[[str], None] | None,
    ) -> None:
        self.record = record
        self.on_flagged = on_flagged
        self.pending: list[dict[str, Any]] = []
        self.last_write_end = time.perf_counter()
        self.last_write_seconds = 0.0

    def add(self, item: dict[str, Any]) -> None:
        """Queue a finished sample; write the queue if the last write is long enough ago."""
        self.pending.append(item)
        since = time.perf_counter() - self.last_write_end
        if since >= FLAG_WRITE_RATIO * self.last_write_seconds:
            self.flush()

    def flush(self, *, notify: bool = True) -> None:
        """Write every queued sample's flag now (``notify``: then call ``on_flagged``)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        started = time.perf_counter()
        self.record(batch)
        self.last_write_end = time.perf_counter()
        self.last_write_seconds = self.last_write_end - started
        if notify and self.on_flagged is not None:
            for item in batch:
                self.on_flagged(item["sample"])


def _check_target(client: Any, address: str | None, workers: int | None) -> None:
    if sum(x is not None for x in (client, address, workers)) != 1:
        raise InputError(
            "give exactly one of a Dask client, a scheduler address and a number of workers",
            fix="--scheduler ADDRESS or --workers N",
        )
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1 (got {workers})")


def _for_workers(options: BinOptions) -> BinOptions:
    """Options with absolute paths (workers do not share the client's working directory)."""
    if options.regions is None:
        return options
    return replace(options, regions=Path(options.regions).resolve())


def _source_record(source: SampleSource, checksum: str) -> dict[str, Any]:
    """A sample's ``sources`` attribute, as the in-process pipeline writes it."""
    return {
        "path": str(source.path),
        "kind": source.kind,
        "column": source.column,
        "checksum": checksum,
    }


def _plan_new(
    genes: pd.DataFrame,
    sources: list[SampleSource],
    output: Path,
    options: BinOptions,
    provenance: dict[str, Any] | None,
    *,
    force: bool,
) -> _Plan:
    from chromexpr.atomic import check_writable

    check_writable(output, force=force)
    partial, jobs, done = _open_partial(output, genes, sources, options, provenance, force=force)
    by_index = dict(jobs)
    return _Plan(
        store=partial,
        jobs=jobs,
        skipped=done,
        record=lambda items: _record_partial_samples(partial, items, by_index),
        finish=lambda: _finish_partial(partial, output, genes, sources, options, force=force),
    )


def _plan_append(
    genes: pd.DataFrame, sources: list[SampleSource], output: Path, options: BinOptions
) -> _Plan:
    todo = _append_todo(genes, sources, output, options)
    names = {s.name for s in todo}
    indices = store.add_samples(output, [s.name for s in todo], [s.group for s in todo])
    jobs = list(zip(indices, todo, strict=True))
    by_index = dict(jobs)
    sizes: dict[str, dict[str, int]] = {}

    def record(items: list[dict[str, Any]]) -> None:
        flags = {r["index"]: _source_record(by_index[r["index"]], r["checksum"]) for r in items}
        store.mark_complete_many(output, flags)
        sizes.update({r["sample"]: r["chrom_sizes"] for r in items})

    def finish() -> None:
        merged = _merged_sizes(options, [s.name for s in todo], sizes)
        store.update_attrs(output, {"chrom_sizes": _chrom_sizes_for(genes, merged)})
        _ordered_sources(output, store.sample_states(output)[0])

    return _Plan(
        store=output,
        jobs=jobs,
        skipped=[s.name for s in sources if s.name not in names],
        record=record,
        finish=finish,
    )
