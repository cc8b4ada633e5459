"""`linefleet_forge.catfile` on a real git object store: blobs streamed in order, too-large
ones refused unread, a missing object refused where it is reached; parsed in a forked worker
the same as here, and whatever the worker does not hand over (it died, an object is missing)
read here instead, with no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from linefleet_core import yamlsafe
from linefleet_core.errors import UsageError
from linefleet_core.spec import too_large
from linefleet_forge import catfile

pytestmark = pytest.mark.integration

LIMIT = 4000
COUNT = 200
NOWHERE = "0123456789abcdef0123456789abcdef01234567"  # no such object


def _content(i: int) -> bytes:
    if i == 50:
        return b"name: [unclosed\n"  # not YAML: no document, the caller finds the problem
    if i == 120:
        return b"# padding\n" * 500 + b"name: big\n"  # over LIMIT: refused unread
    return f"name: file-{i}\nindex: {i}\n".encode()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A git object store holding COUNT blobs; their ids in order."""
    root = tmp_path_factory.mktemp("catfile")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for i in range(COUNT):
        (root / f"f{i:03d}.yaml").write_bytes(_content(i))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    listing = subprocess.run(
        ["git", "ls-files", "-s"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    return str(root / ".git"), [row.split()[1] for row in listing]


def tagged(raw: bytes) -> Any:
    """The document, and which process parsed it."""
    doc = yamlsafe.document(raw)
    return None if doc is None else [os.getpid(), doc]


def children() -> set[int]:
    """Processes whose parent is this one (running or not yet reaped)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.add(int(entry.name))
    return out


needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the worker is forked only with two cores"
)


def test_blobs_come_in_order_and_a_large_one_is_refused_unread(
    store: tuple[str, list[str]],
) -> None:
    git_dir, oids = store
    got = list(catfile.batch(git_dir, oids, LIMIT))
    assert [oid for oid, _ in got] == oids
    assert [content for _, content in got] == [
        too_large(len(_content(i))) if i == 120 else _content(i) for i in range(COUNT)
    ]
    assert "file is 5,010 bytes" in too_large(len(_content(120))).message


@needs_two_cores
def test_the_worker_parses_what_this_process_would(store: tuple[str, list[str]]) -> None:
    git_dir, oids = store
    before = children()
    got = list(catfile.parsed_batch(git_dir, oids, LIMIT, tagged, worker_from=1))

    assert [(oid, content) for oid, content, _ in got] == list(catfile.batch(git_dir, oids, LIMIT))
    docs = [doc for _, _, doc in got]
    assert {doc[0] for doc in docs if doc is not None} - {os.getpid()}  # parsed elsewhere
    assert [None if doc is None else doc[1] for doc in docs] == [
        None if i == 120 else yamlsafe.document(_content(i)) for i in range(COUNT)
    ]
    assert docs[50] is None and docs[120] is None
    assert not children() - before  # (what other tests left may end meanwhile)


@needs_two_cores
def test_blobs_it_is_told_to_skip_are_not_parsed(store: tuple[str, list[str]]) -> None:
    git_dir, oids = store
    got = list(catfile.parsed_batch(git_dir, oids, LIMIT, tagged, set(oids[:10]), worker_from=1))
    assert [doc for _, _, doc in got[:10]] == [None] * 10
    assert all(
        doc is not None for i, (_, _, doc) in enumerate(got) if i >= 10 and i not in (50, 120)
    )


@needs_two_cores
def test_a_worker_that_dies_leaves_the_rest_to_this_process(store: tuple[str, list[str]]) -> None:
    git_dir, oids = store
    parent, fatal = os.getpid(), _content(100)

    def dying(raw: bytes) -> Any:
        if os.getpid() != parent and raw == fatal:
            os.kill(os.getpid(), signal.SIGKILL)
        return tagged(raw)

    before = children()
    got = list(catfile.parsed_batch(git_dir, oids, LIMIT, dying, worker_from=1))

    assert [(oid, content) for oid, content, _ in got] == list(catfile.batch(git_dir, oids, LIMIT))
    by = [None if doc is None else doc[0] == parent for _, _, doc in got]
    here = [i for i, mine in enumerate(by) if mine]
    assert here[0] > 0 and here[0] <= 100  # the worker handed over the first frames...
    assert not any(mine is False for mine in by[here[0] :])  # ...and this process the rest
    assert not children() - before  # (what other tests left may end meanwhile)


@pytest.mark.parametrize("worker_from", [1, catfile.WORKER_FROM])
def test_a_missing_object_is_refused_where_it_is_reached(
    store: tuple[str, list[str]], worker_from: int
) -> None:
    git_dir, oids = store
    asked = [*oids[:150], NOWHERE, *oids[150:]]
    before = children()
    got: list[str] = []
    with pytest.raises(UsageError, match=f"git cat-file: object {NOWHERE} is missing in "):
        for oid, _, _ in catfile.parsed_batch(
            git_dir, asked, LIMIT, tagged, worker_from=worker_from
        ):
            got.append(oid)
    assert got == oids[:150]
    assert not children() - before  # (what other tests left may end meanwhile)


@pytest.mark.parametrize(
    "read",
    [
        lambda git_dir, oids: catfile.batch(git_dir, oids, LIMIT),
        lambda git_dir, oids: catfile.parsed_batch(git_dir, oids, LIMIT, tagged, worker_from=1),
    ],
)
def test_a_reader_that_stops_early_leaves_no_process_behind(
    store: tuple[str, list[str]], read: Callable[[str, list[str]], Any]
) -> None:
    git_dir, oids = store
    before = children()
    stream = read(git_dir, oids)
    for _ in range(3):
        next(stream)
    assert children() - before  # git (and the worker) at work
    stream.close()
    assert not children() - before  # (what other tests left may end meanwhile)
