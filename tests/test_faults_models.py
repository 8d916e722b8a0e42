"""Fault battery of the model stages: damaged and malicious model files, outputs that cannot be
written, bad options and lost data. Every case runs ``python -m chromexpr`` in a fresh process and
asserts the exit code, one ``chromexpr: error:`` line naming the file, and an unchanged file tree
(nothing half-written, nothing lost)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from planted import Planted, make_planted

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return make_planted(tmp_path_factory.mktemp("planted"), n_genes=12, n_samples=8, n_groups=2)


@pytest.fixture(scope="module")
def models(planted: Planted, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A lasso and a small fc model, trained once (in this process: setup, not under test)."""
    from typer.testing import CliRunner

    from chromexpr.cli import app

    root = tmp_path_factory.mktemp("models")
    runs = {
        "lasso": ["--model", "lasso"],
        "fc": ["--model", "fc", "--hidden", "16", "--epochs", "2", "--backbone", "none"],
    }
    out = {}
    for name, args in runs.items():
        target = root / name
        base = ["train", str(planted.dataset), "-e", str(planted.expression), "-o", str(target)]
        result = CliRunner().invoke(app, [*base, *args, "-q", "--threads", "1"])
        assert result.exit_code == 0, result.output
        out[name] = target
    return out


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones included) with the sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_line(result, *fragments: str, code: int = 2) -> str:
    """A clean failure: ``code``, no traceback, exactly one error line holding every fragment."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Aborted" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("chromexpr: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def copy_model(models: dict[str, Path], name: str, tmp_path: Path) -> Path:
    target = tmp_path / f"{name}_model"
    shutil.copytree(models[name], target)
    return target


def edit_arrays(model: Path, change: Callable[[dict[str, np.ndarray]], object]) -> None:
    with np.load(model / "model.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(model / "model.npz", **arrays)


def edit_config(model: Path, change: Callable[[dict], object]) -> None:
    """Replace config.json by ``change(config)`` (which may edit the dict it is given)."""
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(change(config)))


def _with(config: dict, key: str, value: object) -> dict:
    """``config`` with the dotted ``key`` set to ``value`` (deleted when ``value`` is ...)."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return config


# --------------------------------------------------------------------------------------------
# damaged and malicious model files: each refused on load, by predict and evaluate alike


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


class _Payload:
    """Unpickling this runs ``touch PATH`` (if anything unpickled it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def _object_array(model: Path) -> None:
    """An array of Python objects in model.npz whose unpickling would run code."""
    with np.load(model / "model.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(model.parent / "code_ran")
    arrays["model__coef"] = payload
    np.savez(model / "model.npz", allow_pickle=True, **arrays)


def _lone_npy(path: Path) -> None:
    """One array in .npy format under the archive's name (np.save would add ``.npy``)."""
    with path.open("wb") as handle:
        np.save(handle, np.zeros(3), allow_pickle=False)


NPZ_FAULTS: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated": (lambda m: _truncate(m / "model.npz"), "truncated or damaged"),
    "empty": (lambda m: (m / "model.npz").write_bytes(b""), "empty file"),
    "random bytes": (
        lambda m: (m / "model.npz").write_bytes(np.random.default_rng(1).bytes(4096)),
        "not a complete numpy .npz archive",
    ),
    "train_mean missing": (
        lambda m: edit_arrays(m, lambda a: a.pop("train_mean")),
        "'train_mean'",
    ),
    "train_mean too short": (
        lambda m: edit_arrays(m, lambda a: a.update(train_mean=a["train_mean"][:5])),
        "'train_mean' of model lasso has shape (5,), expected (12,)",
    ),
    "offset too long": (
        lambda m: edit_arrays(m, lambda a: a.update(model__offset=np.zeros(20))),
        "'offset' of model lasso has shape (20,)",
    ),
    "object array": (lambda m: _object_array(m), "Python objects"),
    "a lone .npy array": (
        lambda m: _lone_npy(m / "model.npz"),
        "one numpy array, not the .npz archive",
    ),
}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("fault", sorted(NPZ_FAULTS))
def test_a_damaged_model_npz_is_one_line_naming_it(
    fault: str, command: str, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    model = copy_model(models, "lasso", tmp_path)
    damage, fragment = NPZ_FAULTS[fault]
    damage(model)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    args = [model, planted.dataset, "-o", out]
    if command == "evaluate":
        args += ["-e", planted.expression]
    result = fresh_cli(command, *args, expect=None)
    line = one_line(result, f"{model}/model.npz", fragment)
    assert "allow_pickle" not in line and "pickle.load" not in line
    assert not (tmp_path / "code_ran").exists()
    assert snapshot(tmp_path) == before


def _malicious_weights(path: Path, marker: Path) -> None:
    """A torch file whose unpickling would run ``touch MARKER`` (if anything ran it)."""
    import os

    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"body.0.weight": Payload()}, path)


