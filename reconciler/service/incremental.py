"""Publish in proportion to the change: from the last published commit to a new one.

`scope()` reads only what the change needs: the files that differ between the two commits
(`git diff-tree`), the fleet's small kinds (sites, catalogue, taxonomies, policy), and the
devices and lines the dependency index (`depindex`) says the change touches, with whatever
their checks need (the lines those devices serve; the other devices serving a changed
device's lines, for double-served cameras; every line of a site whose changed line is in
canary, for the per-site canary limit; the policy's floor lines). It runs the same per-file
and cross-file checks as a full load on that part of the fleet, and returns the documents'
devices, the desired topics to read back (new and old, for devices that moved or left) and
the index at the new commit.

It refuses (`FullPass`, naming why) whatever it cannot judge from a part of the fleet: a
policy change (it touches every device and the publish-time calendar), a file that is not a
fleet object (an artifact, a link), an object that appears at a second path (a duplicate).
The caller then runs the full pass, which is also what runs with no previous state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from linefleet_core import spec as fleetspec
from linefleet_core import validation
from linefleet_core.catalogue import ModelFamily
from linefleet_core.errors import Finding, FindingsError, Severity, UsageError
from linefleet_core.fleet import EdgeDevice, Line, Policy
from linefleet_core.gcpause import paused_gc
from linefleet_core.mqttsession import retained_snapshot
from linefleet_core.mqtturl import BrokerAddress
from linefleet_core.refs import line_key
from linefleet_core.signing import SigningKey
from linefleet_core.spec import FleetSpec, Refused, check_file
from linefleet_core.wire import Channel, DesiredState, topic
from linefleet_core.yamlsafe import MAX_FILE_BYTES
from linefleet_forge import gitcache
from linefleet_forge.base import Forge
from linefleet_forge.gitrepo import GitObjects, GitSource, open_repo
from reconciler.service.compile import Memo, compile_device, unreachable_urls
from reconciler.service.depindex import POLICY, DependencyIndex, changed_keys, entries, object_key
from reconciler.service.lease import Lease
from reconciler.service.marker import MARKER_TOPIC, Marker
from reconciler.service.publish import (
    KnownAt,
    LiveSpecs,
    LoadedRevision,
    Result,
    compile_and_sign,
    expiry,
    load_revision,
    provenance,
    publish,
    refuse_local,
    sign_all,
    topics_at,
)

SMALL_KINDS = ("Site:", "Model:", "Taxonomy:", POLICY)
"""Kinds read whole on every incremental pass: few files, and most checks read them."""
REGULAR = ("100644", "100755")
KEEP_INDEXES = 8
PARSED = "small-kinds.pickle"
PARSED_FORMAT = 2  # 2: written through linefleet_forge.gitcache


class FullPass(Exception):
    """The incremental pass cannot judge this change from part of the fleet."""


@dataclass(frozen=True)
class Scope:
    spec: FleetSpec
    """The part of the fleet at the new commit the change needs, checked."""
    devices: tuple[str, ...]
    """Ids of the devices (in `spec`) whose documents are compiled and compared."""
    topics: tuple[str, ...]
    """Desired topics to read back: the devices' topics now and, if they moved, before."""
    index: DependencyIndex
    changed_files: int
    base: str
    """The commit the change is measured from."""


@dataclass(frozen=True)
class _Sides:
    old: BaseModel | None
    new: BaseModel | None


