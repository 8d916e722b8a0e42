"""Command-line interface: one module per command, all registered on :data:`app`."""

from __future__ import annotations

from chromexpr.cli import attribute as _attribute  # noqa: F401  (each import registers a command)
from chromexpr.cli import bin as _bin  # noqa: F401
from chromexpr.cli import consensus as _consensus  # noqa: F401
from chromexpr.cli import demo as _demo  # noqa: F401
from chromexpr.cli import evaluate as _evaluate  # noqa: F401
from chromexpr.cli import evaluate_links as _evaluate_links  # noqa: F401
from chromexpr.cli import export as _export  # noqa: F401
from chromexpr.cli import info as _info  # noqa: F401
from chromexpr.cli import merge as _merge  # noqa: F401
from chromexpr.cli import predict as _predict  # noqa: F401
from chromexpr.cli import report as _report  # noqa: F401
from chromexpr.cli import simulate as _simulate  # noqa: F401
from chromexpr.cli import train as _train  # noqa: F401
from chromexpr.cli import tss as _tss  # noqa: F401
from chromexpr.cli._app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
