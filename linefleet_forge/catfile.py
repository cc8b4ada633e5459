"""Many blobs through one `git cat-file --batch`, streamed; optionally parsed in a second process.

    for oid, content in batch(git_dir, oids, limit): ...
    for oid, content, doc in parsed_batch(git_dir, oids, limit, parse, skip): ...

`batch` hands each blob over as soon as git has written it: the caller works on the first
files while git reads and inflates the next ones on the other core (on a freshly committed
repository every object is a loose, compressed file: 20,000 of them cost git over a second).
A blob over `limit` bytes is skipped unread and handed over as a too-large `Refused`. An
object git does not have is a UsageError when the iteration reaches it.

`parsed_batch` also hands over `parse(content)` (a document of plain data, or None to leave the
blob to the caller). With many blobs to parse and two cores it forks a worker that reads git's
answer instead of this process, parses, and sends the contents and documents back in frames
(`marshal`); this process only unpacks them, so a fleet's parsing runs beside its checking.
The worker is a `linefleet_core.forked.Child`: it only computes and writes to its pipe (it
imports nothing, takes no lock another thread could hold, hashes nothing, opens no file).
Where it stops early (it died, met an object git does not have, could not start), what it did
not hand over is read and parsed here, as `batch` does: the same contents, documents and
errors either way.
"""

from __future__ import annotations

import marshal
import os
import subprocess
from collections.abc import Callable, Container, Generator, Iterator
from typing import IO, Any

from linefleet_core import forked
from linefleet_core.errors import UsageError
from linefleet_core.spec import Refused, too_large

WORKER_FROM = 512
"""`parsed_batch` forks a worker for this many blobs to parse or more (fewer are parsed here:
starting it and unpacking its frames would cost more than it takes off)."""
_FRAME_FILES = 64  # blobs per frame the worker sends
_LENGTH = 8  # bytes of the length before each frame


def batch(
    git_dir: str, oids: list[str], limit: int | None
) -> Generator[tuple[str, bytes | Refused], None, None]:
    """(oid, content or a too-large `Refused`) of each of `oids`, in order, as git writes them."""
    if not oids:
        return
    with _CatFile(git_dir, oids) as cat:
        for oid in oids:
            content = cat.entry(oid, limit)
            if content is None:
                raise cat.missing(oid)
            yield oid, too_large(content) if isinstance(content, int) else content


def parsed_batch(
    git_dir: str,
    oids: list[str],
    limit: int | None,
    parse: Callable[[bytes], Any],
    skip: Container[str] = (),
    worker_from: int = WORKER_FROM,
) -> Generator[tuple[str, bytes | Refused, Any], None, None]:
    """(oid, content, `parse(content)`) of each of `oids`, in order; the document is None for a
    too-large blob and for those in `skip` (not parsed). Parsed in a forked worker when there
    are `worker_from` blobs to parse or more and two cores to run on, else here."""
    done = 0
    if sum(oid not in skip for oid in oids) >= worker_from and forked.spare_core():
        with _CatFile(git_dir, oids) as cat, _Worker(cat, oids, limit, parse, skip) as worker:
            for item in worker.results():
                done += 1
                yield item
    for oid, content in batch(git_dir, oids[done:], limit):  # all, or what the worker left
        doc = parse(content) if isinstance(content, bytes) and oid not in skip else None
        yield oid, content, doc