def scope(objects: GitObjects, prefix: str, old: DependencyIndex, commit: str) -> Scope:
    """What publishing `commit` after `old.commit` touches; raises `FullPass` or
    `FindingsError` (the change breaks the fleet: the full load would refuse it too)."""
    changes = [] if old.commit == commit else objects.changes(old.commit, commit, prefix)
    if not changes:  # nothing under fleet/ or taxonomies/ changed: no document can
        return Scope(FleetSpec(), (), (), dataclasses.replace(old, commit=commit), 0, old.commit)
    findings: list[Finding] = []
    sides: dict[str, _Sides] = {}
    checks: fleetspec.Checks = {}  # each file is parsed and schema-checked once
    for change in changes:
        if fleetspec.shown_name(change.path) != change.path:  # (the full pass refuses it)
            raise FullPass(f"{fleetspec.shown_name(change.path)}: a name that is not UTF-8")
        if not change.path.endswith(fleetspec.YAML_SUFFIXES):
            raise FullPass(f"{change.path} changed (not a fleet file)")
        if not change.deleted and change.new_mode not in REGULAR:
            raise FullPass(f"{change.path} is not a regular file")
    blobs = objects.read(oid for c in changes for oid in (c.old_oid, c.new_oid) if oid.strip("0"))
    for change in changes:
        before = None if change.added else check_file(change.path, blobs[change.old_oid]).obj
        after: BaseModel | None = None
        if not change.deleted:
            raw = blobs[change.new_oid]
            if len(raw) > MAX_FILE_BYTES:
                raise FullPass(f"{change.path} is too large")
            checked = checks[(change.path, raw)] = check_file(change.path, raw)
            findings.extend(checked.findings)
            after = checked.obj
        if isinstance(before, Policy) or isinstance(after, Policy):
            raise FullPass(f"{change.path}: the policy changed")
        sides[change.path] = _Sides(before, after)
    _stop_on_errors(findings)

    paths = _paths(old, sides)
    changed: set[str] = set()
    for side in sides.values():
        changed |= changed_keys(side.old, side.new)
    new_devices = {s.new.id: s.new for s in sides.values() if isinstance(s.new, EdgeDevice)}
    affected = old.dependents(changed) | set(new_devices)
    changed_lines = {s.new.key: s.new for s in sides.values() if isinstance(s.new, Line)}

    # Round 1: the small kinds and the devices; round 2: the lines they (and the change) need.
    device_keys = {f"EdgeDevice:{d}" for d in affected}
    served_by_changed = {line_key(d.site, s.line) for d in new_devices.values() for s in d.serves}
    device_keys |= {f"EdgeDevice:{d}" for d in old.serving(served_by_changed)}
    small = [k for k in paths if k.startswith(SMALL_KINDS)]
    small_paths = {paths[k] for k in small}
    cached = _load_parsed(objects)
    checks.update(cached)
    first = _read(
        objects, commit, prefix, [paths[k] for k in (*small, *device_keys) if k in paths], checks
    )
    devices = [obj for obj in first.values() if isinstance(obj, EdgeDevice)]
    policy = next((o for o in first.values() if isinstance(o, Policy)), Policy(kind="Policy"))

    line_keys = {f"Line:{line_key(d.site, s.line)}" for d in devices for s in d.serves}
    line_keys |= {f"Line:{k}" for k in old.lines_depending(changed)}
    line_keys |= {f"Line:{k}" for k in changed_lines}
    line_keys |= {f"Line:{k}" for k in policy.floors.lines}
    canary_sites = {
        line.site
        for line in changed_lines.values()
        if line.rollout.candidate is not None and line.rollout.candidate.stage == "canary"
    }
    line_keys |= {k for k in paths if k.startswith("Line:") and k[5:].split("/")[0] in canary_sites}
    wanted = [paths[k] for k in (*small, *device_keys, *line_keys) if k in paths]

    source = _PartSource(commit, _files(objects, commit, prefix, wanted))
    spec, found = fleetspec.load(source, checks)
    parsed = {(p, raw): checks[(p, raw)] for p, raw in source.found if p in small_paths}
    if parsed.keys() != cached.keys():
        _save_parsed(objects, parsed)
    # The lines not read are declared all the same: what names them (the catalogue's
    # evidence) is not "unknown". `broken` is the set `FleetSpec.exists` also counts.
    spec.broken.update(k for k in paths if k.startswith("Line:") and k[5:] not in spec.lines)
    found += validation.check(spec)
    families = {s.new.name for s in sides.values() if isinstance(s.new, ModelFamily)}
    if families:  # artifacts are read only for the catalogue entries that changed
        part = FleetSpec(models={n: spec.models[n] for n in families if n in spec.models})
        part.docs = spec.docs
        found += validation.artifacts(part, GitSource(_Commit(commit), prefix, objects))
    _stop_on_errors(found)

    dev_entries, line_entries = entries(spec.devices.values(), spec.lines.values())
    kept_devices = {d: e for d, e in old.devices.items() if d not in affected}
    kept_lines = {
        k: e for k, e in old.lines.items() if f"Line:{k}" not in changed and f"Line:{k}" in paths
    }
    index = DependencyIndex(
        commit, paths, {**kept_devices, **dev_entries}, {**kept_lines, **line_entries}
    )
    topics = {
        topic(spec.devices[d].site, d, Channel.DESIRED) for d in affected if d in spec.devices
    }
    topics |= {topic(old.devices[d].site, d, Channel.DESIRED) for d in affected if d in old.devices}
    return Scope(
        spec,
        tuple(sorted(d for d in affected if d in spec.devices)),
        tuple(sorted(topics)),
        index,
        len(changes),
        old.commit,
    )


