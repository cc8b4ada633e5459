"""Document intake: every desired-state payload is verified, then persisted, before anything
acts on it.

The MQTT thread only queues payloads (`Agent.offer_desired`); the loop takes them here at the
start of each tick. Removal from the fleet is a signed tombstone (`kind: Removed`), verified
like a document and newer than the replay floor; an empty payload (the retained `desired`
cleared: unsigned, anyone with write access could send it) is refused (`unsigned-removal`) and
changes nothing. Every other payload goes once through `edge_puller/desired.receive` (size,
JSON, protocol, pinned key, signature, schema, content hash, addressee, generation against the
replay floor of each pinned key, then the edge's own checks), which parses it once and answers
a typed removal or a typed document with the JSON object as received; the tombstone of the
removal already held, delivered again (every re-subscribe), is a duplicate and changes
nothing; any other refusal becomes a `refused-document` event (with the generation the
payload claims, read in that same parse) and the incumbent keeps serving. A verified document
that only repeats the one held (perhaps re-signed with another key) just records who signed
it; a new one is written to `state.json` atomically, and only the plan that follows acts on
it.

Intake is the one writer of the local state besides the executors: persisting a verified
document before anything acts on it is its whole job. It reads and writes through `Intake`,
the few parts it needs (the agent has them).
"""

from __future__ import annotations

import queue
import time
from dataclasses import replace
from typing import Protocol

from edge_puller.desired import receive
from edge_puller.events import Emitter
from edge_puller.state import LocalState
from linefleet_core.backoff import Backoff
from linefleet_core.highwater import floor
from linefleet_core.signing import Refusal, TrustedKeys, VerifyError
from linefleet_core.wire import Applied, Removal

UNSIGNED_REMOVAL = Refusal.UNSIGNED_REMOVAL.value


class Intake(Emitter, Protocol):
    """What intake needs: the queued payloads, who the device is and whom it trusts, the
    state to persist into, the backoff a new document resets, and a way to speak."""

    inbox: queue.Queue[bytes]
    device: str
    trusted_keys: TrustedKeys
    state: LocalState
    backoff: Backoff

    def save(self, state: LocalState) -> None: ...

    def report(self) -> None: ...


def take_desired(agent: Intake) -> None:
    """Verify and persist every payload received since the last tick, in arrival order."""
    while True:
        try:
            payload = agent.inbox.get_nowait()
        except queue.Empty:
            return
        _accept(agent, payload)


def _accept(agent: Intake, payload: bytes) -> None:
    if not payload:
        agent.emit(
            "refused-document",
            UNSIGNED_REMOVAL,
            "the retained desired state was cleared without a signed removal; keeping it",
        )
        return
    held = floor(agent.state.marks, agent.trusted_keys)  # unpinned keys' marks do not bind
    gone = agent.state.removed_generation
    if gone and (held is None or gone >= held.generation):  # nothing older than the removal
        held = Applied(generation=gone, content_hash="0" * 64)
    try:
        found = receive(payload, agent.trusted_keys, agent.device, held)  # parsed once
    except RecursionError:  # JSON nested deeper than the parser's stack
        exc = VerifyError(Refusal.MALFORMED, "JSON nested too deeply")
        agent.emit("refused-document", exc.reason.value, str(exc))
        return
    except VerifyError as exc:
        if agent.state.removed_at is not None and _repeats_removal(exc, held, gone):
            return  # the tombstone already applied, sent again (a re-subscribe): nothing to do
        agent.emit("refused-document", exc.reason.value, str(exc), generation=exc.generation)
        return
    if isinstance(found, Removal):
        if agent.state.removed_at is None or found.generation > gone:  # persisted
            state = replace(agent.state, removed_at=time.time())
            agent.save(replace(state, removed_generation=found.generation))
        agent.report()
        return
    if agent.state.removed_at is not None:  # a newer verified document: back in the fleet
        agent.save(replace(agent.state, removed_at=None))
    held_target, doc = agent.state.target, found.target.document
    if (
        held_target is not None
        and doc.generation == held_target.document.generation
        and doc.content_hash == held_target.document.content_hash
    ):
        # A duplicate (perhaps re-signed with another key): only remember who signed it.
        agent.save(replace(agent.state.with_mark(found.target), last_sync=time.time()))
        return
    agent.save(agent.state.with_desired(found.raw, found.target))  # persist before acting
    agent.backoff.reset()


def _repeats_removal(exc: VerifyError, held: Applied | None, gone: int) -> bool:
    """A verified tombstone of the removal the device holds (docs/protocol.md 4.2). With the
    removal as the floor, `stale-generation` at exactly its generation is raised only for a
    tombstone whose signature, schema and addressee held: a document at that generation is a
    `generation-conflict`, anything older is below it."""
    return (
        exc.reason is Refusal.STALE
        and held is not None
        and held.generation == gone
        and exc.generation == gone
    )
