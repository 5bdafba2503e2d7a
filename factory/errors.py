"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class FactoryError(Exception):
    """A problem with the user's input: a config, a template, a seed file or an option.

    The message names the file, the field (and line where known) and what to do about it.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.field = field
        self.line = line
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        hint = f" — {self.hint}" if self.hint else ""
        return f"{where}{field}{self.message}{hint}"


class IncompleteRun(Exception):
    """The run stopped before every quota was met; what was accepted is written."""

    exit_code = 3