def _paths(old: DependencyIndex, sides: dict[str, _Sides]) -> dict[str, str]:
    """Object key -> path at the new commit; `FullPass` when an object would have two."""
    paths = dict(old.paths)
    for path, side in sides.items():
        if side.old is not None and paths.get(object_key(side.old)) == path:
            del paths[object_key(side.old)]
    for path, side in sides.items():
        if side.new is None:
            continue
        key = object_key(side.new)
        if key in paths and paths[key] != path:
            raise FullPass(f"{path} declares {key}, which {paths[key]} declares too")
        paths[key] = path
    return paths


def _stop_on_errors(findings: list[Finding]) -> None:
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)


@dataclass(frozen=True)
class _Commit:
    hexsha: str


@dataclass
class _PartSource:
    """Some of the fleet's files at one commit (`fleetspec.Source`)."""

    commit: str
    found: list[tuple[str, bytes]]

    @property
    def label(self) -> str:
        return f"commit {self.commit[:12]} (the part a change touches)"

    def files(self) -> Iterator[tuple[str, bytes | Refused]]:
        yield from self.found


def _files(
    objects: GitObjects, commit: str, prefix: str, paths: list[str]
) -> list[tuple[str, bytes]]:
    """The content of `paths` at `commit`, in one `git ls-tree` and one `git cat-file`."""
    base = f"{prefix}/" if prefix else ""
    unique = sorted(set(paths))
    listed = objects.sizes(commit, [base + p for p in unique])
    oids = {}
    for path in unique:
        mode, oid, size = listed.get(base + path, ("", "", 0))
        if mode not in REGULAR or size > MAX_FILE_BYTES:
            raise FullPass(f"{path}: not a regular fleet file at {commit[:12]}")
        oids[path] = oid
    content = objects.read(oids.values())
    return [(path, content[oid]) for path, oid in oids.items()]


def _read(
    objects: GitObjects, commit: str, prefix: str, paths: list[str], checks: fleetspec.Checks
) -> dict[str, BaseModel]:
    """The objects of `paths` (those that load) by path."""
    out = {}
    for path, raw in _files(objects, commit, prefix, paths):
        checked = checks.get((path, raw))
        if checked is None:
            checked = checks[(path, raw)] = check_file(path, raw)
        obj = checked.obj
        if obj is not None:
            out[path] = obj
    return out


# --- the index on disk, beside the repository's objects -------------------------------


def _load_parsed(objects: GitObjects) -> fleetspec.Checks:
    """The small kinds' files as the last incremental pass parsed and checked them (the
    catalogue grows with the fleet's evidence: reading it back is ~5x cheaper than parsing).
    A pickle in the repository's own git folder (`linefleet_forge.gitcache`)."""
    found = gitcache.read_pickle(index_dir(objects) / PARSED, PARSED_FORMAT)
    return found if isinstance(found, dict) else {}


def _save_parsed(objects: GitObjects, checks: fleetspec.Checks) -> None:
    gitcache.write_pickle(index_dir(objects) / PARSED, PARSED_FORMAT, checks)


def index_dir(objects: GitObjects) -> Path:
    return gitcache.folder(objects, "publish-index")


def load_index(objects: GitObjects, commit: str) -> DependencyIndex | None:
    try:
        raw = (index_dir(objects) / f"{commit}.json").read_bytes()
    except OSError:
        return None
    index = DependencyIndex.from_json(raw)
    return index if index is not None and index.commit == commit else None


