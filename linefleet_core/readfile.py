"""Reading a file a user names: bounded, and without blocking on what is not a file.

    data = read_bounded(path, limit)   # raises NotRegular, TooLarge or OSError

The file is opened with O_NONBLOCK and checked on the open descriptor: a named pipe with no
writer (or a device node) named like the file would otherwise block the reader for ever. A link
is followed (configuration management often links a file into place). Its size is checked
before a byte is read, and no more than `limit` + 1 bytes are ever read (a file still growing
stops there too). Callers word the refusal: an image import, the edge's frames folder, a
device's sources file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegular(ValueError):
    """Not a regular file (a FIFO, a device, a socket, a directory)."""


class TooLarge(ValueError):
    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size
        """Its size in bytes; None when it grew past the limit while being read."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (module docstring)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a pipe with no writer: returns at once
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(str(path))
        if info.st_size > limit:
            raise TooLarge(info.st_size)
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(None)
    return data
