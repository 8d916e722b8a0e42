"""User-facing errors.

Every problem caused by the user's input raises :class:`InputError` with a one-line message that
names the file, the line when there is one, and how to fix it. The CLI prints that line and exits
with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from pathlib import Path


class ChromexprError(Exception):
    """Base class of errors that the CLI reports as one line (no traceback)."""

    exit_code = 1


class InputError(ChromexprError):
    """Bad input: a malformed, missing, inconsistent or unsupported file or option."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        text = where + message
        if fix:
            text += f" ({fix})"
        super().__init__(text)
        self.path = path
        self.line = line
        self.fix = fix


class OutputExistsError(ChromexprError):
    """The output exists and ``--force`` was not given."""

    exit_code = 2

    def __init__(self, path: str | Path) -> None:
        super().__init__(f"{path} exists; refusing to overwrite it (pass --force to replace it)")
        self.path = path
