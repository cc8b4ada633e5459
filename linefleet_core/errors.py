"""Findings (located problems), the two kinds of error every component raises, and the one
refusal of a folder option that names no folder (`need_directory`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from linefleet_core.text import printable


class ExitCode(enum.IntEnum):
    """Exit codes of the `linefleet` command; documented in the README."""

    OK = 0
    INVALID = 1  # the input is invalid (validation findings, refused documents, policy failures)
    USAGE = 2  # the command line is wrong, or a named file/revision does not exist
    UNEXPECTED = 3  # a bug: a traceback was written to a log file
    UNAVAILABLE = 4  # a service (broker, forge, git remote) could not be reached
    INTERRUPTED = 130


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem, located as `path:line:col: field: message`.

    `line` and `col` are 1-based; 0 means the position is unknown (a whole-file problem).
    A finding renders as one line: its path, field and message are data (a file name may hold
    a newline or `ESC[2J`), so every control character in them is escaped (`\\x0a`); only the
    line breaks between findings (`FindingsError`) stay.
    """

    path: str
    line: int
    col: int
    field: str
    message: str
    severity: Severity = Severity.ERROR
    code: str = "invalid"

    def render(self) -> str:
        where = self.path if self.line == 0 else f"{self.path}:{self.line}:{self.col}"
        what = f"{self.field}: " if self.field else ""
        tag = "" if self.severity is Severity.ERROR else f"{self.severity.value}: "
        return printable(f"{where}: {tag}{what}{self.message}")

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "field": self.field,
            "message": self.message,
            "severity": self.severity.value,
            "code": self.code,
        }


class LinefleetError(Exception):
    """Base of every error the CLI turns into a message and an exit code (no traceback)."""

    exit_code: ExitCode = ExitCode.INVALID


class UsageError(LinefleetError):
    exit_code = ExitCode.USAGE


class PermanentError(LinefleetError):
    """Retrying will not help until the input changes (bad config, refused document)."""

    exit_code = ExitCode.INVALID


class TemporaryError(LinefleetError):
    """May succeed later (network down, broker restarting); callers retry with backoff."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass
class FindingsError(LinefleetError):
    """Raised when a document set is invalid; carries every finding, not just the first."""

    findings: list[Finding] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f.render() for f in self.findings)


def need_directory(flag: str, path: Path) -> None:
    """Refuse (`UsageError`, exit 2) a `flag` that names no directory, saying what it names."""
    if path.is_dir():
        return
    if path.exists():
        raise UsageError(f"{flag} {path}: a file, not a directory")
    raise UsageError(f"{flag} {path}: no such directory")
