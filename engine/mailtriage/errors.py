"""The exception root and the problem record: every error the tool reports carries a location."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

# The start of the note for an input that hit a bug: scan exits 3 when any input has one.
INTERNAL_ERROR = "internal error (please report)"


@dataclass(frozen=True, order=True)
class Location:
    """Where a problem is: a file and, when known, a 1-based line and column."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding of the loader or the linter: an error makes the input invalid, a warning questionable."""

    location: Location
    code: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.location}: {self.code} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.location.path,
            "line": self.location.line,
            "column": self.location.column,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
        }


class CollectsProblems:
    """Mixin for results that gather problems: the invalid ones apart from the questionable ones."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]


class MailtriageError(Exception):
    """Root of every error mailtriage raises on purpose; the CLI prints it as one line and exits 2."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class RuleError(MailtriageError):
    """A rule or knowledge base that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0] if problems else None
        super().__init__(
            f"{first.code} {first.message} ({len(problems)} problem(s) in the rules; run `mailtriage lint`)"
            if first
            else "invalid rules",
            first.location if first else None,
        )
        self.problems = problems


class FactError(MailtriageError):
    """Facts that do not fit the fact vocabulary (unknown field, wrong type, value not allowed)."""


class InputError(MailtriageError):
    """Input (a pasted reply, a message, a log file) that cannot be read."""


class ProbeError(MailtriageError):
    """A probe that cannot be started (bad target, bad option)."""
