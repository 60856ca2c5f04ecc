"""Errors a user can act on.

Every error whaleflow raises on bad input names what is wrong, where (file, row or
key) and what to do about it, so the CLI can print one line instead of a traceback.
"""
from __future__ import annotations


class WhaleflowError(Exception):
    """Base class: the CLI prints these as one line and exits 2."""


class ConfigError(WhaleflowError):
    """A config file or override is wrong (unknown key, bad type, bad value)."""


class DataError(WhaleflowError):
    """Input data is wrong. Carries the file, the row (1-based, header = row 1) and a fix."""

    def __init__(self, message: str, *, file=None, row: int | None = None, fix: str | None = None):
        self.file = None if file is None else str(file)
        self.row = row
        self.fix = fix
        where = ""
        if self.file:
            where = self.file + (f", row {row}" if row is not None else "")
            where += ": "
        text = where + message
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)
