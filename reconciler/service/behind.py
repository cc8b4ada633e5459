"""Which devices git is ahead of: the executor behind `status --repo`'s OutOfSync.

A retained desired document names the commit it was compiled from. A device is out of sync
when the fleet at the repository's HEAD compiles to other content for it than the fleet at
that commit does (a commit that changed nothing for the device does not count), or when git
declares a device the broker holds nothing for. Reads git objects only (no checkout).
"""

from __future__ import annotations

from pathlib import Path

from linefleet_core.errors import LinefleetError, Severity
from linefleet_core.spec import Checks, FleetSpec
from linefleet_core.validation import load_checked
from linefleet_core.wire import DesiredState
from linefleet_forge.gitrepo import GitObjects, GitSource
from reconciler.service.compile import compile_device

_BASE = "file:///linefleet-status"  # any base: both sides compile with the same one


def git_behind(
    repo: Path,
    desired: dict[str, DesiredState],
    rev: str = "HEAD",
    checks: Checks | None = None,
) -> dict[str, str]:
    """`site/device` -> why the broker is behind git (empty when git is not readable).

    `checks`, shared with whoever read the working tree, spares parsing files again."""
    try:
        objects = GitObjects.open(repo)
        prefix = objects.subfolder(repo)
        head = objects.commit(rev)
    except LinefleetError:
        return {}
    checks = {} if checks is None else checks
    head_spec = _spec(objects, head.hexsha, prefix, checks)
    if head_spec is None:
        return {}
    short = head.hexsha[:12]
    specs: dict[str, FleetSpec | None] = {}
    out: dict[str, str] = {}
    for device in head_spec.devices.values():
        key = f"{device.site}/{device.id}"
        have = desired.get(key)
        if have is None:
            out[key] = f"git declares it at {short}; the broker holds no desired state for it"
            continue
        if have.commit == head.hexsha:
            continue
        if have.commit not in specs:
            specs[have.commit] = _spec(objects, have.commit, prefix, checks)
        then = specs[have.commit]
        want = compile_device(head_spec, device, head.hexsha, 1, _BASE).content_hash
        had = None
        if then is not None and device.id in then.devices:
            try:
                had = compile_device(then, then.devices[device.id], have.commit, 1, _BASE)
            except LinefleetError:
                had = None
        if had is None or had.content_hash != want:
            out[key] = (
                f"missing commit {short} from git; the broker holds {have.commit[:12]} "
                f"(generation {have.generation}) for this device"
            )
    return out


def _spec(objects: GitObjects, rev: str, prefix: str, checks: Checks) -> FleetSpec | None:
    try:
        commit = objects.commit(rev)
        spec, findings = load_checked(GitSource(commit, prefix, objects), checks)
    except LinefleetError:
        return None
    if any(f.severity is Severity.ERROR for f in findings):
        return None
    return spec
