"""Binning on a dask.distributed cluster: same bytes as in-process, survives a dead worker, resumes
an interrupted run by binning only the missing samples, and needs dask only when asked for."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chromexpr.annotation.tss import TssOptions, load_tss
from chromexpr.binning.binner import BinSpec
from chromexpr.binning.pipeline import BinOptions, bin_dataset
from chromexpr.dataset import store
from chromexpr.errors import InputError
from chromexpr.io.samples import SampleSource, samples_from_paths

distributed = pytest.importorskip("distributed")

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TSS = FIXTURES / "signal_tss.bed"  # 11 genes on chr1, chr2, chr3
GEOMETRY = ("--flank", 2000, "--bin-size", 100, "--chunk-genes", 4)
OPTIONS = BinOptions(spec=BinSpec(flank=2000, bin_size=100), chunk_genes=4)


def make_inputs(directory: Path, n_bedgraphs: int = 5) -> list[Path]:
    """A bigWig, a narrowPeak and ``n_bedgraphs`` bedGraphs with different values."""
    import shutil

    directory.mkdir()
    lines = (FIXTURES / "signal_bedgraph.bedGraph").read_text().splitlines()[1:]
    files = [
        Path(shutil.copy(FIXTURES / "signal_bigwig.bw", directory / "A.bw")),
        Path(shutil.copy(FIXTURES / "signal_narrow.narrowPeak", directory / "B.narrowPeak")),
    ]
    for k in range(n_bedgraphs):
        rows = [
            f"{c}\t{s}\t{e}\t{float(v) * (k + 2) - k}"
            for i, (c, s, e, v) in enumerate(x.split("\t") for x in lines)
            if (i + k) % 4
        ]
        path = directory / f"G{k}.bedGraph"
        path.write_text("\n".join(rows) + "\n")
        files.append(path)
    return files


@pytest.fixture
def inputs(tmp_path) -> list[SampleSource]:
    return samples_from_paths(make_inputs(tmp_path / "inputs"))


@pytest.fixture(scope="module")
def genes():
    return load_tss(TSS, TssOptions())


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, shared by the tests that do not kill workers."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"NUMBA_NUM_THREADS": "1"},
        ) as cluster,
        # like chromexpr's own clients: not the process default, so no test can lean on it
        distributed.Client(cluster, set_as_default=False) as connected,
    ):
        # import chromexpr and load the cached kernels in each worker once, here
        connected.run(_warm_up)
        yield connected


@pytest.fixture(autouse=True)
def _no_default_client() -> Iterator[None]:
    """No test may leave (or find) a default Dask client: one would hide a code path that needs
    one, as ``as_completed`` did when called without the client's loop."""
    assert _default_client() is None, "a default Dask client exists before the test"
    yield
    assert _default_client() is None, "the test left a default Dask client behind"


def _default_client() -> object | None:
    try:
        return distributed.default_client()
    except ValueError:  # "No clients found"
        return None


def _warm_up() -> None:
    import chromexpr.binning.pipeline
    import chromexpr.io.signal  # noqa: F401


def reference(genes, sources: list[SampleSource], out: Path) -> Path:
    """The in-process result."""
    return bin_dataset(genes, sources, out, options=OPTIONS)


def chunk_files(dataset: Path) -> dict[str, bytes]:
    """Every stored file except metadata, by relative path."""
    return {
        str(p.relative_to(dataset)): p.read_bytes()
        for p in dataset.rglob("*")
        if p.is_file() and not p.name.startswith(".z")
    }


