"""Option aliases shared by the commands (one definition each)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no progress bars.")
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads", "-t", help="Worker threads for numeric kernels [default: all cores]."
    ),
]
Force = Annotated[bool, typer.Option("--force", "-f", help="Replace existing outputs.")]
Seed = Annotated[
    int, typer.Option("--seed", help="Random seed (results are reproducible for a given seed).")
]
OutputDir = Annotated[Path, typer.Option("--output", "-o", help="Output directory.")]
OutputFile = Annotated[Path, typer.Option("--output", "-o", help="Output file.")]


class DataOnDeviceChoice(str, Enum):
    """Whether fc's training rows are held in the device's memory (``auto``: when they fit)."""

    auto = "auto"
    yes = "yes"
    no = "no"


class CompileChoice(str, Enum):
    """Whether fc's training step is compiled with torch.compile (``auto``: on CUDA)."""

    auto = "auto"
    yes = "yes"
    no = "no"


class DeviceChoice(str, Enum):
    """Where torch models run (``auto``: CUDA when available)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
