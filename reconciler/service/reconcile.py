"""`linefleet reconcile`: follow the branch, publish each new head, record what devices report.

Level-triggered: every tick fetches, resolves the branch head, and publishes it. A publish
runs in proportion to the change (`reconciler.service.incremental`): from the commit the
broker's publish marker names to the head, only the devices the change touches are compiled,
signed and compared; with no marker of ours (a first publish, a wiped broker, another key,
a held change), or at least every `full_every` seconds (and on start), the full pass
compares every device with what the broker retains, so a tick with nothing new reads the
marker and sends nothing. Status is kept apart: `last_applied_commit` moves only on
success, `last_attempted_commit` on every try; an invalid commit is terminal (Stalled until
the branch moves), an unreachable broker or remote is retried with capped, jittered backoff.
Device messages arrive on a persistent MQTT session (QoS 1 messages sent while we were down
are delivered on reconnect) and are persisted before the next tick.

Several reconcilers may follow one fleet (each with its own `name`): the one holding the
publish lease publishes, the others record device messages and stand by
(`reconciler.service.lease`); a publish is safe even when the lease is wrong
(`reconciler.service.fence`, and no publish goes back in generation).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from linefleet_core.backoff import retry_delay
from linefleet_core.errors import FindingsError, LinefleetError, TemporaryError
from linefleet_core.mqttsession import Outgoing, Session, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey
from linefleet_core.spec import FleetSpec
from linefleet_core.wire import Channel, DesiredState, client_id, parse_topic, topic_filter
from linefleet_forge.base import Forge
from reconciler.service import rollback
from reconciler.service.compile import CompileError, Documents
from reconciler.service.fleetstatus import fleet_status
from reconciler.service.incremental import Pass, publish_pass
from reconciler.service.lease import LEASE_TOPIC, Lease, decide
from reconciler.service.observed import Accepted, Observations
from reconciler.service.publish import LiveSpecs, LoadedRevision, Result, live_specs, load_revision
from reconciler.service.store import Store

MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class Settings:
    repo: Path
    address: BrokerAddress
    key: SigningKey
    state_dir: Path
    artifact_base: str
    branch: str = "main"
    remote: str | None = "origin"
    interval: float = 10.0
    name: str = "main"
    forge: str | None = None
    """Open rollback pull requests through this forge (`local`, `github://…`); None: never."""
    max_age: float | None = None
    """Sign documents with `expires_at` (`reconciler.service.publish.expiry`); None: no
    freshness bound."""
    device_keys: Mapping[str, Ed25519PublicKey] | None = None
    """Device id -> public key: those devices' reports and events must carry their signature."""
    now: dt.datetime | None = None
    """Check freezes and production windows at this instant instead of the clock (tests)."""
    lease_seconds: float = 30.0
    """How long the publish lease holds unrenewed (`reconciler.service.lease`): how long
    another reconciler waits before it takes over from one that died between publishes."""
    full_every: float = 3600.0
    """A full pass at least this often (and on start): it also repairs a retained document
    changed behind the publish marker's back, which the incremental pass does not read."""


@dataclass
class TickOutcome:
    commit: str | None = None
    published: Result | None = None
    error: str = ""
    retry_in: float = 0.0
    rollbacks: list[str] = field(default_factory=list)
    standby: str = ""
    """Why this reconciler did not publish: another one holds the publish lease."""


