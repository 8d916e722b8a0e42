"""The Typer application and the wrapper every command runs its work in.

Commands live one per module in this package; each parses options, calls one library function inside
:func:`command_context`, and writes outputs. Nothing here imports numba, torch, pyranges or zarr, so
``chromexpr --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

app = typer.Typer(
    name="chromexpr",
    help=(
        "Predict gene expression from chromatin accessibility.\n\n"
        "Pipeline: tss -> bin -> train -> evaluate -> attribute -> report (demo runs it all).\n\n"
        "Exit status: 0 done; 2 bad input or option (one line naming the file or the option); "
        "130 interrupted (Ctrl-C); 143 terminated (SIGTERM); 1 anything else (a bug: rerun with "
        "--debug and report the traceback). Outputs appear whole or not at all."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _set_threads(threads: int | None) -> None:
    """Cap the threads of numba, BLAS/OpenMP and torch (read when they are first imported)."""
    if threads is None:
        return
    if threads < 1:
        raise typer.BadParameter("--threads must be at least 1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "numba" not in sys.modules:  # caps numba's pool when it is first imported
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    else:  # already imported (library use, tests): adjust at run time; numba refuses a changed
        # NUMBA_NUM_THREADS once its threads run, so the variable is left as it is
        import numba

        # numba.config sets its attributes at run time, so its stubs do not list them
        max_threads: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        numba.set_num_threads(min(threads, max_threads))
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (in-process test runners)
        pass


def _check_output_option() -> None:
    """Check where the running command's ``--output`` goes, before it reads anything: a parent
    that is a file (``-o afile/out``) is one line now, not a traceback after the work."""
    try:  # typer >= 0.22 runs on its own copy of click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer, on click itself
        from click import get_current_context  # type: ignore[no-redef]

    ctx = get_current_context(silent=True)
    output = None if ctx is None else ctx.params.get("output")
    if isinstance(output, str | Path) and str(output) != "-":
        from chromexpr.atomic import check_location

        check_location(output)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler's time limit), raised like Ctrl-C so that the atomic
    writers remove their partial outputs before the process ends."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while a command runs (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        del signum, frame
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def command_context(
    *, quiet: bool = False, debug: bool = False, threads: int | None = None
) -> Iterator[None]:
    """Configure logging/threads and turn chromexpr errors into one line on stderr and an exit code.

    Parameters
    ----------
    quiet
        Warnings and errors only; no progress bars.
    debug
        Show full tracebacks instead of one-line errors.
    threads
        Worker threads for numeric kernels (default: all cores).
    """
    from chromexpr import log
    from chromexpr.errors import ChromexprError

    log.configure(quiet=quiet, debug=debug)
    _set_threads(threads)
    try:
        _check_output_option()
        with _sigterm_as_interrupt():
            yield
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader closed the pipe (``chromexpr tss x.gtf | head``): it has all it wanted, so end
        # quietly and successfully, and ``set -o pipefail`` scripts keep working
        _silence_stdout()
        raise typer.Exit(0) from None
    except ChromexprError as exc:
        if debug:
            raise
        typer.echo(f"chromexpr: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        if debug:
            raise
        name = exc.filename if exc.filename is not None else ""
        typer.echo(f"chromexpr: error: {name}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        what, code = ("terminated", 143) if isinstance(exc, _Terminated) else ("interrupted", 130)
        typer.echo(f"chromexpr: {what}; partial outputs were removed", err=True)
        raise typer.Exit(code) from None


def _print_version(value: bool) -> None:
    if value:
        from chromexpr._version import __version__

        typer.echo(f"chromexpr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Predict gene expression from chromatin accessibility."""
