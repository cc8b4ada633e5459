"""A small, valid fleet repository for tests: 2 sites, 4 lines, 3 devices, 3 model versions.

    write_minifleet(root)                       # fleet/ and taxonomies/ under root
    repo = init_repo(root)                      # git init, user configured, nothing committed
    base = commit_all(root, "initial fleet")    # commit everything; returns the SHA
    edit_rollout(root, "toledo/line-1", serving="surface-classifier@3", candidate=None,
                 previous="surface-classifier@2")      # None removes a key
    edit_line(root, "toledo/line-1", lambda doc: doc["cameras"].pop())
    spec, findings = load_docs(documents())     # in memory, no files: for pure unit tests

The fleet (every line is valid in every file, and `linefleet validate` passes):
- sites `toledo` (America/New_York; production mon-fri 22:00-06:00, crossing midnight;
  freeze 2026-12-20 -> 2027-01-04 "year-end inventory") and `dresden` (Europe/Berlin;
  production mon-sat 06:00-14:00; no freeze);
- taxonomy `surface-defects` v1 (ok, scratch, contamination) and v2 (contamination split into
  dust and oil);
- model family `surface-classifier`: v1 on taxonomy v1, v2 and v3 on taxonomy v2;
- lines:
  `toledo/line-1`  serving @2, previous @1, candidate @3 in shadow (evidence: 0.95 vs 0.93, good)
  `toledo/line-2`  serving @2, candidate @3 in shadow (evidence: 0.90 vs 0.94, too weak)
  `dresden/line-1` serving @2, previous @1, candidate @3 in canary 0.1 (0.945 vs 0.95, within 0.01)
  `dresden/line-2` serving @1 on taxonomy v1, no candidate (no evidence for @3)
- policy: metric accuracy, tolerance 0.01, min 100 holdout frames, 2 canary lines per site.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from linefleet_core import yamledit
from linefleet_core.errors import Finding
from linefleet_core.placement import line_path
from linefleet_core.spec import FleetSpec, load
from linefleet_core.validation import check

API = "linefleet.io/v1"
FIXED_DATE = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
# Tue 2026-11-03 12:00 UTC = 07:00 in Toledo (no window) and 13:00 in Dresden (window open).
QUIET = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)
# Inside Toledo's year-end freeze (2026-12-20 -> 2027-01-04).
IN_FREEZE = dt.datetime(2026, 12, 23, 12, 0, tzinfo=dt.UTC)
# The next step for a line with surface-classifier@3 in shadow.
TO_CANARY = {"model": "surface-classifier@3", "stage": "canary", "canary_fraction": 0.1}


def _camera(cam_id: str, side: str = "top") -> dict[str, Any]:
    return {
        "id": cam_id,
        "resolution": {"width": 640, "height": 480},
        "lighting": {"profile": "ring-white", "color_temperature_k": 5600, "intensity_lux": 1200.0},
        "mount": {"angle_deg": 0.0, "height_mm": 350.0},
        "conveyor_side": side,
    }


def _line(
    site: str, line_id: str, serving: str, taxonomy: str = "surface-defects@2", **rollout: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Line",
        "id": line_id,
        "site": site,
        "name": f"{site.title()} {line_id}",
        "product": "door-panel",
        "taxonomy": taxonomy,
        "cameras": [_camera("cam-1", "top"), _camera("cam-2", "left")],
        "rollout": {"serving": serving, **rollout},
    }


def _evidence(candidate: float, incumbent: float, model: str, frames: int) -> dict[str, Any]:
    return {
        "metric": "accuracy",
        "candidate": candidate,
        "incumbent": incumbent,
        "incumbent_model": model,
        "holdout_frames": frames,
        "dataset": "holdout-2026-10",
    }


@functools.cache
def placeholder_artifact(version: int) -> bytes:
    """The bytes `write_minifleet` writes for a version's artifact: a real tiny ONNX classifier
    with the version's output classes and a 64x64 input (`validate` reads the graph of every
    artifact it can open); version 3 is inverted, as in `use_real_artifacts`."""
    from tests.support.onnx_models import build

    classes = V1 if version == 1 else V2
    return build(classes=tuple(classes), height=64, width=64, invert=version == 3)


def _model_version(version: int, taxonomy: str, classes: list[str], **extra: Any) -> dict[str, Any]:
    blob = placeholder_artifact(version)
    return {
        "version": version,
        "taxonomy": taxonomy,
        "output_classes": list(classes),  # a copy: tests mutate documents()
        "artifact": {
            "url": f"file://artifacts/surface-classifier-{version}.onnx",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
        },
        "input": {"shape": [1, 3, 64, 64], "color": "rgb"},
        "opset": 13,
        **extra,
    }


def _device(site: str, dev_id: str, serves: list[tuple[str, list[str]]]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "EdgeDevice",
        "id": dev_id,
        "site": site,
        "serves": [{"line": line, "cameras": cams} for line, cams in serves],
        "hardware": {"cpu": "x86_64", "cores": 4, "memory_mb": 8192},
        "onnx": {"max_opset": 17, "execution_providers": ["CPUExecutionProvider"]},
    }


V1 = ["ok", "scratch", "contamination"]
V2 = ["ok", "scratch", "dust", "oil"]


def documents() -> dict[str, dict[str, Any]]:
    """Every file of the mini fleet: repository-relative path -> document."""
    classes = {
        "ok": ("no defect", "none"),
        "scratch": ("a linear mark in the coating", "major"),
        "contamination": ("foreign matter on the surface", "minor"),
        "dust": ("dry particles on the surface", "minor"),
        "oil": ("oily film or droplets", "major"),
    }

    def tax_classes(ids: list[str]) -> list[dict[str, str]]:
        return [{"id": c, "definition": classes[c][0], "severity": classes[c][1]} for c in ids]

    return {
        "fleet/policy.yaml": {
            "apiVersion": API,
            "kind": "Policy",
            "promotion": {"metric": "accuracy", "tolerance": 0.01, "min_holdout_frames": 100},
            "max_canary_lines_per_site": 2,
        },
        "taxonomies/surface-defects/v1.yaml": {
            "apiVersion": API,
            "kind": "Taxonomy",
            "name": "surface-defects",
            "version": 1,
            "classes": tax_classes(V1),
        },
        "taxonomies/surface-defects/v2.yaml": {
            "apiVersion": API,
            "kind": "Taxonomy",
            "name": "surface-defects",
            "version": 2,
            "classes": tax_classes(V2),
            "migration": [{"split": "contamination", "into": ["dust", "oil"]}],
        },
        "fleet/models/surface-classifier.yaml": {
            "apiVersion": API,
            "kind": "Model",
            "name": "surface-classifier",
            "versions": [
                _model_version(1, "surface-defects@1", V1),
                _model_version(
                    2,
                    "surface-defects@2",
                    V2,
                    evaluation={
                        "toledo/line-1": _evidence(0.93, 0.91, "surface-classifier@1", 400),
                    },
                ),
                _model_version(
                    3,
                    "surface-defects@2",
                    V2,
                    evaluation={
                        "toledo/line-1": _evidence(0.95, 0.93, "surface-classifier@2", 500),
                        "toledo/line-2": _evidence(0.90, 0.94, "surface-classifier@2", 300),
                        "dresden/line-1": _evidence(0.945, 0.95, "surface-classifier@2", 250),
                    },
                ),
            ],
        },
        "fleet/sites/toledo/site.yaml": {
            "apiVersion": API,
            "kind": "Site",
            "id": "toledo",
            "name": "Toledo body shop",
            "timezone": "America/New_York",
            "approvers": ["@acme/toledo-quality"],
            "production_windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "22:00", "end": "06:00"}
            ],
            "freeze_periods": [
                {
                    "start": "2026-12-20T00:00",
                    "end": "2027-01-04T00:00",
                    "reason": "year-end inventory",
                }
            ],
        },
        "fleet/sites/dresden/site.yaml": {
            "apiVersion": API,
            "kind": "Site",
            "id": "dresden",
            "name": "Dresden paint shop",
            "timezone": "Europe/Berlin",
            "production_windows": [
                {
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat"],
                    "start": "06:00",
                    "end": "14:00",
                }
            ],
        },
        "fleet/sites/toledo/lines/line-1.yaml": _line(
            "toledo",
            "line-1",
            "surface-classifier@2",
            candidate={"model": "surface-classifier@3", "stage": "shadow"},
            previous="surface-classifier@1",
        ),
        "fleet/sites/toledo/lines/line-2.yaml": _line(
            "toledo",
            "line-2",
            "surface-classifier@2",
            candidate={"model": "surface-classifier@3", "stage": "shadow"},
        ),
        "fleet/sites/dresden/lines/line-1.yaml": _line(
            "dresden",
            "line-1",
            "surface-classifier@2",
            candidate={"model": "surface-classifier@3", "stage": "canary", "canary_fraction": 0.1},
            previous="surface-classifier@1",
        ),
        "fleet/sites/dresden/lines/line-2.yaml": _line(
            "dresden", "line-2", "surface-classifier@1", taxonomy="surface-defects@1"
        ),
        "fleet/sites/toledo/devices/toledo-edge-1.yaml": _device(
            "toledo", "toledo-edge-1", [("line-1", ["cam-1", "cam-2"]), ("line-2", ["cam-1"])]
        ),
        "fleet/sites/toledo/devices/toledo-edge-2.yaml": _device(
            "toledo", "toledo-edge-2", [("line-2", ["cam-2"])]
        ),
        "fleet/sites/dresden/devices/dresden-edge-1.yaml": _device(
            "dresden",
            "dresden-edge-1",
            [("line-1", ["cam-1", "cam-2"]), ("line-2", ["cam-1", "cam-2"])],
        ),
    }


class MemorySource:
    """A fleet held in memory (path -> document), loadable like a directory or a commit."""

    def __init__(self, docs: dict[str, Any], label: str = "memory") -> None:
        self.docs = docs
        self.label = label

    def files(self) -> Iterator[tuple[str, bytes]]:
        for rel in sorted(self.docs):
            yield rel, _dump(self.docs[rel]).encode("utf-8")


def load_docs(docs: dict[str, Any]) -> tuple[FleetSpec, list[Finding]]:
    """Load in-memory documents with every single-revision check (schema and references)."""
    spec, findings = load(MemorySource(docs))
    findings.extend(check(spec))
    return spec, findings


def line_rel(key: str) -> str:
    """The repository-relative path of a line's file: `fleet/sites/<site>/lines/<line>.yaml`."""
    return line_path(key)


