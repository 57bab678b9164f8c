"""One error tree for synthguard.

Every error a user can cause derives from :class:`SynthguardError`; the CLI prints its message on
one line and exits with code 2. Messages name the problem and, where it helps, the fix.
"""

from __future__ import annotations

from collections.abc import Iterable


class SynthguardError(Exception):
    """Root of every error synthguard raises on purpose."""


class DataError(SynthguardError):
    """The input table is missing, unreadable or unusable (for example empty)."""


class SchemaError(SynthguardError):
    """The data does not match the schema, or the schema itself is malformed.

    All problems are collected and reported at once, so a user fixes them in one pass.
    """

    def __init__(self, problems: Iterable[str], *, context: str = "schema mismatch"):
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{context}: {count} {noun}: " + "; ".join(self.problems))


class UnknownNameError(SynthguardError):
    """A name that a registry does not know; the message lists the known ones."""

    def __init__(self, what: str, name: str, known: Iterable[str]):
        self.name = name
        super().__init__(f"unknown {what} {name!r}; known: {', '.join(sorted(known))}")


class ParamError(SynthguardError):
    """A bad hyper-parameter or command-line option value."""


class OutputError(SynthguardError):
    """An output cannot be written (path not writable, unknown format)."""