def test_weights_with_a_pickled_global_are_refused_and_nothing_runs(
    models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    model = copy_model(models, "fc", tmp_path)
    marker = tmp_path / "code_ran"
    _malicious_weights(model / "weights.pt", marker)
    before = snapshot(tmp_path)
    result = fresh_cli("predict", model, planted.dataset, "-o", tmp_path / "p.tsv", expect=None)
    line = one_line(result, f"{model}/weights.pt", "refused, nothing in it ran")
    assert "weights_only" not in line  # torch's advice to load it unsafely is not passed on
    assert not marker.exists()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ("truncated", "truncated or damaged (not a complete torch archive)"),
        ("garbage", "holds something other than plain tensors"),
        ("empty", "empty file"),
    ],
)
def test_damaged_weights_are_one_line_naming_them(
    fault: str, fragment: str, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    model = copy_model(models, "fc", tmp_path)
    weights = model / "weights.pt"
    if fault == "truncated":
        _truncate(weights)
    elif fault == "garbage":
        weights.write_bytes(np.random.default_rng(2).bytes(2000))
    else:
        weights.write_bytes(b"")
    before = snapshot(tmp_path)
    result = fresh_cli("predict", model, planted.dataset, "-o", tmp_path / "p.tsv", expect=None)
    one_line(result, f"{model}/weights.pt", fragment)
    assert snapshot(tmp_path) == before


CONFIG_FAULTS: dict[str, tuple[Callable[[dict], object], str, str]] = {
    # the pooled lasso's files under the name of another family
    "model renamed": (
        lambda c: _with(c, "model", "activity"),
        "model.npz",
        "array 'weights' that model activity needs is missing",
    ),
    "genes deleted": (lambda c: _with(c, "genes", ...), "config.json", "key 'genes' is missing"),
    "a JSON list": (lambda c: [c], "config.json", "is a list, not a JSON object"),
    "n_bins a string": (
        lambda c: _with(c, "dataset.geometry.n_bins", "20"),
        "config.json",
        "key 'dataset.geometry.n_bins' must be an integer",
    ),
    "genes cut short": (
        lambda c: _with(c, "genes.ids", c["genes"]["ids"][:3]),
        "config.json",
        "genes: n, ids, names and chroms disagree",
    ),
}


@pytest.mark.parametrize("fault", sorted(CONFIG_FAULTS))
def test_a_hand_edited_config_is_one_line_naming_the_file(
    fault: str, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    model = copy_model(models, "lasso", tmp_path)
    change, name, fragment = CONFIG_FAULTS[fault]
    edit_config(model, change)
    before = snapshot(tmp_path)
    result = fresh_cli("predict", model, planted.dataset, "-o", tmp_path / "p.tsv", expect=None)
    one_line(result, f"{model}/{name}", fragment)
    assert snapshot(tmp_path) == before


def test_an_fc_config_that_no_longer_matches_its_weights(
    models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    model = copy_model(models, "fc", tmp_path)
    edit_config(model, lambda c: _with(c, "params.hidden", [16, 16]))
    result = fresh_cli("predict", model, planted.dataset, "-o", tmp_path / "p.tsv", expect=None)
    one_line(result, f"{model}/weights.pt", "does not fit the network config.json describes")


# --------------------------------------------------------------------------------------------
# an output under a regular file: refused before any work, for every writing command


def _writing_commands(planted: Planted, models: dict[str, Path], root: Path) -> dict[str, list]:
    lasso = models["lasso"]
    return {
        "train": ["train", planted.dataset, "-e", planted.expression, "--model", "lasso"],
        "predict": ["predict", lasso, planted.dataset],
        "evaluate": ["evaluate", lasso, planted.dataset, "-e", planted.expression],
        "attribute": ["attribute", lasso, planted.dataset],
        "export": ["export", planted.dataset],
        "tss": ["tss", FIXTURES / "signal_tss.bed"],
        "report": ["report", root / "no_such_eval"],
    }


@pytest.mark.parametrize(
    "command", ["train", "predict", "evaluate", "attribute", "export", "tss", "report"]
)
def test_an_output_under_a_file_is_refused_before_any_work(
    command: str, planted: Planted, models, fresh_cli, tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    before = snapshot(tmp_path)
    args = _writing_commands(planted, models, tmp_path)[command]
    result = fresh_cli(*args, "-o", afile / "out", expect=None)
    one_line(result, str(afile), "is a file, not a directory")
    # checked first: the report's missing input is not what is reported
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# interrupted runs: checkpoints kept, --resume checked, outputs whole or absent


def _start(*args: object) -> subprocess.Popen[str]:
    """``python -m chromexpr ARGS`` started in a fresh process (not waited for)."""
    command = [sys.executable, "-m", "chromexpr", *(str(a) for a in args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_an_interrupted_fc_run_keeps_its_checkpoints_and_resume_checks_them(
    planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    checkpoints = tmp_path / "m.checkpoints"
    fc = ["--model", "fc", "--backbone", "none", "--patience", "0", "--threads", "1", "-q"]
    train = ["train", planted.dataset, "-e", planted.expression, "-o", out, *fc]
    process = _start(*train, "--hidden", "8", "--epochs", "100000")
    _wait_for(checkpoints / "main" / "checkpoint.pt", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists()
    kept = snapshot(tmp_path)
    assert "m.checkpoints/main/checkpoint.pt" in kept
    # a new run does not delete them silently, even with --force when its input is missing
    again = fresh_cli(*train, "--hidden", "8", expect=None)
    one_line(again, str(checkpoints), "interrupted run", "--resume", "--force")
    missing = [a if a != planted.expression else tmp_path / "none.tsv" for a in train]
    lost = fresh_cli(*missing, "--hidden", "8", "--force", expect=None)
    one_line(lost, "none.tsv")
    assert snapshot(tmp_path) == kept
    # resuming with another architecture names the setting
    other = fresh_cli(*train, "--hidden", "16", "--resume", expect=None)
    one_line(other, str(checkpoints), "params.hidden: [8] then, [16] now")
    # a damaged checkpoint is one line with the way out
    _truncate(checkpoints / "main" / "checkpoint.pt")
    damaged = fresh_cli(*train, "--hidden", "8", "--resume", expect=None)
    one_line(damaged, "checkpoint.pt", "checkpoint is damaged", "--force")
    assert not out.exists()


def _complete_evaluation(directory: Path) -> bool:
    names = {p.name for p in directory.iterdir()}
    return {"metrics.tsv", "per_gene.tsv", "predictions.tsv", "model.json"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 2.0, 4.0])
def test_evaluate_killed_at_any_time_leaves_the_old_evaluation_or_a_whole_new_one(
    delay: float, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    evaluate = ["evaluate", models["lasso"], planted.dataset, "-e", planted.expression, "-o", out]
    fresh_cli(*evaluate, "-q")
    old = snapshot(out)
    process = _start(*evaluate, "-q", "--force", "--splits", "test")
    time.sleep(delay)
    process.kill()
    process.communicate(timeout=60)
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert visible == ["eval"]
    assert snapshot(out) == old or _complete_evaluation(out)


def test_evaluate_checks_every_input_before_writing(
    models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    evaluate = ["evaluate", models["lasso"], planted.dataset, "-e", planted.expression, "-o", out]
    for option in ("--truth", "--noise-free"):
        result = fresh_cli(*evaluate, option, tmp_path / "missing.tsv", expect=None)
        one_line(result, "missing.tsv", f"{option} file not found")
        assert not out.exists()
    fresh_cli(*evaluate, "-q")
    old = snapshot(out)
    forced = fresh_cli(*evaluate, "--force", "--truth", tmp_path / "missing.tsv", expect=None)
    one_line(forced, "missing.tsv")
    assert snapshot(out) == old  # --force replaces an evaluation only with a finished one


# --------------------------------------------------------------------------------------------
# a dataset that lost or damaged a chunk: never read as zeros


def _chunk_of(dataset: Path, block: int, sample: int) -> Path:
    """Chunk ``(gene block, sample, 0)`` of the openness array (Zarr v2, ``.`` separator)."""
    path = dataset / "openness" / f"{block}.{sample}.0"
    assert path.is_file(), path
    return path


@pytest.mark.parametrize("damage", ["missing", "garbage"])
@pytest.mark.parametrize("command", ["predict", "info", "export"])
def test_a_lost_or_damaged_chunk_names_the_dataset_chunk_and_sample(
    damage: str, command: str, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    dataset = tmp_path / "ds.zarr"
    shutil.copytree(planted.dataset, dataset)
    chunk = _chunk_of(dataset, 0, 3)
    if damage == "missing":
        chunk.unlink()
    else:
        chunk.write_bytes(np.random.default_rng(3).bytes(64))
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    args = {
        "predict": ["predict", models["lasso"], dataset, "-o", out],
        "info": ["info", dataset],
        "export": ["export", dataset, "-o", out],
    }[command]
    result = fresh_cli(*args, expect=None)
    what = "is missing" if damage == "missing" else "cannot be decoded"
    one_line(result, str(dataset), "chunk 0.3.0 of sample S03", what)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# options checked before any data is read; inputs that would give empty or wrong outputs


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--hidden", "0"], "--hidden takes layer widths >= 1"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["--alpha", "-1"], "'--alpha'"),
        (["--folds", "0"], "'--folds'"),
        (["--epochs", "0"], "'--epochs'"),
        (["--batch-size", "0"], "'--batch-size'"),
        (["--window", "0"], "'--window'"),
        (["--inner-folds", "1"], "'--inner-folds'"),
        (["--betas", "0.9"], "--betas takes two numbers in [0, 1)"),
        (["--lr", "0"], "--lr must be > 0"),
    ],
)
def test_train_options_are_checked_before_the_data_is_read(
    option: list[str], fragment: str, fresh_cli, tmp_path: Path
) -> None:
    # neither the dataset nor the expression exists: the option is what must be reported
    args = ["train", tmp_path / "none.zarr", "-e", tmp_path / "none.tsv", "-o", tmp_path / "m"]
    result = fresh_cli(*args, *option, expect=2)
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr, result.stderr
    assert "none.zarr" not in result.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("samples", "code", "fragment"),
    [
        ("S01,S01", 2, "sample(s) named more than once: S01"),
        ("", 2, "--samples names no sample"),
    ],
)
def test_predict_refuses_repeated_or_empty_sample_lists(
    samples: str, code: int, fragment: str, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    out = tmp_path / "p.tsv"
    args = ["predict", models["lasso"], planted.dataset, "-o", out, "--samples", samples]
    result = fresh_cli(*args, expect=code)
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_attribute_refuses_chromosome_sizes_that_end_before_the_genes(
    models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    sizes = tmp_path / "small.sizes"
    sizes.write_text("chr1\t1000\nchr2\t1000\nchr3\t1000\n")  # the genes sit at 1 Mb and beyond
    out = tmp_path / "attr"
    args = ["attribute", models["lasso"], planted.dataset, "-o", out, "--chrom-sizes", sizes]
    result = fresh_cli(*args, expect=None)
    one_line(result, "12 gene TSS(s) lie beyond the end of their chromosome", "size 1000")
    assert not out.exists()


def test_a_dataset_without_a_complete_sample_is_not_exported(
    planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    from chromexpr.dataset.store import add_samples, create_store, open_dataset

    source = open_dataset(planted.dataset)
    genes = source.genes.rename(columns={"gene_id": "name", "tss": "start"})
    dataset = tmp_path / "empty.zarr"
    create_store(dataset, genes, source.spec, chunk_genes=16)
    add_samples(dataset, ["A"], [""])  # added, never completed
    out = tmp_path / "m.gz"
    result = fresh_cli("export", dataset, "-o", out, expect=None)
    one_line(result, str(dataset), "no complete sample")
    assert not out.exists()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.mkdir(), "no Zarr group here"),
        (lambda p: p.write_text("x\n"), "a file, where 'chromexpr bin' writes a directory"),
    ],
)
def test_info_on_a_non_dataset_is_plain_words(
    make: Callable[[Path], object], fragment: str, fresh_cli, tmp_path: Path
) -> None:
    target = tmp_path / "thing"
    make(target)
    line = one_line(fresh_cli("info", target, expect=None), str(target), fragment)
    assert "Error)" not in line  # no exception class names (GroupNotFoundError, ...)


def test_one_sample_with_expression_is_refused(planted: Planted, fresh_cli, tmp_path: Path) -> None:
    lines = planted.expression.read_text().splitlines()
    one = tmp_path / "one.tsv"
    one.write_text("".join("\t".join(line.split("\t")[:3]) + "\n" for line in lines))
    out = tmp_path / "m"
    result = fresh_cli(
        "train", planted.dataset, "-e", one, "--model", "mean", "-o", out, expect=None
    )
    one_line(result, str(one), "only 1 of the dataset's 8 samples has expression (S00)")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_attribute_terminated_at_any_time_leaves_the_old_output_or_a_whole_new_one(
    delay: float, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    sizes = tmp_path / "genome.sizes"
    sizes.write_text("chr1\t5000000\nchr2\t5000000\nchr3\t5000000\n")
    out = tmp_path / "attr"
    attribute = ["attribute", models["lasso"], planted.dataset, "-o", out, "--chrom-sizes", sizes]
    fresh_cli(*attribute, "-q")
    old = snapshot(out)
    process = _start(*attribute, "-q", "--force", "--top-k", "3")
    time.sleep(delay)
    process.terminate()  # SIGTERM, as a batch scheduler's time limit sends
    _, stderr = process.communicate(timeout=60)
    # -15: the signal came before the command started (imports) or after it ended (exit)
    assert process.returncode in (0, 143, -15), stderr
    assert "Traceback" not in stderr
    if process.returncode == 143:
        assert "terminated; partial outputs were removed" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attr", "genome.sizes"]  # no leftovers
    complete = (out / "attribution.json").is_file() and (out / "links.bedpe").is_file()
    assert snapshot(out) == old or complete


@pytest.mark.slow
def test_train_terminated_keeps_checkpoints_and_writes_no_model(
    planted: Planted, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    process = _start(
        *["train", planted.dataset, "-e", planted.expression, "-o", out, "--model", "fc"],
        *["--hidden", "8", "--epochs", "100000", "--patience", "0", "--backbone", "none", "-q"],
    )
    _wait_for(tmp_path / "m.checkpoints" / "main" / "checkpoint.pt", process)
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.checkpoints"]


@pytest.mark.parametrize("command", ["predict", "evaluate", "attribute"])
def test_a_dataset_of_another_geometry_is_refused(
    command: str, models, planted: Planted, fresh_cli, tmp_path: Path
) -> None:
    from chromexpr.binning.binner import BinSpec
    from chromexpr.dataset.store import (
        add_samples,
        create_store,
        mark_complete,
        open_dataset,
        write_sample,
    )

    source = open_dataset(planted.dataset)
    genes = source.genes.rename(columns={"gene_id": "name", "tss": "start"})
    dataset = tmp_path / "other.zarr"
    spec = BinSpec(flank=5000, bin_size=1000)  # the model was trained on 10 kb flanks
    create_store(dataset, genes, spec, chunk_genes=16)
    for i in add_samples(dataset, source.samples, source.groups):
        write_sample(dataset, i, np.ones((source.n_genes, spec.n_bins), dtype=np.float32))
        mark_complete(dataset, i)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    args = [command, models["lasso"], dataset, "-o", out]
    if command == "evaluate":
        args += ["-e", planted.expression]
    one_line(
        fresh_cli(*args, expect=None), str(dataset), "bin geometry differs", "flank 10000 vs 5000"
    )
    assert snapshot(tmp_path) == before