def write_minifleet(root: Path) -> None:
    """Write the mini fleet under `root` (created if missing), with an artifact file for every
    catalogue version (`validate` checks they exist with the declared size and sha256)."""
    docs = documents()
    for rel, doc in docs.items():
        write_doc(root / rel, doc)
    for entry in docs["fleet/models/surface-classifier.yaml"]["versions"]:
        version = int(entry["version"])
        path = root / "artifacts" / f"surface-classifier-{version}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(placeholder_artifact(version))


def write_doc(path: Path, doc: Any) -> None:
    """Write one document as block-style YAML, keys in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dump(doc), encoding="utf-8")


def line_file(root: Path, key: str) -> Path:
    return root / line_rel(key)


def device_file(root: Path, site: str, device: str) -> Path:
    return root / "fleet" / "sites" / site / "devices" / f"{device}.yaml"


def model_file(root: Path, name: str = "surface-classifier") -> Path:
    return root / "fleet" / "models" / f"{name}.yaml"


def edit_yaml(path: Path, mutate: Callable[[Any], None]) -> None:
    """Round-trip edit one file (`linefleet_core.yamledit`): comments, order and quotes stay."""
    yamledit.edit(path, mutate)


def edit_line(root: Path, key: str, mutate: Callable[[Any], None]) -> None:
    edit_yaml(line_file(root, key), mutate)


def edit_rollout(root: Path, key: str, **changes: Any) -> None:
    """Set keys of a line's `rollout` (a value of None removes the key)."""

    def apply(doc: Any) -> None:
        rollout = doc["rollout"]
        for name, value in changes.items():
            if value is None:
                rollout.pop(name, None)
            else:
                rollout[name] = value

    edit_line(root, key, apply)