def assert_same_dataset(got: Path, want: Path) -> None:
    """Byte-identical chunks and coordinates, equal values, same attributes (provenance time
    aside)."""
    import xarray as xr

    assert chunk_files(got) == chunk_files(want)
    with xr.open_zarr(got) as g, xr.open_zarr(want) as w:
        assert g["openness"].dtype == np.float32
        assert g["openness"].values.tobytes() == w["openness"].values.tobytes()
        assert set(g.coords) == set(w.coords)
        for name in w.coords:
            np.testing.assert_array_equal(g[name].values, w[name].values)
    g_attrs, w_attrs = store.root_attrs(got), store.root_attrs(want)
    for attrs in (g_attrs, w_attrs):
        attrs["provenance"].pop("created")
        attrs["provenance"].pop("command")  # a fresh process's argv, pytest's in-process
    assert g_attrs == w_attrs
    assert list(g_attrs["sources"]) == list(w_attrs["sources"])  # sample order, not arrival
    assert store.sample_states(got)[1].all()


def test_local_cluster_equals_in_process(client, genes, inputs, tmp_path) -> None:
    from chromexpr.binning.distributed import bin_dataset_on_dask, partial_paths

    want = reference(genes, inputs, tmp_path / "inproc.zarr")
    out = tmp_path / "dask.zarr"
    result = bin_dataset_on_dask(genes, inputs, out, options=OPTIONS, client=client)
    assert result.path == out and sorted(result.computed) == sorted(s.name for s in inputs)
    assert result.skipped == []
    assert len(result.max_rss) >= 1 and min(result.max_rss.values()) > 10_000_000
    assert_same_dataset(out, want)
    assert partial_paths(out) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # the dataset has values: not all zero, and different across samples
    values = np.asarray(store.open_dataset(out).read_block(slice(None), range(len(inputs))))
    assert values.any() and not np.array_equal(values[:, 2], values[:, 3])


def test_appending_on_the_cluster_equals_in_process(client, genes, inputs, tmp_path) -> None:
    from chromexpr.binning.distributed import bin_dataset_on_dask

    want = reference(genes, inputs, tmp_path / "inproc.zarr")
    out = reference(genes, inputs[:3], tmp_path / "dask.zarr")
    result = bin_dataset_on_dask(genes, inputs, out, options=OPTIONS, client=client, append=True)
    assert result.skipped == [s.name for s in inputs[:3]]
    assert sorted(result.computed) == sorted(s.name for s in inputs[3:])
    got_attrs, want_attrs = store.root_attrs(out), store.root_attrs(want)
    assert got_attrs["sources"] == want_attrs["sources"]
    assert list(got_attrs["sources"]) == list(want_attrs["sources"])
    assert chunk_files(out) == chunk_files(want)


def test_interrupted_run_resumes_with_the_missing_samples_only(
    client, genes, inputs, tmp_path, monkeypatch
) -> None:
    from chromexpr.binning import distributed as dask_binning
    from chromexpr.binning.distributed import bin_dataset_on_dask, partial_paths

    monkeypatch.setattr(dask_binning, "FLAG_WRITE_RATIO", 0.0)  # flag each sample on arrival
    out = tmp_path / "dask.zarr"
    done: list[str] = []

    def interrupt_after_two(name: str) -> None:
        done.append(name)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bin_dataset_on_dask(
            genes, inputs, out, options=OPTIONS, client=client, on_sample_done=interrupt_after_two
        )
    assert not out.exists()  # nothing presented as a dataset
    [partial] = partial_paths(out)
    names, complete = store.sample_states(partial)
    assert names == [s.name for s in inputs]
    assert sorted(np.asarray(names)[complete].tolist()) == sorted(done)
    assert store.open_dataset(partial).samples == [n for n in names if n in done]
    done_index = {names.index(n) for n in done}
    kept = {  # chunk files openness/GENEBLOCK.SAMPLE.0 of the complete samples
        f"openness/{p.name}": p.stat().st_mtime_ns
        for p in (partial / "openness").iterdir()
        if re.fullmatch(r"\d+\.\d+\.0", p.name) and int(p.name.split(".")[1]) in done_index
    }
    assert len(kept) == 2 * 3  # 11 genes in chunks of 4: 3 chunk files per sample

    result = bin_dataset_on_dask(genes, inputs, out, options=OPTIONS, client=client)
    assert sorted(result.skipped) == sorted(done)
    assert sorted(result.computed) == sorted(set(names) - set(done))
    for rel, mtime in kept.items():  # the complete samples' chunks were not rewritten
        assert (out / rel).stat().st_mtime_ns == mtime
    assert not partial.exists()
    assert_same_dataset(out, reference(genes, inputs, tmp_path / "inproc.zarr"))


