"""What linefleet keeps beside a repository's objects, in `<git dir>/linefleet/`.

Everything there is derived from git objects by linefleet itself and can be rebuilt, so a
reader treats a missing, unreadable, corrupt or other-version file as absent, and a writer
is best effort: a read-only repository only costs the next run its head start. Files are
written whole under a temporary name, then renamed over the old one.

- `publish-index/`: the dependency index of published commits, and the small kinds parsed
  (`reconciler.service.incremental`);
- `parsed-yaml/`: fleet documents parsed from YAML, by git blob id (`load_parsed`), which
  `plan`, `validate --base` and publish's full pass (`load_revision`) read back instead of
  parsing the files nobody changed. Kept with `marshal` (plain dicts, lists and scalars:
  written ~7x and read ~1.3x faster than a pickle of the same documents).
- `graph-checks/`: `validate --base`'s ONNX graph checks (`reconciler.review.graphcheck`), by the
  model version's declaration and artifact digest.
- `artifact-digests/`: size and sha256 of artifact blobs, by blob id (`load_digests`).
- `revision-checks/`: `plan`'s findings on its base revision, by the revision's fleet files
  and the checking code (`reconciler.review.revisions`).

The caches are pickles (and the parsed documents a marshal dump): whoever can write in the
git folder can already run code (hooks).
"""

from __future__ import annotations

import gc
import hashlib
import marshal
import os
import pickle
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from linefleet_core import yamlquick, yamlsafe
from linefleet_core.yamlsafe import ParsedBlobs
from linefleet_forge.gitrepo import GitObjects

ROOT = "linefleet"
PARSED = "parsed-yaml"
DOCUMENTS = "documents.marshal"


def folder(objects: GitObjects, name: str) -> Path:
    return Path(objects.git_dir) / ROOT / name


def read_pickle(path: Path, version: object) -> Any | None:
    """What `write_pickle` wrote at `path` with this `version`, else None (never raises:
    a file cut short or garbled can fail to unpickle in many ways)."""
    return _read(path, version, pickle.loads)


def _read(path: Path, version: object, loads: Callable[[bytes], Any]) -> Any | None:
    paused = gc.isenabled()
    gc.disable()  # unpickling builds ~10^5 objects that all survive: scans would free nothing
    try:
        found = loads(path.read_bytes())
    except Exception:
        return None
    finally:
        if paused:
            gc.enable()
    if not isinstance(found, dict) or found.get("format") != version:
        return None
    return found.get("content")


def read_marshal(path: Path, version: str) -> Any | None:
    """What `write_marshal` wrote at `path` with this `version`, else None (never raises)."""
    return _read(path, version, marshal.loads)


def write_marshal(path: Path, version: str, content: Any) -> None:
    """Keep plain data (dicts, lists, strings, numbers, booleans, None); best effort."""
    try:
        data = marshal.dumps({"format": version, "content": content})
    except (ValueError, TypeError):
        return
    write_bytes(path, data)


def write_pickle(path: Path, version: object, content: Any) -> None:
    try:
        data = pickle.dumps({"format": version, "content": content}, protocol=5)
    except (pickle.PicklingError, TypeError, ValueError, RecursionError):
        return
    write_bytes(path, data)


def write_bytes(path: Path, data: bytes) -> None:
    """Write atomically (temporary file, rename); best effort."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        pass


@cache
def parser_version() -> str | None:
    """Changes whenever parsing the same bytes could give something else: the reader's own
    code and its quick reader's, PyYAML (and whether its C reader is there), Python. None
    (no cache) if the readers' source cannot be read."""
    digest = hashlib.sha256()
    try:
        for source in (yamlsafe.__file__, yamlquick.__file__):
            digest.update(Path(str(source)).read_bytes())
    except OSError:
        return None
    digest.update(f"{yaml.__version__} {hasattr(yaml, 'CSafeLoader')} {sys.version}".encode())
    return digest.hexdigest()


def load_parsed(objects: GitObjects) -> ParsedBlobs:
    """The documents the last run parsed (nothing if there is no usable cache)."""
    version = parser_version()
    found = None if version is None else read_marshal(_documents(objects), version)
    if not isinstance(found, dict):
        return ParsedBlobs()
    return ParsedBlobs(known=found)


def save_parsed(objects: GitObjects, parsed: ParsedBlobs) -> None:
    """Keep what this run used, when that differs from what it read back: the cache holds
    the revisions last compared, not the history of the fleet."""
    version = parser_version()
    if version is None or parsed.used.keys() == parsed.known.keys():
        return
    write_marshal(_documents(objects), version, parsed.used)


def code_version(sources: Iterable[Path], *extra: str) -> str | None:
    """A digest of the `sources` (and `extra` words, e.g. package versions) and Python's
    version: what a result computed by that code is filed under. None if one is unreadable."""
    digest = hashlib.sha256(" ".join((sys.version, *extra)).encode())
    try:
        for source in sources:
            digest.update(source.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


DIGESTS_FORMAT = 1


def load_digests(objects: GitObjects) -> int:
    """Add the artifact digests (by blob id) earlier runs computed to `objects.digests`;
    return how many it then holds (for `save_digests`)."""
    found = read_pickle(_digests(objects), DIGESTS_FORMAT)
    if isinstance(found, dict):
        objects.digests.update({**found, **objects.digests})
    return len(objects.digests)


def save_digests(objects: GitObjects, known: int) -> None:
    """Keep `objects.digests` when this run added to the `known` it started with."""
    if len(objects.digests) > known:
        write_pickle(_digests(objects), DIGESTS_FORMAT, dict(objects.digests))


def _digests(objects: GitObjects) -> Path:
    return folder(objects, "artifact-digests") / "digests.pickle"


def _documents(objects: GitObjects) -> Path:
    return folder(objects, PARSED) / DOCUMENTS
