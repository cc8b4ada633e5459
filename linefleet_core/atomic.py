"""Crash-safe file writes: temp file, fsync, rename, directory fsync.

A reader sees either the old content or the new one, never a mix, whatever moment the power
goes. Temp files carry a recognisable suffix so start-up can remove the ones a crash left
(`clean_temps`); an exception while writing removes its own temp file. Used by the edge's state
and spool, the local forge, and every command that writes a file a user keeps.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def clean_temps(folder: Path) -> list[Path]:
    """Remove temp files a crash left behind in `folder`; return what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for candidate in folder.iterdir():
        if candidate.name.startswith(".") and candidate.name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    if removed:
        fsync_dir(folder)
    return removed
