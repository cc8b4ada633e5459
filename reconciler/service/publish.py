"""Publish the fleet at a commit: compile, sign, compare with what the broker retains, send.

`plan_publish()` is pure: from the signed payloads and the retained snapshot it decides what to
publish, what is unchanged and which removed devices to prune. `publish()` is the executor:
it reads the repository and the broker, runs the plan, and waits for every PUBACK.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linefleet_core.errors import (
    FindingsError,
    LinefleetError,
    PermanentError,
    Severity,
    TemporaryError,
)
from linefleet_core.gcpause import paused_gc
from linefleet_core.mqttsession import Expand, Message, Outgoing, retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.signing import SigningKey, TrustedKeys, VerifyError, canonical_json, verify
from linefleet_core.spec import FleetSpec
from linefleet_core.wire import (
    PROTOCOL,
    Approval,
    Channel,
    DesiredState,
    Removal,
    parse_topic,
    topic,
    topic_filter,
)
from linefleet_core.wiredump import Dumper
from linefleet_core.yamlsafe import ParsedBlobs
from linefleet_forge.base import Forge
from reconciler.service import forkwork, holds
from reconciler.service.compile import (
    Documents,
    compile_device,
    document_body,
    encoded_spec,
    unreachable_urls,
)
from reconciler.service.fence import Fenced
from reconciler.service.lease import Lease
from reconciler.service.marker import MARKER_TOPIC, Marker


@dataclass(frozen=True)
class Signed:
    """A compiled, signed document ready for the wire."""

    site: str
    device: str
    generation: int
    content_hash: str
    payload: bytes
    expires_at: str | None = None

    @property
    def topic(self) -> str:
        return topic(self.site, self.device, Channel.DESIRED)


@dataclass(frozen=True)
class Retained:
    """What the broker holds on one desired topic, read loosely (it may be anything)."""

    generation: int | None
    content_hash: str | None
    key_id: str | None
    removal: bool = False  # a signed tombstone (`kind: Removed`)
    expires_at: str | None = None
    commit: str | None = None

    @classmethod
    def parse(cls, payload: bytes) -> Retained:
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            return cls(None, None, None)
        if not isinstance(doc, dict):
            return cls(None, None, None)
        sig = doc.get("signature")
        generation = doc.get("generation")
        commit = doc.get("commit")
        return cls(
            generation if isinstance(generation, int) else None,
            doc.get("content_hash") if isinstance(doc.get("content_hash"), str) else None,
            sig.get("key_id") if isinstance(sig, dict) else None,
            doc.get("kind") == "Removed",
            doc.get("expires_at") if isinstance(doc.get("expires_at"), str) else None,
            commit
            if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40,64}", commit)
            else None,
        )


@dataclass(frozen=True)
class Plan:
    publish: tuple[Signed, ...]
    unchanged: tuple[Signed, ...]
    prune: tuple[str, ...]  # desired topics of removed devices: a tombstone replaces them
    stale: tuple[tuple[Signed, int], ...] = ()  # (document, newer generation the broker holds)
    stale_prune: tuple[tuple[str, int], ...] = ()
    """(desired topic, generation the broker holds): a device this fleet does not have, in a
    document at least as new as the tombstone would be (a newer fleet added it)."""

    def messages(self, tombstone: Callable[[str, str], bytes]) -> list[Outgoing]:
        """The documents, then per removed device its signed tombstone (`tombstone(site,
        device)`) on `desired` and its retained `reported` and `online` cleared."""
        out = [Outgoing(s.topic, s.payload) for s in self.publish]
        for name in self.prune:
            site, device, _ = name.split("/")[2:5]
            out.append(Outgoing(name, tombstone(site, device)))
            out += [
                Outgoing(topic(site, device, c), b"") for c in (Channel.REPORTED, Channel.ONLINE)
            ]
        return out


def plan_publish(
    signed: dict[str, Signed],
    retained: dict[str, bytes],
    key_id: str,
    trusted: TrustedKeys | None = None,
    now: float | None = None,
    generation: int | None = None,
) -> Plan:
    """Publish a document when the broker lacks it, holds other content, or another key's
    signature; leave it when only generation/commit differ (content is what devices run).

    With `trusted`, a retained document that claims the same content is also verified the
    way a device would; one that fails (corrupted, forged) is replaced. Only a retained
    document signed with `key_id` can make a publish `stale` (go back in generation): devices
    keep a replay floor per signing key, so after a rotation the old key's generations
    (including a thief's forged huge one) no longer bind them.

    With `generation` (the one tombstones carry), a retained document of a device the fleet
    does not have, signed with `key_id` at that generation or later, is `stale_prune`, not
    pruned: a newer fleet added the device (devices would refuse the tombstone anyway).
    """
    publish: list[Signed] = []
    unchanged: list[Signed] = []
    stale: list[tuple[Signed, int]] = []
    for doc in signed.values():
        raw = retained.get(doc.topic)
        held = Retained.parse(raw) if raw else None
        ours = held is not None and held.key_id == key_id and trusted is not None
        if ours and raw and trusted is not None and not _verifies(raw, trusted, doc.device, now):
            held = None  # corrupted, forged or expired: devices refuse it: counts as absent
        if held is not None and (held.content_hash, held.key_id, held.expires_at) == (
            doc.content_hash,
            key_id,
            doc.expires_at,
        ):
            unchanged.append(doc)
            continue
        if (
            held is not None
            and held.key_id == key_id  # another key's generation does not bind devices that
            and held.generation is not None  # unpinned it (e.g. a forgery with a stolen key)
            and held.generation > doc.generation
        ):
            stale.append((doc, held.generation))
        publish.append(doc)
    wanted = {doc.topic for doc in signed.values()}
    prune: list[str] = []
    stale_prune: list[tuple[str, int]] = []
    for name, payload in sorted(retained.items()):
        if not payload or name in wanted or not _is_desired(name):
            continue
        gone = Retained.parse(payload)
        if gone.removal:
            continue
        if (
            generation is not None
            and gone.key_id == key_id
            and gone.generation is not None
            and gone.generation >= generation
        ):
            stale_prune.append((name, gone.generation))
        else:
            prune.append(name)
    return Plan(tuple(publish), tuple(unchanged), tuple(prune), tuple(stale), tuple(stale_prune))


def refuse_older(plan: Plan, revision: LoadedRevision) -> None:
    """Raise when the broker holds a newer generation than `revision` where it would publish."""
    found = [(f"{d.site}/{d.device}", newer) for d, newer in plan.stale]
    found += [("/".join(t.split("/")[2:4]), newer) for t, newer in plan.stale_prune]
    if found:
        where, newer = found[0]
        raise PermanentError(
            f"the broker holds generation {newer} for {where}, newer than "
            f"{revision.generation} (commit {revision.commit[:12]}); devices would refuse it. "
            f"Publish a newer revision ({len(found)} device(s) affected)"
        )


def _verifies(payload: bytes, trusted: TrustedKeys, device: str, now: float | None) -> bool:
    try:
        verify(payload, trusted, device=device, now=now)
    except VerifyError:
        return False
    return True


def _is_desired(name: str) -> bool:
    parsed = parse_topic(name)
    return parsed is not None and parsed.channel is Channel.DESIRED


def tombstone(site: str, device: str, commit: str, generation: int, key: SigningKey) -> bytes:
    """The signed removal document for a device the fleet at `commit` no longer has."""
    body = Removal(
        protocol=PROTOCOL,
        kind="Removed",
        site=site,
        device=device,
        generation=generation,
        commit=commit,
    ).model_dump(mode="json", exclude={"signature"})
    return canonical_json(key.sign(body))


def expiry(now: float, max_age: float) -> str:
    """The `expires_at` of documents signed at `now`: in (now + max_age/2, now + max_age],
    quantized to max_age/2 so publishers in the same window sign identical bytes; it moves
    (and every document is re-signed) once per max_age/2."""
    step = max_age / 2
    moment = (math.floor(now / step) + 2) * step
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat().replace("+00:00", "Z")


def sign_all(
    docs: Mapping[str, DesiredState], key: SigningKey, expires_at: str | None = None
) -> dict[str, Signed]:
    """Sign each document; with `expires_at`, as its signed freshness bound."""
    out = {}
    dumper = Dumper()  # what documents share (model versions, taxonomies) is dumped once
    with paused_gc():  # (the payloads survive; the dumps go with the dumper)
        for device, doc in docs.items():
            body = document_body(doc, dumper, spec=False)
            if expires_at is not None:
                body["expires_at"] = expires_at
            payload = key.signed_payload(body, encoded={"spec": encoded_spec(doc.spec, dumper)})
            out[device] = Signed(
                doc.site, doc.device, doc.generation, doc.content_hash, payload, expires_at
            )
    return out


WORKER_MIN_DEVICES = 2_000
"""From this many devices on, a forked worker compiles and signs some (`compile_and_sign`)."""
WORKER_BATCH = 200
"""Devices each side takes at a time (~40 ms of work)."""
WORKER_GRACE = 10.0
"""Seconds the worker may take, once this process is done, beyond twice what it took."""


def _sign_back(
    docs: Documents, ends: forkwork.Ends, key: SigningKey, expires_at: str | None
) -> tuple[list[tuple[str, str, int, str, bytes]], list[str]]:
    """The worker: batches from the back until it meets this process; per device (device,
    site, generation, content hash, payload), and the `file://` URLs its documents name."""
    ids = list(docs)
    rows: list[tuple[str, str, int, str, bytes]] = []
    local: list[str] = []
    while (batch := ends.back(WORKER_BATCH)) is not None:
        part = docs.compile(ids[i] for i in batch)
        for d, s in sign_all(part, key, expires_at).items():
            rows.append((d, s.site, s.generation, s.content_hash, s.payload))
        local += unreachable_urls(part)
    return rows, local


@dataclass(frozen=True)
class Compiled:
    """`compile_and_sign`'s documents, and who did the work."""

    docs: Documents
    signed: dict[str, Signed]
    """By device id, in id order."""
    by_worker: int = 0
    """Documents the forked worker compiled and signed."""
    redone: int = 0
    """Documents the worker had taken, compiled and signed here after it failed."""
    aside: Aside = field(default_factory=lambda: Aside(None))
    """`compile_and_sign`'s `then`: done by the worker, or to be done here."""


class Aside:
    """Work that needs neither the broker nor anything this process does next (saving caches:
    `compile_and_sign`'s `then`): the worker does it once its documents are sent back; this
    process does it when there is no worker, or the worker fails at it. `meanwhile` (once,
    while the documents are acknowledged: `publish`'s hook) and `close` (always, after)."""

    def __init__(
        self, work: Callable[[], None] | None, worker: forkwork.Forked[Any] | None = None
    ) -> None:
        self._work = work
        self._worker = worker
        self._asked = False

    def meanwhile(self) -> None:
        """Do the work here unless the worker is doing it or has done it."""
        self._asked = True
        code = None if self._worker is None else self._worker.poll()
        if self._worker is not None and code in (None, 0):
            return  # running (`close` waits for it), or done
        self._run()

    def close(self) -> None:
        """Wait for the worker (at most `WORKER_GRACE` seconds, then it is killed); if the
        publish went well (`meanwhile` ran) and the worker did not do the work, do it here."""
        if self._worker is None:
            return
        code = self._worker.wait(WORKER_GRACE)
        if code is None:
            self._worker.cancel()
        self._worker = None
        if code != 0 and self._asked:
            self._run()

    def _run(self) -> None:
        work, self._work = self._work, None
        if work is not None:
            work()


def compile_and_sign(
    revision: LoadedRevision,
    artifact_base: str,
    key: SigningKey,
    expires_at: str | None = None,
    *,
    refuse_file_urls: bool = False,
    worker_min: int | None = None,
    then: Callable[[], None] | None = None,
) -> Compiled:
    """Every device's document, compiled and signed (`sign_all`), in device-id order.

    From `worker_min` devices on (default `WORKER_MIN_DEVICES`), on a machine with a second
    core, a forked worker (`reconciler.service.forkwork`) compiles and signs devices from the
    back of the list while this process works from the front, until they meet
    (`forkwork.Ends`): with a core to spare, a large fleet takes about half the time; without,
    this process does what the worker did not get to. If the worker fails (dies, is killed,
    does not finish in time), this process compiles and signs what it had taken: the result is
    the same bytes either way (compiling and signing are deterministic, Ed25519 signatures
    too), and a real error (`CompileError`) is raised here. The worker's documents are
    compiled in this process only if someone reads them (`Documents`).
    With `refuse_file_urls`, a document naming a `file://` artifact stops it (`refuse_local`).
    `then` (work that needs no broker, e.g. saving caches) is done by the worker once its
    documents are back, while this process sends; else here: see `Compiled.aside`.
    """
    docs = Documents(
        revision.spec, revision.commit, revision.generation, artifact_base, revision.approval
    )
    ids = list(docs)
    least = WORKER_MIN_DEVICES if worker_min is None else worker_min
    ends = forkwork.Ends(len(ids))
    worker = None
    if len(ids) >= max(least, 2) and forkwork.spare_core():
        worker = forkwork.Forked.start(lambda: _sign_back(docs, ends, key, expires_at), then)
    signed: dict[str, Signed] = {}
    local: list[str] = []
    theirs = None
    try:
        started = time.monotonic()
        while (batch := ends.front(WORKER_BATCH if worker else len(ids))) is not None:
            mine = docs.compile(ids[i] for i in batch)
            signed.update(sign_all(mine, key, expires_at))
            local += unreachable_urls(mine)
        took = time.monotonic() - started
        if worker is not None and ends.worker_started():
            theirs = worker.result(WORKER_GRACE + 2 * took)
    finally:
        if worker is not None and (theirs is None or then is None):
            worker.cancel()  # (kept alive only to do `then`)
            worker = None
    aside = Aside(then, worker)
    rows, more = theirs or ([], [])
    here = len(signed)
    for device, site, generation, digest, payload in rows:
        if device not in signed:
            signed[device] = Signed(site, device, generation, digest, payload, expires_at)
    by_worker = len(signed) - here
    rest = docs.compile([d for d in ids if d not in signed])  # the worker's, if it failed
    signed.update(sign_all(rest, key, expires_at))
    if refuse_file_urls:
        refuse_local(local + more + unreachable_urls(rest))
    return Compiled(docs, {d: signed[d] for d in ids}, by_worker, len(rest), aside)


@dataclass
class Result:
    commit: str
    generation: int
    devices: int
    published: int = 0
    unchanged: int = 0
    pruned: int = 0
    published_devices: list[str] = field(default_factory=list)
    pruned_topics: list[str] = field(default_factory=list)
    dry_run: bool = False
    held: list[str] = field(default_factory=list)
    """`site/device: line waits: why` for each change held back by a freeze or window."""
    mode: str = "full"
    """`full` (every device compiled and compared) or `incremental` (only those the change
    since the last published commit touches: `reconciler.service.incremental`)."""
    full_reason: str | None = None
    """Why the full pass ran (no marker, `--full`, a policy change, ...)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "commit": self.commit,
            "generation": self.generation,
            "devices": self.devices,
            "published": self.published,
            "unchanged": self.unchanged,
            "pruned": self.pruned,
            "published_devices": self.published_devices,
            "pruned_topics": self.pruned_topics,
            "dry_run": self.dry_run,
            "held": self.held,
            "mode": self.mode,
            "full_reason": self.full_reason,
        }


@dataclass(frozen=True)
class LoadedRevision:
    spec: FleetSpec
    commit: str
    generation: int
    approval: Approval | None = None
    """Who approved `commit` (`linefleet_forge.approval`), recorded in every document."""


def load_revision(
    repo: Path, rev: str, forge: Forge | None = None, parsed: ParsedBlobs | None = None
) -> LoadedRevision:
    """The validated fleet at `rev`, with its commit SHA, first-parent generation, and who
    approved it (from `forge`'s merge record; default: the repository's local forge).

    Files an earlier run parsed are not parsed again (`linefleet_forge.gitcache`, by blob id;
    every check still runs on them). With `parsed`, the caller holds that cache (and saves it
    when it suits, `gitcache.save_parsed`); without, it is read here and saved when it changed.
    """
    from linefleet_core.validation import load_checked
    from linefleet_forge import gitcache
    from linefleet_forge.gitrepo import GitObjects, GitSource, open_repo, resolve

    git_repo = open_repo(repo)
    commit = resolve(git_repo, rev)
    top = Path(str(git_repo.working_tree_dir)).resolve()
    rel = repo.resolve().relative_to(top).as_posix()
    objects = GitObjects(str(git_repo.git_dir))
    blobs = gitcache.load_parsed(objects) if parsed is None else parsed
    source = GitSource(commit, "" if rel == "." else rel, objects, parsed=blobs)
    spec, findings = load_checked(source, parsed=blobs)
    if parsed is None:
        gitcache.save_parsed(objects, blobs)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)
    generation, approval = provenance(git_repo, commit.hexsha, forge)
    return LoadedRevision(spec, commit.hexsha, generation, approval)


def provenance(git_repo: Any, sha: str, forge: Forge | None) -> tuple[int, Approval]:
    """The first-parent generation of commit `sha` of `git_repo` and who approved it."""
    from linefleet_forge.approval import approval_of

    generation = int(git_repo.git.rev_list("--count", "--first-parent", sha))
    return generation, approval_of(git_repo, sha, forge)


LiveSpecs = Callable[[str], FleetSpec | None]
"""The fleet at a commit (None when unknown or unreadable): what a retained document runs."""


def apply_holds(
    revision: LoadedRevision,
    signed: dict[str, Signed],
    retained: dict[str, bytes],
    live: LiveSpecs,
    now: dt.datetime,
    key: SigningKey,
    artifact_base: str,
    expires_at: str | None = None,
) -> tuple[dict[str, Signed], list[str]]:
    """`signed`, with each device whose change must wait re-signed keeping its held lines."""
    out = dict(signed)
    waiting: list[str] = []
    specs: dict[str, FleetSpec | None] = {}
    lines: dict[str, dict[str, holds.Hold]] = {}
    for name, doc in signed.items():
        raw = retained.get(doc.topic)
        commit = Retained.parse(raw).commit if raw else None
        if commit is None or commit == revision.commit:
            continue
        device = revision.spec.devices[doc.device]
        if not holds.calendar_closed(revision.spec, device.site, now):
            continue  # no freeze or held window there now: nothing waits (no old fleet read)
        if commit not in specs:
            specs[commit] = live(commit)
            then = specs[commit]
            # once per commit devices run, not per device (a fleet-wide comparison)
            lines[commit] = {} if then is None else holds.held_lines(then, revision.spec, now)
        then = specs[commit]
        if then is None:
            continue
        mine = {f"{device.site}/{s.line}" for s in device.serves}
        held = {k: h for k, h in lines[commit].items() if k in mine}
        if not held:
            continue
        merged = holds.with_held(then, revision.spec, held)
        # The document keeps naming the commit the device runs: it does not run all of the
        # new one yet (status shows it out of sync), and the next publish judges it again.
        body = compile_device(merged, device, commit, revision.generation, artifact_base)
        body = body.model_copy(update={"approval": revision.approval})
        out[name] = sign_all({name: body}, key, expires_at)[name]
        waiting += [f"{doc.site}/{doc.device}: {h.render()}" for h in held.values()]
    return out, waiting


def live_specs(repo: Path) -> LiveSpecs:
    """Read the fleet at a commit of `repo` (cached); None when it is not there or invalid.
    (Files parsed for the fleet being published are reused, and the older fleets' own are
    not kept: the parse cache holds what publishing the newest commit reads.)"""
    cache: dict[str, FleetSpec | None] = {}
    parsed: list[ParsedBlobs] = []

    def read(commit: str) -> FleetSpec | None:
        if commit not in cache:
            if not parsed:
                from linefleet_forge import gitcache
                from linefleet_forge.gitrepo import GitObjects

                try:
                    parsed.append(gitcache.load_parsed(GitObjects.open(repo)))
                except LinefleetError:
                    parsed.append(ParsedBlobs())
            try:
                cache[commit] = load_revision(repo, commit, parsed=parsed[0]).spec
            except LinefleetError:
                cache[commit] = None
        return cache[commit]

    return read


KnownAt = Callable[[str], Iterable[str]]
"""The desired topics of the fleet's devices at a commit (none when it cannot be read)."""


def topics_at(live: LiveSpecs) -> KnownAt:
    """`KnownAt` from the fleet at a commit."""

    def known(commit: str) -> list[str]:
        spec = live(commit)
        if spec is None:
            return []
        return [topic(d.site, d.id, Channel.DESIRED) for d in spec.devices.values()]

    return known


def exact_topics(
    signed: dict[str, Signed], commit: str, key: SigningKey, known_at: KnownAt | None
) -> Expand:
    """What a full publish reads on a broker that hides retained messages from wildcards: the
    desired topic of every device it signs, the marker, and the devices of every other commit
    that the publish marker (ours, `key`) or a retained document found so far names (so a
    device removed since is found and gets its tombstone). Read round by round until no commit
    is new (`linefleet_core.mqttsession.collect_retained`). Not seen: a retained document of a
    device that is in none of those commits' fleets (nor in `signed`)."""
    base = [s.topic for s in signed.values()] + [MARKER_TOPIC]
    seen = {commit}
    extra: list[str] = []

    read: set[str] = set()  # topics whose commit is taken already

    def expand(found: Mapping[str, Message]) -> list[str]:
        named: set[str] = set()
        marker = found.get(MARKER_TOPIC)
        was = Marker.parse(marker.payload if marker else None, key)
        if was is not None:
            named.add(was.commit)
        for name, msg in found.items():
            if name not in read and _is_desired(name):
                read.add(name)
                if (then := Retained.parse(msg.payload).commit) is not None:
                    named.add(then)
        for new in sorted(named - seen):
            seen.add(new)
            if known_at is not None:
                extra.extend(known_at(new))
        return [*base, *extra]

    return expand


def refuse_local(local: Sequence[str]) -> None:
    """Stop (`PermanentError`) when documents name `file://` artifacts (`--refuse-file-urls`):
    `local` is what `unreachable_urls` found in them."""
    local = sorted(set(local))
    if local:
        shown = "; ".join(local[:5]) + (f"; and {len(local) - 5} more" if len(local) > 5 else "")
        raise PermanentError(
            f"{len(local)} artifact URL(s) only this machine can open: {shown}. Push the "
            "models to the registry (`linefleet artifacts push`) or pass --artifact-base"
        )


def default_artifact_base(repo: Path) -> str:
    return repo.resolve().as_uri()


@paused_gc()  # ~10 objects per document survive until the last PUBACK: collecting finds none
def publish(
    revision: LoadedRevision,
    address: BrokerAddress,
    key: SigningKey,
    artifact_base: str,
    *,
    quiet: float = 0.5,
    timeout: float = 30.0,
    signed: dict[str, Signed] | None = None,
    dry_run: bool = False,
    refuse_file_urls: bool = False,
    max_age: float | None = None,
    now: float | None = None,
    live: LiveSpecs | None = None,
    calendar_now: dt.datetime | None = None,
    topics: Sequence[str] | None = None,
    claim: Lease | None = None,
    known_at: KnownAt | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Result:
    """Compile and sign `revision` (unless `signed` already holds it), then publish the diff.

    With `dry_run`, the broker is only read: the result says what would be sent. With
    `refuse_file_urls` (CI), a document naming a `file://` artifact stops the publish.
    With `max_age`, documents carry a signed `expires_at` (see `expiry`) and an expired or soon
    re-windowed retained copy is re-signed.
    With `live` (the fleet at a commit a retained
    document names), a change that is not a rollback waits while its site is frozen at
    `calendar_now` (default: the clock): the device keeps that line as it runs it, and the
    result says which lines wait and why.
    With `topics` (the incremental pass), only those desired topics are read back and
    compared (`signed` holds their documents); by default every retained desired document.
    Unless `dry_run`, the publish marker (`reconciler.service.marker`) is cleared before the
    first document is sent and written after the last PUBACK, unless a change waits.
    Reading the broker and publishing happen on one fenced connection
    (`reconciler.service.fence`): another publisher connecting in between fails this one
    (`TemporaryError`) rather than letting it act on what it read. With `claim`, that
    connection also takes the publish lease (`reconciler.service.lease`).
    On a broker that hands retained messages only to exact-topic subscriptions, the full pass
    reads the desired topics of `revision`'s devices and of the devices at each commit the
    publish marker or a retained document names (`known_at`, by default from `live`): see
    `exact_topics`.
    `meanwhile` (the caller's work that needs no broker: saving its caches) runs once: while
    the documents' PUBACKs are awaited, or, when nothing is sent (a dry run, no change), once
    the broker is read. Not when the read or the sending fails before.
    """
    pending = [] if meanwhile is None else [meanwhile]

    def aside() -> None:
        while pending:
            pending.pop()()

    moment = time.time() if now is None else now
    if signed is None:
        expires = None if max_age is None else expiry(moment, max_age)
        signed = compile_and_sign(
            revision, artifact_base, key, expires, refuse_file_urls=refuse_file_urls
        ).signed
    desired = [topic_filter(Channel.DESIRED)] if topics is None else list(topics)
    filters = [*desired, MARKER_TOPIC]
    if known_at is None and live is not None:
        known_at = topics_at(live)
    expand = None if topics is not None else exact_topics(signed, revision.commit, key, known_at)
    # A dry run only reads: it need not take the publishing connection from anyone.
    fence = None if dry_run else Fenced(address, filters, claim=claim, expand=expand)
    with fence or contextlib.nullcontext():
        if fence is None:
            client_id = f"linefleet-publish-{uuid.uuid4().hex[:12]}"
            snapshot = retained_snapshot(address, filters, client_id, quiet=quiet, expand=expand)
        else:
            snapshot = fence.snapshot(quiet=quiet)
        marker_then = snapshot.pop(MARKER_TOPIC, None)
        held = {t: m.payload for t, m in snapshot.items()}
        waiting: list[str] = []
        if live is not None:
            at = calendar_now or dt.datetime.fromtimestamp(moment, dt.UTC)
            expires = None if max_age is None else expiry(moment, max_age)
            base = artifact_base
            signed, waiting = apply_holds(revision, signed, held, live, at, key, base, expires)
        trusted = {key.key_id: key.public}
        the_plan = plan_publish(signed, held, key.key_id, trusted, moment, revision.generation)
        refuse_older(the_plan, revision)
        result = Result(revision.commit, revision.generation, len(signed), held=waiting)
        result.unchanged = len(the_plan.unchanged)
        messages = the_plan.messages(
            lambda site, device: tombstone(site, device, revision.commit, revision.generation, key)
        )
        result.dry_run = dry_run
        marker = Marker(
            revision.commit,
            revision.generation,
            key.key_id,
            artifact_base,
            None if max_age is None else expiry(moment, max_age),
        )
        was = Marker.parse(marker_then.payload if marker_then else None, key)
        vouch = not waiting  # a held change: the broker holds less than the commit says
        clear = marker_then is not None and (bool(messages) or not vouch)
        write = vouch and (bool(messages) or was != marker)
        if fence is not None and (clear or messages or write):
            first = [Outgoing(MARKER_TOPIC, b"")] if clear else []
            last = [Outgoing(MARKER_TOPIC, marker.payload(key))] if write else []
            try:
                # the marker is never stored before the documents it vouches for
                fence.publish_all([*first, *messages], timeout, meanwhile=aside)
                fence.publish_all(last, timeout)
            except TemporaryError as exc:
                raise TemporaryError(f"{exc}; publish incomplete, run it again") from None
    aside()  # (nothing was sent)
    result.published = len(the_plan.publish)
    result.pruned = len(the_plan.prune)
    result.published_devices = [f"{s.site}/{s.device}" for s in the_plan.publish]
    result.pruned_topics = list(the_plan.prune)
    return result