def edit_site(root: Path, site: str, mutate: Callable[[Any], None]) -> None:
    edit_yaml(root / "fleet" / "sites" / site / "site.yaml", mutate)


def init_repo(root: Path) -> Any:
    """`git init` at root with a test identity; returns the `git.Repo`."""
    import git

    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Fleet Tester")
        cfg.set_value("user", "email", "fleet-tester@example.com")
        cfg.set_value("commit", "gpgsign", "false")
    return repo


def committed_minifleet(root: Path) -> Path:
    """The mini fleet written to `root` as a git repository with one commit."""
    write_minifleet(root)
    init_repo(root)
    commit_all(root, "the mini fleet")
    return root


def commit_all(root: Path, message: str) -> str:
    """Stage every change under root and commit it with a fixed date; return the SHA."""
    import git

    repo = git.Repo(root)
    repo.git.add(A=True)
    who = git.Actor("Fleet Tester", "fleet-tester@example.com")
    commit = repo.index.commit(
        message, author=who, committer=who, author_date=FIXED_DATE, commit_date=FIXED_DATE
    )
    return str(commit.hexsha)


class _NoAliases(yaml.SafeDumper):
    """Fleet files refuse anchors and aliases; write shared values out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(doc: Any) -> str:
    text: str = yaml.dump(
        doc, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=100
    )
    return text


def use_real_artifacts(root: Path) -> Path:
    """Give every catalogue version a real tiny ONNX model under `root/artifacts` (returned).

    The models have the version's output classes and a 64x64 input; version 3 is inverted
    (it disagrees with the others on every frame). URLs are relative to the repository."""
    from tests.support.onnx_models import write_model

    folder = root / "artifacts"

    def mutate(doc: Any) -> None:
        for entry in doc["versions"]:
            version = int(entry["version"])
            built = write_model(
                folder / f"surface-classifier-{version}.onnx",
                classes=tuple(entry["output_classes"]),
                height=64,
                width=64,
                invert=version == 3,
            )
            entry["artifact"]["url"] = f"file://artifacts/surface-classifier-{version}.onnx"
            entry["artifact"]["sha256"] = built.sha256
            entry["artifact"]["size"] = built.size

    edit_yaml(model_file(root), mutate)
    return folder


def use_registry_artifacts(
    root: Path, registry: str, repo: str = "models/surface-classifier"
) -> None:
    """`use_real_artifacts`, then push each model to `registry` (`HOST:PORT`) and point the
    catalogue at `oci://registry/repo@sha256:…`; the ONNX files leave the repository."""
    from linefleet_core.oci import push_file

    folder = use_real_artifacts(root)
    pushed = {
        path.name: push_file(path, f"oci://{registry}/{repo}")
        for path in sorted(folder.glob("*.onnx"))
    }

    def mutate(doc: Any) -> None:
        for entry in doc["versions"]:
            name = entry["artifact"]["url"].rsplit("/", 1)[-1]
            entry["artifact"]["url"] = str(pushed[name].ref)

    edit_yaml(model_file(root), mutate)
    for path in folder.glob("*.onnx"):
        path.unlink()
    folder.rmdir()


def set_mirror(root: Path, site: str, mirror: str | None) -> None:
    """Name (or with None, remove) the site's artifact mirror `HOST:PORT` in its site.yaml."""

    def mutate(doc: Any) -> None:
        if mirror is None:
            doc.pop("artifact_mirror", None)
        else:
            doc["artifact_mirror"] = mirror

    edit_site(root, site, mutate)