def test_a_partial_dataset_with_other_parameters_is_not_reused(
    client, genes, inputs, tmp_path
) -> None:
    from chromexpr.binning.distributed import bin_dataset_on_dask, partial_paths

    out = tmp_path / "dask.zarr"

    def interrupt(name: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bin_dataset_on_dask(
            genes, inputs, out, options=OPTIONS, client=client, on_sample_done=interrupt
        )
    other = BinOptions(spec=BinSpec(flank=2000, bin_size=100, aggregate="max"), chunk_genes=4)
    with pytest.raises(InputError, match=r"other parameters or inputs.*--force"):
        bin_dataset_on_dask(genes, inputs, out, options=other, client=client)
    assert len(partial_paths(out)) == 1 and not out.exists()  # kept for the original command
    result = bin_dataset_on_dask(genes, inputs, out, options=other, client=client, force=True)
    assert result.skipped == [] and len(result.computed) == len(inputs)
    want = bin_dataset(genes, inputs, tmp_path / "inproc.zarr", options=other)
    assert_same_dataset(out, want)


def test_a_changed_input_of_a_complete_sample_is_binned_again(
    client, genes, inputs, tmp_path
) -> None:
    from chromexpr.binning.distributed import bin_dataset_on_dask

    out = tmp_path / "dask.zarr"
    first: list[str] = []

    def interrupt(name: str) -> None:
        first.append(name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bin_dataset_on_dask(
            genes, inputs, out, options=OPTIONS, client=client, on_sample_done=interrupt
        )
    changed = next(s for s in inputs if s.name == first[0])
    if changed.kind == "bedgraph":  # a different value in the first interval
        lines = changed.path.read_text().splitlines()
        c, s, e, v = lines[0].split("\t")
        changed.path.write_text("\n".join([f"{c}\t{s}\t{e}\t{float(v) + 5}", *lines[1:]]) + "\n")
    else:  # same bytes, newer time: binned again all the same
        os.utime(changed.path, ns=(1, 1))
    result = bin_dataset_on_dask(genes, inputs, out, options=OPTIONS, client=client)
    assert result.skipped == [] and first[0] in result.computed
    assert_same_dataset(out, reference(genes, inputs, tmp_path / "inproc.zarr"))


def test_a_bad_input_fails_alone_and_the_rerun_bins_only_it(
    client, genes, inputs, tmp_path
) -> None:
    import shutil

    from chromexpr.binning.distributed import bin_dataset_on_dask, partial_paths

    out = tmp_path / "dask.zarr"
    bad = inputs[0]  # A.bw, replaced by a truncated bigWig
    good_copy = shutil.copy(bad.path, tmp_path / "good.bw")
    shutil.copy(FIXTURES / "signal_truncated.bw", bad.path)
    with pytest.raises(InputError, match=r"A\.bw"):  # bad input: reported, not retried
        bin_dataset_on_dask(genes, inputs, out, options=OPTIONS, client=client)
    [partial] = partial_paths(out)
    names, complete = store.sample_states(partial)
    assert not out.exists()
    assert [n for n, done in zip(names, complete, strict=True) if not done] == ["A"]
    shutil.copy(good_copy, bad.path)
    result = bin_dataset_on_dask(genes, inputs, out, options=OPTIONS, client=client)
    assert result.computed == ["A"] and sorted(result.skipped) == sorted(names[1:])
    assert_same_dataset(out, reference(genes, inputs, tmp_path / "inproc.zarr"))


def test_worker_warnings_reach_the_client_log(client, genes, helpers, tmp_path, caplog) -> None:
    from chromexpr.binning.distributed import bin_dataset_on_dask

    nan = helpers.write_bigwig(
        tmp_path / "N.bw",
        {"chr1": 60000, "chr2": 25000},
        {"chr1": ([100, 1000, 20000], [600, 1500, 20100], [2.0, float("nan"), 4.0])},
    )
    sources = samples_from_paths([nan])
    with caplog.at_level("WARNING", logger="chromexpr"):
        bin_dataset_on_dask(genes, sources, tmp_path / "dask.zarr", options=OPTIONS, client=client)
    messages = [r.getMessage() for r in caplog.records if r.name == "chromexpr"]
    assert any("1 interval(s) with NaN values treated as no data" in m for m in messages)
    assert any("absent from the signal of 1 sample(s)" in m for m in messages)  # chr3
    want = bin_dataset(genes, sources, tmp_path / "inproc.zarr", options=OPTIONS)
    assert_same_dataset(tmp_path / "dask.zarr", want)


def test_one_run_at_a_time_per_output(client, genes, inputs, tmp_path, caplog) -> None:
    import socket

    from chromexpr.binning.distributed import bin_dataset_on_dask, lock_path

    out = tmp_path / "dask.zarr"
    lock = lock_path(out)
    lock.write_text(f"{socket.gethostname()} {os.getpid()}\n")  # a live run
    with pytest.raises(InputError, match="another chromexpr bin"):
        bin_dataset_on_dask(genes, inputs[:1], out, options=OPTIONS, client=client)
    assert lock.exists() and not out.exists()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    lock.write_text(f"{socket.gethostname()} {finished.pid}\n")  # a run that died
    with caplog.at_level("WARNING", logger="chromexpr"):
        bin_dataset_on_dask(genes, inputs[:1], out, options=OPTIONS, client=client)
    assert "no longer running" in caplog.text and not lock.exists()
    assert store.open_dataset(out).samples == [inputs[0].name]


def test_flags_are_written_in_batches_that_bound_their_cost() -> None:
    import time

    from chromexpr.binning.distributed import FLAG_WRITE_RATIO, _BatchFlagger

    writes: list[list[str]] = []
    flagged: list[str] = []

    def record(batch) -> None:
        time.sleep(0.2)  # a slow write: the next one waits FLAG_WRITE_RATIO x 0.2 s
        writes.append([item["sample"] for item in batch])

    flagger = _BatchFlagger(record, flagged.append)
    names = [f"S{i}" for i in range(20)]
    for name in names:
        flagger.add({"sample": name})
    assert FLAG_WRITE_RATIO * 0.2 >= 1.0
    assert writes == [["S0"]] and flagged == ["S0"]  # the first at once, the rest queued
    flagger.flush()
    assert writes == [["S0"], names[1:]] and flagged == names
    flagger.flush()  # nothing queued: no write
    assert len(writes) == 2


class KillSecondTask(distributed.WorkerPlugin):
    """Make one worker process die (os._exit) as its second sample starts, once per test."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.finished = 0

    def transition(self, key, start, finish, **kwargs) -> None:
        if not str(key).startswith("chromexpr-bin-"):
            return
        if start == "executing" and finish == "memory":
            self.finished += 1
        elif finish == "executing" and self.finished >= 1:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            os._exit(1)


@pytest.mark.slow
def test_a_worker_dying_mid_run_is_replaced_and_the_result_is_the_same(
    client, genes, tmp_path
) -> None:
    from chromexpr.binning.distributed import bin_dataset_on_dask

    sources = samples_from_paths(make_inputs(tmp_path / "inputs", n_bedgraphs=6))
    marker = tmp_path / "killed"
    out = tmp_path / "dask.zarr"
    client.register_plugin(KillSecondTask(str(marker)), name="kill-second-task")
    try:
        result = bin_dataset_on_dask(genes, sources, out, options=OPTIONS, client=client)
    finally:
        client.unregister_worker_plugin("kill-second-task")
    assert marker.exists(), "no worker was killed"
    assert sorted(result.computed) == sorted(s.name for s in sources)
    assert_same_dataset(out, reference(genes, sources, tmp_path / "inproc.zarr"))


@pytest.mark.slow
def test_cli_workers_end_to_end(cli, fresh_cli, tmp_path) -> None:
    """The documented scale-out command, from a fresh process (no client left by other tests)."""
    files = make_inputs(tmp_path / "inputs", n_bedgraphs=2)
    want, got = tmp_path / "inproc.zarr", tmp_path / "dask.zarr"
    cli("bin", TSS, *files, "-o", want, *GEOMETRY, "-q")
    result = fresh_cli("bin", TSS, *files, "-o", got, *GEOMETRY, "--workers", 2, "--retries", 1)
    assert "local Dask cluster: 2 worker process(es)" in result.stderr
    assert "Traceback" not in result.stderr
    assert_same_dataset(got, want)
    # without --force the dataset is not replaced, and nothing is started
    again = fresh_cli("bin", TSS, *files, "-o", got, *GEOMETRY, "--workers", 2, expect=2)
    assert "pass --force" in again.stderr and "Dask cluster" not in again.stderr


def test_cli_scheduler_address_and_file(cli, fresh_cli, client, tmp_path) -> None:
    files = make_inputs(tmp_path / "inputs", n_bedgraphs=1)
    want = tmp_path / "inproc.zarr"
    cli("bin", TSS, *files, "-o", want, *GEOMETRY, "-q")
    address = client.scheduler.address
    by_address = tmp_path / "address.zarr"
    fresh_cli("bin", TSS, *files, "-o", by_address, *GEOMETRY, "--scheduler", address, "-q")
    assert_same_dataset(by_address, want)
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"type": "Scheduler", "address": address}))
    by_file = tmp_path / "file.zarr"
    fresh_cli("bin", TSS, *files, "-o", by_file, *GEOMETRY, "--scheduler", scheduler_file, "-q")
    assert_same_dataset(by_file, want)


def test_cli_option_errors(cli, helpers, tmp_path) -> None:
    bw = FIXTURES / "signal_bigwig.bw"
    out = tmp_path / "ds.zarr"
    both = cli("bin", TSS, bw, "-o", out, "--workers", 2, "--scheduler", "tcp://x:1", expect=None)
    helpers.error_line(both, "--scheduler and --workers are exclusive")
    zero = cli("bin", TSS, bw, "-o", out, "--workers", 0, expect=None)
    helpers.error_line(zero, "--workers must be at least 1")
    nowhere = cli("bin", TSS, bw, "-o", out, "--scheduler", tmp_path / "none.json", expect=None)
    helpers.error_line(nowhere, "neither a scheduler address nor an existing file")
    helpers.assert_nothing_written(out)  # no partial dataset: the cluster is reached first
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        unreachable = cli("bin", TSS, bw, "-o", out, "--scheduler", f"tcp://127.0.0.1:{port}",
                          expect=None)  # fmt: skip
    helpers.error_line(unreachable, "cannot reach the Dask scheduler")
    helpers.assert_nothing_written(out)


def test_missing_dask_is_one_line_with_the_install_command(
    cli, helpers, monkeypatch, tmp_path
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = tmp_path / "ds.zarr"
    result = cli("bin", TSS, FIXTURES / "signal_bigwig.bw", "-o", out, "--workers", 2, expect=None)
    helpers.error_line(result, "dask.distributed", "pip install 'chromexpr[dask]'")
    helpers.assert_nothing_written(out)


def test_help_does_not_import_dask() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from chromexpr.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['bin', '--help']).exit_code == 0\n"
        "print(','.join(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
