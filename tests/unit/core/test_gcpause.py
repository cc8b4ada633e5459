"""`paused_gc`: cycle collection off while a large structure is built, back on afterwards."""

from __future__ import annotations

import gc
import socket
import weakref
from pathlib import Path

import pytest

from linefleet_core.gcpause import paused_gc


def test_collection_is_paused_inside_and_restored_after_even_on_error() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():  # nested: the outer pause decides
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        raise ValueError("boom")
    assert gc.isenabled()


def test_what_was_built_while_paused_is_still_collectable() -> None:
    """Objects are moved to the oldest generation, not frozen for good: a cycle dropped
    later is freed by a full collection."""

    class Node:
        other: object = None

    with paused_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a
    assert gc.get_freeze_count() == 0
    del a, b
    assert gc.collect() >= 2


def test_a_caller_that_disabled_collection_keeps_it_disabled() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_garbage_cycles_made_while_paused_do_not_outlive_the_pause() -> None:
    """A closed client in a reference cycle holding sockets (as a paho client and its owner
    do) is freed when the pause ends, not promoted to the oldest generation where only a
    rare full collection would close its descriptors: 2 per client, until `select()`
    failed past descriptor 1024 in a long-lived process."""

    class Client:
        def __init__(self) -> None:
            self.pair = socket.socketpair()
            self.me = self  # a cycle: only the cycle collector frees it

    def open_fds() -> int:
        return sum(1 for _ in Path("/proc/self/fd").iterdir())

    gc.collect()
    before = open_fds()
    for _ in range(50):
        with paused_gc():
            Client()
    assert open_fds() - before < 10  # 100 descriptors if each pause left its cycle behind


def test_as_a_decorator_the_pause_ends_after_the_function_s_locals_are_freed() -> None:
    """Commands (`status`, `validate`, `plan`) pause collection for their whole run: what
    they built is freed by reference counting when they return, so the closing collection
    walks only what is left, and cycles they dropped are still freed by it."""
    seen: list[bool] = []
    dropped: list[object] = []

    class Node:
        other: object = None

    @paused_gc()
    def command() -> int:
        seen.append(gc.isenabled())
        a, b = Node(), Node()
        a.other, b.other = b, a  # garbage once the command returns
        dropped.append(weakref.ref(a))
        return 7

    assert command() == 7
    assert seen == [False]
    assert gc.isenabled()
    assert dropped[0]() is None  # type: ignore[operator]  # the closing collection freed it