def save_index(objects: GitObjects, index: DependencyIndex) -> None:
    """Write atomically; keep the newest `KEEP_INDEXES`. Best effort: a read-only repository
    only costs the next publish its incremental pass."""
    folder = index_dir(objects)
    gitcache.write_bytes(folder / f"{index.commit}.json", index.to_json())
    try:
        old = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[KEEP_INDEXES:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass


# --- the pass: incremental when the broker and the index agree, else full ---------------


@dataclass(frozen=True)
class Pass:
    """One publish and what it compiled: the running reconciler keeps the documents."""

    result: Result
    revision: LoadedRevision
    """The whole fleet at the commit (full pass), or the part the change touched."""
    docs: Mapping[str, DesiredState]
    """Compiled documents by device id: every device (full pass) or those compared."""

    @property
    def full(self) -> bool:
        return self.result.mode == "full"


def publish_commit(
    repo: Path,
    rev: str,
    address: BrokerAddress,
    key: SigningKey,
    artifact_base: str,
    *,
    full: bool = False,
    forge: Forge | None = None,
    dry_run: bool = False,
    refuse_file_urls: bool = False,
    max_age: float | None = None,
    live: LiveSpecs | None = None,
    calendar_now: dt.datetime | None = None,
) -> Result:
    """Publish the fleet at `rev` of `repo`: incrementally from the commit the broker's
    publish marker names when that marker is ours (key, artifact base, expiry window) and
    this repository kept that commit's dependency index; otherwise (or with `full`) the full
    pass, which leaves the index of `rev` for the next one.

    The cycle collector stays paused until the pass's fleet, documents and index (which only
    `publish_pass` returns) are freed: its closing young-generation collection then walks what
    is left, not the ~1 million objects of a 10,000-device full pass (0.4 s of CPU, measured)."""
    with paused_gc():  # (the Pass is dropped here, before the collection)
        return publish_pass(
            repo,
            rev,
            address,
            key,
            artifact_base,
            full="--full" if full else None,
            forge=forge,
            dry_run=dry_run,
            refuse_file_urls=refuse_file_urls,
            max_age=max_age,
            live=live,
            calendar_now=calendar_now,
        ).result


def publish_pass(
    repo: Path,
    rev: str,
    address: BrokerAddress,
    key: SigningKey,
    artifact_base: str,
    *,
    full: str | None = None,
    forge: Forge | None = None,
    dry_run: bool = False,
    refuse_file_urls: bool = False,
    max_age: float | None = None,
    live: LiveSpecs | None = None,
    calendar_now: dt.datetime | None = None,
    claim: Lease | None = None,
    revision: LoadedRevision | None = None,
) -> Pass:
    """`publish_commit`, returning what it compiled too; `full` names why a full pass must
    run (None: incremental when the marker allows), `claim` is the publish lease to take
    (`reconciler.service.lease`) on the publishing connection, `revision` the fleet at `rev`
    if the caller has read it already (a full pass then does not read it again).

    The cycle collector is paused for the pass (`linefleet_core.gcpause`): in a process that
    holds a fleet (the reconcile loop keeps one; 770,000 objects at 10,000 devices) a full
    collection triggered by the pass's allocations walked all of it, adding 0.5-1 s to a
    one-line change's 0.3 s at random; the pass's own young objects are collected after it."""
    with paused_gc():
        return _publish_pass(
            repo,
            rev,
            address,
            key,
            artifact_base,
            full=full,
            forge=forge,
            dry_run=dry_run,
            refuse_file_urls=refuse_file_urls,
            max_age=max_age,
            live=live,
            calendar_now=calendar_now,
            claim=claim,
            revision=revision,
        )


def _publish_pass(
    repo: Path,
    rev: str,
    address: BrokerAddress,
    key: SigningKey,
    artifact_base: str,
    *,
    full: str | None,
    forge: Forge | None,
    dry_run: bool,
    refuse_file_urls: bool,
    max_age: float | None,
    live: LiveSpecs | None,
    calendar_now: dt.datetime | None,
    claim: Lease | None,
    revision: LoadedRevision | None,
) -> Pass:
    objects = GitObjects.open(repo)
    commit = objects.commit(rev).hexsha
    top = Path(objects.work_tree).resolve()
    rel = repo.resolve().relative_to(top).as_posix()
    prefix = "" if rel == "." else rel
    moment = time.time()
    expires = None if max_age is None else expiry(moment, max_age)
    common: dict[str, Any] = {
        "dry_run": dry_run,
        "max_age": max_age,
        "now": moment,
        "live": live,
        "calendar_now": calendar_now,
        "claim": claim,
    }
    known_at = _known_at(objects, live)
    reason = full
    found: Scope | None = None
    if reason is None:
        reason, old = _previous(objects, address, key, artifact_base, expires)
        if old is not None:
            try:
                found = scope(objects, prefix, old, commit)
            except FullPass as exc:
                reason = str(exc)
    if found is None:
        parsed = gitcache.load_parsed(objects)
        if revision is None or revision.commit != commit:
            revision = load_revision(repo, commit, forge, parsed)
        loaded = revision

        def keep() -> None:
            """The caches: the parse cache, and (unless a dry run) the commit's dependency
            index (~0.3 s of CPU at 10,000 devices). Written by the forked worker once its
            documents are back, while this process sends; without a worker, while the
            broker and the devices work through the documents (once after the last PUBACK):
            never before the first document, and never delaying the marker. (The index of a
            commit is what that commit's fleet is, published or not: the marker says what
            is.)"""
            gitcache.save_parsed(objects, parsed)
            if not dry_run:
                save_index(objects, DependencyIndex.build(loaded.spec, commit))

        done = compile_and_sign(
            revision, artifact_base, key, expires, refuse_file_urls=refuse_file_urls, then=keep
        )
        try:
            result = publish(
                revision,
                address,
                key,
                artifact_base,
                signed=done.signed,
                known_at=known_at,
                meanwhile=done.aside.meanwhile,
                **common,
            )
        finally:
            done.aside.close()
        result.full_reason = reason
        return Pass(result, revision, done.docs)
    generation, approval = provenance(open_repo(repo), commit, forge)
    memo: Memo = {}  # a model version is compiled once, not once per line
    compiled = {
        d: compile_device(
            found.spec, found.spec.devices[d], commit, generation, artifact_base, memo, approval
        )
        for d in found.devices
    }
    if refuse_file_urls:
        refuse_local(unreachable_urls(compiled))
    part = LoadedRevision(found.spec, commit, generation, approval)
    signed = sign_all(compiled, key, expires)
    result = publish(
        part, address, key, artifact_base, signed=signed, topics=found.topics, **common
    )
    result.mode = "incremental"
    result.devices = len(found.index.devices)
    result.unchanged = result.devices - result.published
    if not dry_run and found.index.commit != found.base:
        save_index(objects, found.index)  # (the index of a commit never changes)
    return Pass(result, part, compiled)


def _known_at(objects: GitObjects, live: LiveSpecs | None) -> KnownAt:
    """The desired topics of the devices at a commit: from its dependency index when this
    repository kept one (cheap), else from the fleet at that commit (`live`)."""
    fallback = None if live is None else topics_at(live)

    def known(commit: str) -> list[str]:
        index = load_index(objects, commit)
        if index is not None:
            return [topic(e.site, d, Channel.DESIRED) for d, e in index.devices.items()]
        return [] if fallback is None else list(fallback(commit))

    return known


def _previous(
    objects: GitObjects,
    address: BrokerAddress,
    key: SigningKey,
    artifact_base: str,
    expires: str | None,
) -> tuple[str | None, DependencyIndex | None]:
    """The index of the commit the broker's marker vouches for, or why there is none."""
    client_id = f"linefleet-publish-{uuid.uuid4().hex[:12]}"
    got = retained_snapshot(address, MARKER_TOPIC, client_id).get(MARKER_TOPIC)
    marker = Marker.parse(got.payload if got else None, key)
    if marker is None:
        why = "no publish marker on the broker" if got is None else "the marker is not ours"
        return f"{why} (first publish, a wiped broker, or an unfinished or held publish)", None
    if marker.key_id != key.key_id:
        return "the last publish used another signing key", None
    if marker.artifact_base != artifact_base:
        return f"the last publish used artifact base {marker.artifact_base}", None
    if marker.expires_at != expires:
        return "the expiry window moved: every document is re-signed", None
    index = load_index(objects, marker.commit)
    if index is None:
        return f"no dependency index for {marker.commit[:12]} in this repository", None
    try:
        objects.commit(marker.commit)
    except UsageError:
        return f"{marker.commit[:12]} is not in this repository", None
    return None, index