@dataclass
class Reconciler:
    settings: Settings
    store: Store
    observations: Observations = field(default_factory=Observations)
    failures: int = 0
    known: set[tuple[str, str]] | None = None
    revision: LoadedRevision | None = None
    """The whole fleet at the commit last published (for the health gates' rollbacks)."""
    desired: Mapping[str, DesiredState] = field(default_factory=dict)
    """The documents at that commit, by `site/device` (for fleet status): those the
    forked worker signed, or not compiled yet, are compiled when first read."""
    live: LiveSpecs | None = None
    """The fleet at the commit a retained document names (to hold changes during a freeze)."""
    last_full: float | None = None
    """When (monotonic) the last full pass ran; None: not since start."""
    generations: dict[str, int] = field(default_factory=dict)
    loaded: LoadedRevision | None = None
    """The fleet a full pass read, until that pass is done."""

    @classmethod
    def open(cls, settings: Settings) -> Reconciler:
        store = Store(settings.state_dir)
        return cls(settings, store, store.load(), live=live_specs(settings.repo))

    # --- git side -------------------------------------------------------------------------

    def head(self) -> str:
        from linefleet_forge.gitrepo import open_repo, resolve

        repo = open_repo(self.settings.repo)
        rev = self.settings.branch
        remote = self.settings.remote
        if remote and remote in [r.name for r in repo.remotes]:
            try:
                repo.remote(remote).fetch(self.settings.branch)
            except Exception as exc:  # GitCommandError and friends: the remote is away
                raise TemporaryError(f"git fetch {remote}: {exc}".splitlines()[0]) from None
            rev = f"{remote}/{self.settings.branch}"
        return str(resolve(repo, rev).hexsha)

    def tick(self) -> TickOutcome:
        """One level-triggered pass over git and the broker's desired state."""
        out = TickOutcome()
        try:
            out.commit = self.head()
            stalled = self.store.get("stalled_commit")
            if out.commit == stalled:
                out.error = self.store.get("stalled_message") or "invalid commit"
                return out
            self.store.put("last_attempted_commit", out.commit)
            reason = self.full_due()
            # A full pass reads (and validates) the fleet before it asks the broker anything.
            loaded = None if reason is None else self.load(out.commit)
            claim = self.claim(self.generation(out.commit) if loaded is None else loaded.generation)
            if isinstance(claim, str):
                out.standby = claim
                self.store.put("last_error", "")
                return out
            done = self.publish(out.commit, claim, reason, loaded)
            out.published = done.result
            self.adopt(done)
            self.store.put("last_applied_commit", out.commit)
            self.store.put("last_result", json.dumps(out.published.as_dict()))
            self.failures = 0
            out.rollbacks = self.guard()
        except TemporaryError as exc:
            self.failures += 1
            out.error = str(exc)
            out.retry_in = backoff(self.failures, exc.delay)
        except (FindingsError, CompileError) as exc:
            out.error = str(exc)
            if out.commit is not None:  # terminal for this commit: wait for the branch to move
                self.store.put("stalled_commit", out.commit)
                self.store.put("stalled_message", out.error)
        except LinefleetError as exc:  # refused credentials, older generation: retry next tick
            out.error = str(exc)
        self.store.put("last_error", out.error)
        return out

    def claim(self, generation: int) -> Lease | str:
        """The publish lease to take for `generation`, or why another reconciler keeps it.

        A lease taken for a newer generation than the one held is written at once: the pass
        that follows may read the whole fleet first (seconds), and meanwhile another
        reconciler must see the lease as this one's, not as one held for an older commit."""
        name = self.settings.name
        reader = client_id("reconciler", f"{name}-lease")
        found = retained_snapshot(self.settings.address, LEASE_TOPIC, reader, quiet=0.2)
        held = Lease.parse(found[LEASE_TOPIC].payload) if LEASE_TOPIC in found else None
        moment = time.time()
        why = decide(held, name, generation, moment)
        if why is not None:
            return why
        lease = Lease(
            name, generation, moment + self.settings.lease_seconds, self.settings.lease_seconds
        )
        if held is None or (held.holder, held.generation) != (name, generation):
            with Session(self.settings.address, reader).connect() as session:
                session.publish_all([Outgoing(LEASE_TOPIC, lease.payload())])
        return lease

    def _forge(self) -> Forge | None:
        """The forge that names who merged a commit (None: the repository's local forge)."""
        if self.settings.forge is None:
            return None
        from linefleet_forge.factory import forge_from_spec

        try:
            return forge_from_spec(self.settings.forge, self.settings.repo)
        except LinefleetError:  # e.g. no token: name the git committer, keep publishing
            return None

    def generation(self, commit: str) -> int:
        """The first-parent generation of `commit` (what the publish lease is taken for)."""
        if commit not in self.generations:
            from linefleet_forge.gitrepo import open_repo

            repo = open_repo(self.settings.repo)
            count = repo.git.rev_list("--count", "--first-parent", commit)
            self.generations = {commit: int(count)}
        return self.generations[commit]

    def full_due(self) -> str | None:
        """Why this tick must run the full pass (None: incremental when the marker allows)."""
        if self.last_full is None:
            return "the reconciler started"
        if time.monotonic() - self.last_full >= self.settings.full_every:
            return "a periodic full pass"
        return None

    def load(self, commit: str) -> LoadedRevision:
        """The validated fleet at `commit` (kept while a full pass of it is retried)."""
        if self.loaded is None or self.loaded.commit != commit:
            self.loaded = load_revision(self.settings.repo, commit, self._forge())
        return self.loaded

    def publish(
        self, commit: str, claim: Lease, full: str | None, loaded: LoadedRevision | None
    ) -> Pass:
        """Publish `commit`: the incremental pass from the marker's commit when it can, else
        (no marker of ours, or `full` names why) every device."""
        started = time.monotonic()
        done = publish_pass(
            self.settings.repo,
            commit,
            self.settings.address,
            self.settings.key,
            self.settings.artifact_base,
            full=full,
            revision=loaded,
            forge=self._forge(),
            max_age=self.settings.max_age,
            live=self.live,
            calendar_now=self.settings.now,
            claim=claim,
        )
        if done.full:
            self.last_full, self.loaded = started, None
        return done

    def adopt(self, done: Pass) -> None:
        """Keep the fleet and documents of the commit just published: a full pass hands them
        over; after an incremental one (devices already have their documents) the whole
        fleet is read again for status and the health gates, once per commit."""
        commit = done.revision.commit
        if done.full:
            revision, docs = done.revision, done.docs
        elif self.revision is not None and self.revision.commit == commit:
            return
        else:
            revision = self.load(commit)
            self.loaded = None
            docs = Documents(
                revision.spec,
                revision.commit,
                revision.generation,
                self.settings.artifact_base,
                revision.approval,
            )
        self.revision = revision
        self.desired = BySiteDevice(revision.spec, docs)
        self.known = {(d.site, d.id) for d in revision.spec.devices.values()}

    def guard(self) -> list[str]:
        """Propose a rollback in git for each line past its health gates (once per head)."""
        if self.settings.forge is None or self.revision is None:
            return []
        from linefleet_forge.factory import forge_from_spec
        from linefleet_forge.proposal import remote_url

        status = fleet_status(self.desired, self.observations)
        done = []
        for action in rollback.plan_rollbacks(self.revision.spec, status):
            key, mark = f"rollback:{action.line}", f"{self.revision.commit}:{action.model}"
            if self.store.get(key) == mark:
                continue
            forge = forge_from_spec(self.settings.forge, self.settings.repo)
            remote = remote_url(self.settings.repo, self.settings.remote or "origin")
            proposed = rollback.execute(remote, self.settings.branch, action, forge)
            self.store.put(key, mark)
            if proposed is not None:
                done.append(f"{action.summary()}: {proposed.pull.url}")
        return done

    def safe_tick(self) -> TickOutcome:
        """`tick()`, but a bug in one pass is logged and retried, never the end of the loop."""
        try:
            return self.tick()
        except Exception as exc:
            self.failures += 1
            traceback.print_exc(file=sys.stderr)
            message = f"unexpected {type(exc).__name__}: {exc} (a bug; retrying)"
            return TickOutcome(error=message, retry_in=backoff(self.failures, 1.0))

    # --- device side ----------------------------------------------------------------------

    def absorb(self, session: Session, budget: float) -> int:
        """Take device messages for up to `budget` seconds; persist them; return how many."""
        messages = session.drain(quiet=budget, limit=budget)
        dirty: set[str] = set()
        before = Counter(self.observations.rejections)
        for msg in messages:
            result = self.observations.ingest(
                msg.topic,
                msg.payload,
                msg.received,
                self.known,
                live=not msg.retain,
                device_keys=self.settings.device_keys,
            )
            if isinstance(result, Accepted):
                dirty.add(f"{result.site}/{result.device}")
            elif (where := parse_topic(result.topic)) is not None:
                refused = self.observations.devices.get(f"{where.site}/{where.device}")
                if refused is not None and refused.refused is result:
                    dirty.add(refused.key)  # its last refusal, kept per device
        added = Counter(self.observations.rejections)
        added.subtract(before)
        self.store.save(self.observations, dirty, +added)
        return len(messages)

    def run(
        self, stop: threading.Event, on_tick: Callable[[TickOutcome], None] | None = None
    ) -> None:
        """Subscribe to the devices' messages, tick, then absorb them until the next tick, until
        `stop` is set (subscribed first, so nothing a device sends during a tick is missed)."""
        filters = [topic_filter(c) for c in (Channel.REPORTED, Channel.EVENTS, Channel.ONLINE)]
        session = Session(
            self.settings.address,
            client_id("reconciler", self.settings.name),
            clean_session=False,
            subscriptions=filters,
        )
        connected = False
        try:
            while not stop.is_set():
                # Subscribed before the tick: what devices send while a (long, first) publish
                # runs is queued for this session instead of lost before it exists.
                unreachable: TemporaryError | None = None
                if not connected:
                    try:
                        session.connect()
                        connected = True
                    except TemporaryError as exc:
                        unreachable = exc
                outcome = self.safe_tick()
                if on_tick is not None:
                    on_tick(outcome)
                wait = outcome.retry_in or self.settings.interval
                if unreachable is not None:
                    self.store.put("last_error", str(unreachable))
                    wait = backoff(self.failures + 1, unreachable.delay)
                deadline = time.monotonic() + wait
                while not stop.is_set() and time.monotonic() < deadline:
                    if connected:
                        self.absorb(session, min(0.5, max(0.0, deadline - time.monotonic())))
                    else:
                        stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if connected:
                self.absorb(session, 0.1)
        finally:
            if connected:
                session.close()
            self.store.close()


class BySiteDevice(Mapping[str, DesiredState]):
    """`docs` (by device id) by `site/device`. Reading one compiles every document `docs`
    has not compiled yet, at once (`Documents.compile`); until then nothing is compiled: a
    reconciler without a forge (no health-gate rollbacks) never reads them."""

    def __init__(self, spec: FleetSpec, docs: Mapping[str, DesiredState]) -> None:
        self._ids = {f"{d.site}/{d.id}": d.id for d in spec.devices.values()}
        self._docs = docs
        self._whole = not isinstance(docs, Documents)

    def __getitem__(self, key: str) -> DesiredState:
        device = self._ids[key]
        if not self._whole and isinstance(self._docs, Documents):
            self._docs.compile(self._ids.values())  # (those compiled already are kept)
            self._whole = True
        return self._docs[device]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def backoff(failures: int, base: float) -> float:
    """The delay after `failures` failures in a row: `base` (at least a second) doubling per
    failure up to `MAX_BACKOFF`, jittered (`linefleet_core.backoff`)."""
    return retry_delay(failures, max(base, 1.0), MAX_BACKOFF)