class _CatFile:
    """One `git cat-file --batch`, its request read from a file in memory (git answers while it
    reads: a request written to a pipe from here would fill it with nobody reading)."""

    def __init__(self, git_dir: str, oids: list[str]) -> None:
        self.git_dir = git_dir
        self.request = _scratch()
        self.errors = _scratch()
        self.request.write("".join(f"{oid}\n" for oid in oids).encode())
        self.request.seek(0)
        argv = ["git", f"--git-dir={git_dir}", "cat-file", "--batch", "--buffer"]
        env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1"}
        try:
            self.proc = subprocess.Popen(
                argv, stdin=self.request, stdout=subprocess.PIPE, stderr=self.errors, env=env
            )
        except OSError as exc:
            self._close_files()
            if isinstance(exc, FileNotFoundError) and exc.filename == "git":
                raise UsageError("git is not installed (or not on PATH)") from None
            raise
        assert self.proc.stdout is not None
        self.out: IO[bytes] = self.proc.stdout

    def __enter__(self) -> _CatFile:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop()
        self.out.close()
        self._close_files()

    def _stop(self) -> None:
        self.proc.kill()  # (nothing to stop when git is done; a reader may stop early)
        self.proc.wait()

    def _close_files(self) -> None:
        self.request.close()
        self.errors.close()

    def entry(self, oid: str, limit: int | None) -> bytes | int | None:
        """The next object of the answer, which must be `oid`: its content, or its size if that
        is over `limit` (the content skipped), or None if git does not give it."""
        out = self.out
        header = out.readline().split()
        if len(header) != 3 or header[0].decode() != oid:
            return None
        size = int(header[2])
        if limit is not None and size > limit:
            left = size + 1  # and the newline after it
            while left and (skipped := len(out.read(min(left, 1 << 20)))):
                left -= skipped
            return size
        data = out.read(size)
        return data if len(data) == size and out.read(1) == b"\n" else None

    def missing(self, oid: str) -> UsageError:
        self._stop()  # (then what git said is all written)
        self.errors.seek(0)
        said = self.errors.read().decode(errors="replace").strip()
        return UsageError(
            f"git cat-file: object {oid} is missing in {self.git_dir}"
            + (f" ({said})" if said else "")
        )


def _scratch() -> IO[bytes]:
    """A file without a name, in memory where the system has them (`tempfile` costs the
    pull-request check's start-up more than it would take here)."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("linefleet-cat-file", os.MFD_CLOEXEC), "w+b")
    import tempfile  # (elsewhere than Linux)

    return tempfile.TemporaryFile()


class _Worker:
    """A forked child (`linefleet_core.forked`) reading `cat`'s answer and parsing it; here,
    its frames are read."""

    def __init__(
        self,
        cat: _CatFile,
        oids: list[str],
        limit: int | None,
        parse: Callable[[bytes], Any],
        skip: Container[str],
    ) -> None:
        self.oids = oids
        self.frames: IO[bytes] | None = None
        self.child = forked.Child.start(lambda out: _work(cat, oids, limit, parse, skip, out))
        if self.child is not None:
            cat.out.close()  # the worker reads git's answer; this process, the frames
            self.frames = os.fdopen(self.child.fd, "rb")

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, *_: object) -> None:
        if self.frames is not None:
            self.frames.close()
        if self.child is not None:
            self.child.cancel()  # (reaps it; nothing to stop when it has finished)

    def results(self) -> Iterator[tuple[str, bytes | Refused, Any]]:
        """What the worker handed over, in order; stops where it stopped."""
        at = 0
        while self.frames is not None and at < len(self.oids):
            length = self.frames.read(_LENGTH)
            body = self.frames.read(int.from_bytes(length, "big")) if length else b""
            if not body or len(body) != int.from_bytes(length, "big"):
                return  # the worker ended early (or died writing): the caller reads the rest
            for content, doc in marshal.loads(body):
                oid = self.oids[at]
                at += 1
                yield oid, too_large(content) if isinstance(content, int) else content, doc


def _work(
    cat: _CatFile,
    oids: list[str],
    limit: int | None,
    parse: Callable[[bytes], Any],
    skip: Container[str],
    out: int,
) -> None:
    """The worker's body: frames of (content, or the size of a too-large blob; document) until
    done or the first object git does not give. Each frame goes with its length first: the
    reader takes only whole frames."""
    frame: list[tuple[bytes | int, Any]] = []
    for oid in oids:
        content = cat.entry(oid, limit)
        if content is None:
            break  # (the reader finds it missing itself, and says so)
        doc = parse(content) if isinstance(content, bytes) and oid not in skip else None
        frame.append((content, doc))
        if len(frame) == _FRAME_FILES:
            _send(out, frame)
            frame = []
    if frame:
        _send(out, frame)


def _send(fd: int, frame: list[tuple[bytes | int, Any]]) -> None:
    body = marshal.dumps(frame)
    forked.write_all(fd, len(body).to_bytes(_LENGTH, "big") + body)
