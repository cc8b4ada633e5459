"""Where a catalogue artifact lives, and the checks `validate` runs on it before publish can.

An artifact URL is either a path inside the fleet repository (`fleet/artifacts/m.onnx`, also
written `file://fleet/artifacts/m.onnx`) or a remote URL with one of `REMOTE_SCHEMES`.
Anything else (`file:///abs`, `http://`, `ftp://`, a path that leaves the repository) is
refused by the contract, so `validate` and `publish` (which resolves URLs with `parse`) agree.

`check()` looks at the artifacts themselves: a repository file must exist (a regular file,
not reached through a symbolic link) with the declared size and sha256, in the revision being
checked (the working tree or a commit). With `fetch`, remote artifacts are downloaded (at most
their declared size plus one byte) and verified the same way.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from linefleet_core.errors import Finding

REMOTE_SCHEMES: tuple[str, ...] = ("https", "oci")
"""The schemes a catalogue artifact may name besides a repository path: the one list.
(`http` is refused: an artifact fetched in the clear could be swapped on the way, and the
sha256 check would then only stop it on the device.)"""

_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class InRepo:
    """A file of the fleet repository, by normalised repository-relative POSIX path."""

    path: str


@dataclass(frozen=True)
class Remote:
    url: str
    scheme: str


def parse(url: str) -> InRepo | Remote:
    """Classify a catalogue artifact URL; a ValueError says why it cannot be used."""
    if _CONTROL.search(url) or "\\" in url:
        raise ValueError(f"artifact url {url!r} contains spaces, control characters or '\\'")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in REMOTE_SCHEMES:
        if not parts.hostname:
            raise ValueError(f"artifact url {url!r} names no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"artifact url {url!r} carries credentials; never put them in git")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError(f"artifact url {url!r} has an invalid port") from None
        if not parts.path.strip("/"):
            raise ValueError(f"artifact url {url!r} names no artifact (empty path)")
        return Remote(url, scheme)
    if scheme == "file":
        if parts.netloc in ("", "localhost"):
            raise ValueError(
                f"artifact url {url!r} is an absolute path on the publishing machine; name a "
                "file inside the repository (fleet/artifacts/...) or an "
                f"{'/'.join(s + '://' for s in REMOTE_SCHEMES)} URL"
            )
        relative = parts.netloc + parts.path
    elif scheme == "":
        relative = url
    else:
        allowed = ", ".join(f"{s}://" for s in REMOTE_SCHEMES)
        raise ValueError(
            f"artifact url {url!r}: scheme {parts.scheme!r} is not allowed; use a path inside "
            f"the repository or one of {allowed}"
        )
    if relative.startswith("/"):
        raise ValueError(f"artifact url {url!r} is an absolute path; use a repository path")
    normal = posixpath.normpath(relative)
    if normal == ".." or normal.startswith("../") or normal == ".":
        raise ValueError(f"artifact url {url!r} leaves the repository")
    return InRepo(normal)


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str


@dataclass(frozen=True)
class Unreadable:
    """Why an artifact could not be read (not there, a link, not a regular file, ...)."""

    message: str


@runtime_checkable
class ArtifactFiles(Protocol):
    """A revision that can hand out repository files by path (a working tree or a commit)."""

    def artifact_digest(self, path: str, limit: int) -> Digest | Unreadable:
        """Size and sha256 of the file at repository path `path`; reads at most `limit` + 1
        bytes (a longer file reports `limit + 1` as its size)."""
        ...


def digest_of(chunks: Iterable[bytes], limit: int) -> Digest:
    """Hash at most `limit` + 1 bytes of `chunks`."""
    sha = hashlib.sha256()
    size = 0
    for chunk in chunks:
        take = chunk[: limit + 1 - size]
        sha.update(take)
        size += len(take)
        if size > limit:
            break
    return Digest(size, sha.hexdigest())


Fetcher = Callable[[str, int], Digest | Unreadable]
"""Download a remote artifact (at most `limit` + 1 bytes) and digest it."""


def fetch_https(url: str, limit: int, timeout: float = 30.0) -> Digest | Unreadable:
    import urllib.error  # only here: validate and plan import this module and never fetch
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return digest_of(iter(lambda: resp.read(1 << 20), b""), limit)
    except urllib.error.HTTPError as exc:
        return Unreadable(f"fetching it answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Unreadable(f"could not be fetched: {reason}")


def fetch_oci(url: str, limit: int, timeout: float = 30.0) -> Digest | Unreadable:
    """The registry blob an `oci://HOST/REPO@sha256:…` reference names (`GET /v2/…/blobs/…`),
    read anonymously: a registry that wants credentials answers 401, reported as unreadable."""
    from linefleet_core.oci import OciError, parse_ref

    try:
        blob = parse_ref(url).blob_url()
    except OciError as exc:
        return Unreadable(str(exc))
    return fetch_https(blob, limit, timeout)


FETCHERS: dict[str, Fetcher] = {"https": fetch_https, "oci": fetch_oci}
"""How `--check-artifacts` downloads each remote scheme (a scheme missing here is reported as
not checked, never as verified)."""


@dataclass(frozen=True)
class Declared:
    """One catalogue artifact to check, with where its `url` is written (for findings)."""

    url: str
    sha256: str
    size: int
    finding: Callable[[str, str], Finding]
    """(field suffix, message) -> a located finding."""


def check(
    declared: Iterable[Declared],
    files: ArtifactFiles | None,
    *,
    fetch: bool = False,
    fetchers: dict[str, Fetcher] | None = None,
) -> list[Finding]:
    """Every artifact that does not exist as declared, located at its catalogue entry."""
    out: list[Finding] = []
    seen: dict[tuple[str, int], Digest | Unreadable] = {}
    table = FETCHERS if fetchers is None else fetchers
    for art in declared:
        try:
            where = parse(art.url)
        except ValueError:
            continue  # the contract reported it already
        if isinstance(where, InRepo):
            if files is None:
                continue
            key = (where.path, art.size)
            if key not in seen:
                seen[key] = files.artifact_digest(where.path, art.size)
            got = seen[key]
            label = f"{where.path}"
        else:
            if not fetch:
                continue
            fetcher = table.get(where.scheme)
            if fetcher is None:
                out.append(art.finding("url", f"cannot fetch {where.scheme}:// artifacts to check"))
                continue
            key = (art.url, art.size)
            if key not in seen:
                seen[key] = fetcher(art.url, art.size)
            got = seen[key]
            label = art.url
        out.extend(_compare(art, got, label))
    return out


def _compare(art: Declared, got: Digest | Unreadable, label: str) -> list[Finding]:
    if isinstance(got, Unreadable):
        return [art.finding("url", f"{label}: {got.message}")]
    if got.size != art.size:
        size = f"more than {art.size:,}" if got.size > art.size else f"{got.size:,}"
        return [art.finding("size", f"{label} is {size} bytes; the catalogue says {art.size:,}")]
    if got.sha256 != art.sha256:
        return [
            art.finding("sha256", f"{label} has sha256 {got.sha256}; the catalogue says otherwise")
        ]
    return []
