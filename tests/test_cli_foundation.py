"""The command-line surface: help, lazy imports, --quiet, --debug, --threads, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import chromexpr

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
HEAVY = ("torch", "numba", "pyranges", "zarr")


def command_names() -> list[str]:
    from chromexpr.cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    names += [g.name for g in app.registered_groups if g.name]
    return sorted(names)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real ``chromexpr`` process (``python -m chromexpr``), for what needs one."""
    return subprocess.run(
        [sys.executable, "-m", "chromexpr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_foundation_commands_are_registered() -> None:
    assert {"tss", "bin", "info", "export"} <= set(command_names())


def test_root_help_and_version(cli) -> None:
    result = cli("--help")
    for name in command_names():
        assert name in result.stdout
    assert cli("--version").stdout.strip() == f"chromexpr {chromexpr.__version__}"
    assert cli("-h").stdout == result.stdout


@pytest.mark.parametrize("command", command_names())
def test_every_command_help(cli, command) -> None:
    result = cli(command, "--help")
    assert "Usage" in result.stdout and command in result.stdout
    for option in ("--quiet", "--debug", "--threads"):
        assert option in result.stdout, f"{command} lacks {option}"


def test_importing_the_cli_stays_light() -> None:
    # every command's --help, in a fresh interpreter, without importing the heavy dependencies
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from chromexpr.cli import app\n"
        "names = [c.name for c in app.registered_commands]\n"
        "for args in (['--help'], *([c, '--help'] for c in names)):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"heavy modules imported: {result.stdout.strip()}"


def test_progress_bar_is_silent_under_quiet_and_off_a_terminal(capsys) -> None:
    from chromexpr import log

    log.configure(quiet=True)
    with log.progress_bar("work", 3) as bar:
        bar.advance(1)
    assert type(bar).__name__ == "_Silent"
    log.configure(quiet=False)
    with log.progress_bar("work", 3) as bar:  # stderr is captured, not a terminal: nothing drawn
        bar.advance(3)
    assert capsys.readouterr().err == ""


def test_console_script_help_in_a_real_process() -> None:
    result = run("--help")
    assert result.returncode == 0 and "Usage" in result.stdout
    assert result.stderr == ""


def test_quiet_silences_info_and_progress(cli, tmp_path) -> None:
    tss, bw = FIXTURES / "signal_tss.bed", FIXTURES / "signal_bigwig.bw"
    loud = cli("bin", tss, bw, "-o", tmp_path / "a.zarr", "--flank", 200, "--bin-size", 100)
    assert "INFO" in loud.stderr
    quiet = cli(
        "bin", tss, bw, "-o", tmp_path / "b.zarr", "--flank", 200, "--bin-size", 100, "--quiet"
    )
    # only the warning about chr3 (no signal) is left: warnings are not silenced, info is
    assert [line for line in quiet.stderr.splitlines() if "WARNING" not in line] == []
    assert "set to 0" in quiet.stderr
    assert (
        cli(
            "tss",
            FIXTURES / "ABC_CollapsedGeneBounds.hg38.chr22_17-19.5Mb.bed",
            "-o",
            tmp_path / "t.bed",
            "-q",
        ).stderr
        == ""
    )


def test_errors_are_one_line_with_exit_code_2_in_a_real_process(tmp_path) -> None:
    missing = tmp_path / "missing.bed"
    result = run(
        "bin", str(missing), str(FIXTURES / "signal_bigwig.bw"), "-o", str(tmp_path / "x.zarr")
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"chromexpr: error: {missing}: file not found"]
    assert not (tmp_path / "x.zarr").exists()


def test_debug_shows_the_traceback(tmp_path) -> None:
    missing = tmp_path / "missing.bed"
    result = run(
        "bin",
        str(missing),
        str(FIXTURES / "signal_bigwig.bw"),
        "-o",
        str(tmp_path / "x.zarr"),
        "--debug",
    )
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "InputError" in result.stderr and "file not found" in result.stderr


def test_debug_in_process_reraises(cli, tmp_path) -> None:
    from chromexpr.errors import InputError

    result = cli("info", tmp_path / "nope.zarr", "--debug", expect=None)
    assert isinstance(result.exception, InputError)


def test_threads_option(cli, helpers, tmp_path) -> None:
    import numba

    before = numba.get_num_threads()
    try:
        cli(
            "bin",
            FIXTURES / "signal_tss.bed",
            FIXTURES / "signal_bigwig.bw",
            "-o",
            tmp_path / "a.zarr",
            "--flank",
            200,
            "--bin-size",
            100,
            "--threads",
            1,
            "-q",
        )
        assert numba.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        numba.set_num_threads(before)
    result = cli("info", tmp_path / "a.zarr", "--threads", 0, expect=2)
    assert "--threads" in result.stderr


def test_bad_option_value_is_a_usage_error(cli) -> None:
    result = cli(
        "bin",
        FIXTURES / "signal_tss.bed",
        FIXTURES / "signal_bigwig.bw",
        "--aggregate",
        "median",
        expect=2,
    )
    assert "median" in result.stderr and "Traceback" not in result.stderr
