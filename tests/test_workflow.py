"""workflow/Snakefile end to end: tss -> bin per sample -> merge -> train -> evaluate -> attribute
-> report on a small simulated data set, with ``snakemake --cores 2``.

Snakemake runs in a subprocess (its Python API changes between major versions; the command line
is what users and cluster profiles run). The checks: every output is there, the merged dataset
equals binning all samples in one run, a finished run is a no-op for ``snakemake -n``, and
retraining gives byte-identical tables.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("snakemake", reason="the workflow test needs Snakemake (pip install snakemake)")

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
COMMANDS = ("tss", "bin", "merge", "train", "evaluate", "attribute", "report")
FLANK, BIN_SIZE = 50_000, 1_000


def chromexpr_command(tmp_path: Path) -> str:
    """``python -m chromexpr``, or, while some of the workflow's commands are not registered in
    ``chromexpr.cli`` yet, a wrapper script that imports their modules first.

    Asked in a fresh interpreter: test modules of this process may have registered commands.
    """
    python = shlex.quote(sys.executable)
    probe = "from chromexpr.cli import app; print(*(c.name for c in app.registered_commands))"
    listed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    missing = [c for c in COMMANDS if c not in listed]
    if not missing:
        return f"{python} -m chromexpr"
    wrapper = tmp_path / "chromexpr_wrapper.py"
    wrapper.write_text(
        "".join(f"import chromexpr.cli.{name}\n" for name in missing)
        + "from chromexpr.cli import main\n\nmain()\n"
    )
    return f"{python} {shlex.quote(str(wrapper))}"


def snakemake(work: Path, config: Path, *args: str) -> str:
    """Run Snakemake on the workflow; return its output (fail with it on a non-zero exit)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(work.parent / "cache")}
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--configfile"]
    command += [str(config), "--directory", str(work), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        logs = "".join(
            f"\n--- {p.relative_to(work)}\n{p.read_text()}"
            for p in sorted(work.rglob("logs/**/*.log"))
        )
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{output[-6000:]}{logs}")
    return output


def write_config(path: Path, sim: Path, chromexpr: str, attributed: list[str]) -> Path:
    import yaml

    samples = [
        line.split("\t") for line in (sim / "samples.tsv").read_text().splitlines()[1:] if line
    ]
    config = {
        "samples": [
            {"name": name, "path": f"sim/{rel}", "group": group} for name, rel, group in samples
        ],
        "annotation": "sim/annotation.gtf.gz",
        "expression": "sim/expression/salmon.merged.gene_tpm.tsv",
        "chrom_sizes": "sim/chrom.sizes",
        "outdir": "results",
        "seed": 3,
        "chromexpr": chromexpr,
        "tss": {"options": "--chroms all"},
        "bin": {"flank": FLANK, "bin_size": BIN_SIZE, "aggregate": "mean"},
        "train": {"options": "--split sample --test-fraction 0.25"},
        "attribute": {"models": attributed, "options": "--top-k 5"},
        "models": {"mean": "", "lasso": ""},
        "threads": {"bin": 1, "merge": 2, "train": 2, "evaluate": 2, "attribute": 2},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def attribution_available(model_dir: Path, dataset: Path) -> bool:
    """Whether ``chromexpr attribute`` has an adapter for the model (explain/adapters.py)."""
    from chromexpr.dataset.store import open_dataset
    from chromexpr.errors import InputError
    from chromexpr.explain.adapters import attributable_from_model_dir

    try:
        attributable_from_model_dir(model_dir, open_dataset(dataset))
    except InputError as exc:
        if "no attribution adapter" in str(exc):
            return False
        raise
    return True


def table_bytes(results: Path) -> dict[str, bytes]:
    """The evaluation tables and attribution outputs (no time stamps in them)."""
    wanted = ("metrics.tsv", "per_gene.tsv", "per_sample.tsv", "predictions.tsv")
    files = [p for p in (results / "evaluation").rglob("*.tsv") if p.name in wanted]
    files += [
        p for p in (results / "attribution").rglob("*") if p.is_file() and p.suffix != ".json"
    ]
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(files)}


@pytest.mark.slow
def test_snakemake_workflow_end_to_end(cli, helpers, tmp_path) -> None:
    from chromexpr.simulate import SimulationConfig, simulate

    work = tmp_path / "work"
    sim = work / "sim"
    simulate(
        SimulationConfig(n_genes=150, n_samples=8, n_groups=2, seed=1, formats=("bigwig",)), sim
    )
    chromexpr = chromexpr_command(tmp_path)
    config = write_config(tmp_path / "config.yaml", sim, chromexpr, ["lasso"])
    results = work / "results"

    # first as far as one model, as a user might; then the probe decides whether to attribute
    snakemake(work, config, "--cores", "2", "results/models/lasso")
    assert not (results / "evaluation").exists()
    attributing = attribution_available(results / "models" / "lasso", results / "dataset.zarr")
    if not attributing:
        write_config(config, sim, chromexpr, [])
    snakemake(work, config, "--cores", "2")

    assert (results / "report.html").stat().st_size > 0
    assert any((results / "report_figures").glob("*.png"))
    for model in ("mean", "lasso"):
        assert (results / "evaluation" / model / "metrics.tsv").is_file()
    if attributing:
        assert any((results / "attribution" / "lasso").iterdir())
    names = [line.split("\t")[0] for line in (sim / "samples.tsv").read_text().splitlines()[1:]]
    assert sorted(p.name for p in (results / "parts").glob("*.zarr")) == sorted(
        f"{n}.zarr" for n in names
    )

    # the gathered dataset is the one a single 'chromexpr bin' of every sample gives
    whole = tmp_path / "whole.zarr"
    tss = results / "tss.bed"
    geometry = ("--flank", FLANK, "--bin-size", BIN_SIZE)
    cli("bin", tss, "--samples", sim / "samples.tsv", "-o", whole, *geometry, "-q")
    genes, samples, values = helpers.dataset_rows(results / "dataset.zarr")
    assert samples == names
    assert (genes, samples) == helpers.dataset_rows(whole)[:2]
    np.testing.assert_array_equal(values, helpers.dataset_rows(whole)[2])

    # a complete run is a no-op
    assert "Nothing to be done" in snakemake(work, config, "-n", "--cores", "2")

    # retraining gives byte-identical tables downstream
    before = table_bytes(results)
    assert before
    output = snakemake(work, config, "--cores", "2", "--forcerun", "results/models/lasso")
    assert "rule train:" in output and "rule bin:" not in output
    assert table_bytes(results) == before
    assert "Nothing to be done" in snakemake(work, config, "-n", "--cores", "2")

    if not attributing:
        pytest.xfail("chromexpr attribute has no adapter for trained models yet: step not run")
