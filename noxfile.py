"""One definition of each check, run by developers and by CI.

``.ci/run`` calls ``nox -s tests``. Sessions: tests, lint, bench, demo, docs. torch is pinned to the
CPU wheel so that no session pulls a multi-GB CUDA build; users installing chromexpr get the range
from pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

TORCH_PIN = "torch==2.13.0"
PYTHON = "3.11"


def _ensure_bedtools(session: nox.Session) -> None:
    """pybedtools needs the bedtools program (Debian package 'bedtools')."""
    if shutil.which("bedtools"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "bedtools", external=True)
        return
    session.error(
        "bedtools is not installed: run 'sudo apt-get install bedtools'"
        " (or 'conda install bedtools')"
    )


def _pygenometracks(session: nox.Session) -> str:
    """pyGenomeTracks in a virtualenv of its own (it pins an older matplotlib than chromexpr's).

    Returns the path of its ``pyGenomeTracks`` program, for the tests that draw our outputs.
    """
    venv = Path(session.virtualenv.location).parent / "pygenometracks"
    exe = venv / "bin" / "pyGenomeTracks"
    if not exe.exists():
        session.run("python", "-m", "venv", str(venv))
        session.run(
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "pygenometracks==3.9",
            external=True,
        )
    return str(exe)


def _install(session: nox.Session, *extras: str) -> None:
    session.install(TORCH_PIN)
    target = "-e.[" + ",".join(extras) + "]" if extras else "-e."
    session.install(target)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, property and end-to-end tests (peers: deepTools, scikit-learn, bedtools, pyBigWig)."""
    _ensure_bedtools(session)
    _install(session, "test")
    session.install("snakemake>=8,<10")  # for the workflow/Snakefile end-to-end test
    pgt = _pygenometracks(session)
    session.run(
        "pytest",
        "-q",
        "-n",
        "2",
        "--durations=15",
        *session.posargs,
        env={"CHROMEXPR_PYGENOMETRACKS": pgt},
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (style, imports, bugs) and mypy (types)."""
    _install(session, "dev")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against peers; writes benchmarks/results/ and the tables in docs/benchmarks.md.

    ``nox -s bench -- --quick`` runs a small version (seconds to minutes).
    """
    _ensure_bedtools(session)
    _install(session, "test")
    session.install("psutil")
    for script in (
        "bench_binning.py",
        "bench_bigwig_read.py",
        "bench_lasso.py",
        "bench_fc.py",
        "bench_loader.py",
        "bench_scaling.py",
        "bench_links.py",
        "bench_models_real.py",
        "bench_reference_fit.py",
    ):
        path = Path("benchmarks") / script
        if path.exists():
            session.run("python", str(path), *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The whole pipeline on a small built-in simulated data set (README's main job)."""
    _ensure_bedtools(session)
    _install(session)
    session.run("chromexpr", "demo", *(session.posargs or ["chromexpr-demo", "--force"]))


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Doctests of the library and an up-to-date CLI reference (docs/cli.md)."""
    _install(session, "test")
    session.run("pytest", "-q", "--doctest-modules", "src/chromexpr", "-p", "no:cacheprovider")
    session.run(
        "typer", "chromexpr.cli", "utils", "docs", "--name", "chromexpr", "--output", "docs/cli.md"
    )
