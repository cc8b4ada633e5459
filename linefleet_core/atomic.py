"""Crash-safe file writes: temp file, fsync, rename, directory fsync.

A reader sees either the old content or the new one, never a mix, whatever moment the power
goes. Temp files carry a recognisable suffix so start-up can remove the ones a crash left
(`clean_temps`); an exception while writing removes its own temp file. Used by the edge's state
and spool, the local forge, and every command that writes a file a user keeps. `write_tree`
writes a whole new folder of files the same way (`linefleet init`, `linefleet fleet generate`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
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


def write_tree(files: Mapping[str, bytes], out: Path, *, replace_folders: bool = False) -> None:
    """Write `files` (path relative to `out` -> bytes) so a failure leaves nothing half-written.

    Everything is staged in a temporary folder beside `out` first. A new `out` appears at once
    (one rename). Into an existing `out`, each file replaces its namesake atomically and files
    that are not ours are kept; with `replace_folders`, each top-level folder of `files`
    (`fleet/`, `taxonomies/`, ...) replaces the existing one whole.
    """
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for rel, data in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if not out.exists():
            staging.rename(out)
            return
        if replace_folders:
            for top in sorted({rel.split("/", 1)[0] for rel in files}):
                dest = out / top
                if dest.is_dir():
                    shutil.rmtree(dest)
                elif dest.exists():
                    dest.unlink()
                (staging / top).rename(dest)
            return
        for rel in sorted(files):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).replace(out / rel)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
