"""The incremental publish agrees with the full one, over random edits of a generated fleet.

Promise: for any change between two commits, `incremental.scope` either declines (`FullPass`:
the full pass runs) or (a) refuses exactly the commits a full load refuses, (b) compiles
byte-identical signed documents for the devices it picks, (c) picks every device whose
document a full compile changes, and reads back the topic of every device that left, and (d)
leaves the same dependency index a full load builds. A real git repository; no broker (the
comparison with the broker is `plan_publish`, shared by both passes).
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from factory_sim import fleetgen
from linefleet_core.errors import FindingsError, Severity
from linefleet_core.signing import SigningKey
from linefleet_core.spec import FleetSpec
from linefleet_core.validation import load_checked
from linefleet_core.wire import Channel, topic
from linefleet_forge.gitrepo import GitObjects, GitSource
from reconciler.service.compile import compile_device
from reconciler.service.depindex import DependencyIndex
from reconciler.service.incremental import FullPass, scope
from reconciler.service.publish import sign_all

BASE = "file:///srv/fleet"
KEY = SigningKey.generate()
STEPS = 10


def git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.name=prop", "-c", "user.email=prop@linefleet.invalid"]
    out = subprocess.run(["git", *env_args, *args], cwd=repo, check=True, capture_output=True)
    return out.stdout.decode().strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def read(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def write(repo: Path, path: Path, doc: dict[str, Any]) -> None:
    rel = path.relative_to(repo).as_posix()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fleetgen.dump(rel, doc))


# --- random edits: each returns a short description --------------------------------------


def edit_budget(repo: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(repo.glob("fleet/sites/*/lines/*.yaml")))
    doc = read(path)
    doc["rollout"].setdefault("telemetry", {})["daily_upload_budget_mb"] = rng.choice([5.0, 9.0])
    write(repo, path, doc)
    return f"budget {path.name}"


def edit_serving(repo: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(repo.glob("fleet/sites/*/lines/*.yaml")))
    doc = read(path)
    doc["rollout"]["serving"] = f"surface-classifier@{rng.randint(1, 4)}"  # may break the line
    write(repo, path, doc)
    return f"serving {path.name}"


def edit_fps(repo: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(repo.glob("fleet/sites/*/lines/*.yaml")))
    doc = read(path)
    rng.choice(doc["cameras"])["fps"] = rng.choice([10.0, 12.5, 30.0])
    write(repo, path, doc)
    return f"fps {path.name}"


def move_line(repo: Path, rng: random.Random) -> str:
    site = rng.choice(sorted(repo.glob("fleet/sites/*")))
    devices = sorted(site.glob("devices/*.yaml"))
    if len(devices) < 2:
        return "no move"
    a, b = rng.sample(devices, 2)
    da, db = read(a), read(b)
    if len(da["serves"]) < 2:
        return "no move"
    db["serves"].append(da["serves"].pop())
    write(repo, a, da)
    write(repo, b, db)
    return f"move a line {a.stem} -> {b.stem}"


def drop_device(repo: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(repo.glob("fleet/sites/*/devices/*.yaml")))
    path.unlink()
    return f"delete {path.name}"


def double_serve(repo: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(repo.glob("fleet/sites/*/devices/*.yaml")))
    doc = read(path)
    doc["id"] = f"{doc['id']}-twin"
    write(repo, path.with_name(f"{doc['id']}.yaml"), doc)  # serves cameras already served
    return f"twin of {path.name}"


def edit_model(repo: Path, rng: random.Random) -> str:
    path = repo / "fleet/models/surface-classifier.yaml"
    doc = read(path)
    if rng.random() < 0.5:
        doc["description"] = f"edited {rng.randint(0, 99)}"  # no document changes
        what = "description"
    else:
        version = rng.choice(doc["versions"])
        version["reference_stats"]["brightness"] = rng.choice([0.4, 0.6])
        what = f"v{version['version']} stats"
    write(repo, path, doc)
    return f"model {what}"


def edit_site(repo: Path, rng: random.Random) -> str:
    path = rng.choice(sorted(repo.glob("fleet/sites/*/site.yaml")))
    doc = read(path)
    doc["name"] = f"{doc['name']} {rng.randint(0, 9)}"
    write(repo, path, doc)
    return f"site {path.parent.name}"


def edit_policy(repo: Path, rng: random.Random) -> str:
    path = repo / "fleet/policy.yaml"
    doc = read(path)
    doc["heartbeat_seconds"] = rng.choice([20, 30, 45])
    write(repo, path, doc)
    return "policy"


def add_line(repo: Path, rng: random.Random) -> str:
    site = rng.choice(sorted(repo.glob("fleet/sites/*")))
    source = rng.choice(sorted(site.glob("lines/*.yaml")))
    doc = read(source)
    doc["id"] = f"line-new-{rng.randint(0, 999)}"
    write(repo, site / "lines" / f"{doc['id']}.yaml", doc)  # unserved: a warning only
    return f"add {doc['id']}"


def revert(repo: Path, rng: random.Random) -> str:
    depth = int(git(repo, "rev-list", "--count", "HEAD"))
    back = rng.randint(1, max(1, depth - 1))
    if back >= depth:
        return "no revert"
    restore(repo, git(repo, "rev-parse", f"HEAD~{back}"))
    return f"revert to HEAD~{back}"


def restore(repo: Path, sha: str) -> None:
    subprocess.run(["git", "rm", "-rq", "fleet", "taxonomies"], cwd=repo, check=True)
    git(repo, "checkout", sha, "--", "fleet", "taxonomies")


EDITS = [
    edit_budget,
    edit_budget,
    edit_serving,
    edit_fps,
    move_line,
    drop_device,
    double_serve,
    edit_model,
    edit_site,
    edit_policy,
    add_line,
    revert,
]


# --- the comparison ------------------------------------------------------------------------


def full(objects: GitObjects, sha: str) -> tuple[FleetSpec, bool]:
    spec, findings = load_checked(GitSource(objects.commit(sha), "", objects))
    return spec, not any(f.severity is Severity.ERROR for f in findings)


def signed(spec: FleetSpec, devices: list[str], sha: str) -> dict[str, bytes]:
    docs = {d: compile_device(spec, spec.devices[d], sha, 7, BASE) for d in devices}
    return {d: s.payload for d, s in sign_all(docs, KEY).items()}


def content(spec: FleetSpec) -> dict[str, str]:
    return {
        d: compile_device(spec, dev, "0" * 40, 1, BASE).content_hash
        for d, dev in spec.devices.items()
    }


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "fleet"
    shape = fleetgen.FleetShape(sites=2, lines_per_site=5, cameras_per_line=2, devices_per_site=2)
    fleetgen.write(fleetgen.generate(shape), repo)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    commit(repo, "generated")
    return repo


@pytest.mark.parametrize("seed", range(6))
def test_incremental_matches_full(fleet_repo: Path, seed: int) -> None:
    rng = random.Random(seed)
    objects = GitObjects.open(fleet_repo)
    published = git(fleet_repo, "rev-parse", "HEAD")
    spec_p, ok = full(objects, published)
    assert ok
    index = DependencyIndex.build(spec_p, published)
    declined = checked = refused = 0
    for step in range(STEPS):
        what = rng.choice(EDITS)(fleet_repo, rng)
        sha = commit(fleet_repo, f"step {step}: {what}")
        spec_c, valid = full(objects, sha)
        try:
            part = scope(objects, "", index, sha)
        except FullPass:
            declined += 1
            if valid:  # the full pass publishes: the next change starts from there
                published, spec_p, index = sha, spec_c, DependencyIndex.build(spec_c, sha)
            else:
                restore(fleet_repo, published)
            continue
        except FindingsError as exc:
            assert not valid, f"{what}: refused a commit the full load accepts: {exc}"
            refused += 1
            restore(fleet_repo, published)  # the fleet as last published, for the next edit
            continue
        assert valid, f"{what}: accepted a commit the full load refuses"
        checked += 1
        # (b) the same bytes for every device the incremental pass compiles
        picked = list(part.devices)
        assert signed(part.spec, picked, sha) == signed(spec_c, picked, sha), what
        # (c) every device whose document changes is picked; every one that left is read back
        before, after = content(spec_p), content(spec_c)
        changed = {d for d, h in after.items() if before.get(d) != h}
        assert changed <= set(picked), f"{what}: missed {sorted(changed - set(picked))}"
        for gone in set(spec_p.devices) - set(spec_c.devices):
            old = spec_p.devices[gone]
            assert topic(old.site, gone, Channel.DESIRED) in part.topics, what
        # (d) the index it leaves is the one a full load builds
        assert part.index == DependencyIndex.build(spec_c, sha), what
        published, spec_p, index = sha, spec_c, part.index
    assert checked + declined + refused == STEPS
    assert checked > 0  # the property was exercised, not only declined
