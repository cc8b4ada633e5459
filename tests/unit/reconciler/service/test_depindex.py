"""The dependency index: what each device's document is compiled from (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from linefleet_core.spec import FleetSpec
from reconciler.service.depindex import (
    POLICY,
    DependencyIndex,
    changed_keys,
    device_deps,
    usual_path,
)
from tests.support import minifleet

COMMIT = "cd" * 20


def fleet(mutate: Any = None) -> FleetSpec:
    docs = minifleet.documents()
    if mutate is not None:
        mutate(docs)
    spec, findings = minifleet.load_docs(docs)
    assert [f for f in findings if f.severity == "error"] == []
    return spec


def test_a_device_depends_on_its_lines_site_taxonomies_models_and_policy() -> None:
    spec = fleet()
    for device in spec.devices.values():
        deps = device_deps(spec, device)
        assert {f"EdgeDevice:{device.id}", f"Site:{device.site}", POLICY} <= deps
        for serves in device.serves:
            line = spec.lines[f"{device.site}/{serves.line}"]
            rollout = line.rollout
            assert f"Line:{line.key}" in deps
            assert f"Taxonomy:{line.taxonomy}" in deps
            assert f"Model:{rollout.serving}" in deps
            if rollout.previous:
                assert f"Model:{rollout.previous}" in deps
            if rollout.candidate:
                assert f"Model:{rollout.candidate.model}" in deps
        # nothing else: no other device, line or site
        other_lines = {f"Line:{k}" for k in spec.lines} - {
            f"Line:{device.site}/{s.line}" for s in device.serves
        }
        assert not deps & other_lines
        assert not {d for d in deps if d.startswith("EdgeDevice:")} - {f"EdgeDevice:{device.id}"}


def test_the_index_answers_as_device_deps_does_and_survives_json() -> None:
    spec = fleet()
    index = DependencyIndex.build(spec, COMMIT)
    for device in spec.devices.values():
        assert index.deps_of(device.id) == device_deps(spec, device)
    again = DependencyIndex.from_json(index.to_json())
    assert again == index
    assert (
        again is not None
        and again.paths["Line:toledo/line-1"] == "fleet/sites/toledo/lines/line-1.yaml"
    )


def test_dependents_of_a_line_are_the_devices_serving_it() -> None:
    spec = fleet()
    index = DependencyIndex.build(spec, COMMIT)
    line = next(iter(spec.lines))
    serving = {
        d.id for d in spec.devices.values() if any(f"{d.site}/{s.line}" == line for s in d.serves)
    }
    assert serving
    assert index.dependents({f"Line:{line}"}) == serving
    assert index.dependents({POLICY}) == set(spec.devices)
    site = next(iter(spec.sites))
    assert index.dependents({f"Site:{site}"}) == {
        d.id for d in spec.devices.values() if d.site == site
    }
    assert index.dependents({"Model:nothing@9"}) == set()


def test_model_changes_count_per_version_and_only_what_documents_carry() -> None:
    spec = fleet()
    family = next(iter(spec.models.values()))
    first = family.versions[0]
    evidence_only = family.model_copy(update={"description": "new words"})
    assert changed_keys(family, evidence_only) == set()
    stats = first.model_copy(update={"reference_stats": {"brightness": 0.123}})
    edited = family.model_copy(update={"versions": [stats, *family.versions[1:]]})
    assert changed_keys(family, edited) == {f"Model:{family.name}@{first.version}"}
    assert changed_keys(family, None) == {
        f"Model:{family.name}@{v.version}" for v in family.versions
    }


def test_other_objects_change_as_a_whole() -> None:
    spec = fleet()
    line = next(iter(spec.lines.values()))
    renamed = line.model_copy(update={"name": "renamed"})
    assert changed_keys(line, line) == set()
    assert changed_keys(line, renamed) == {f"Line:{line.key}"}
    assert changed_keys(None, line) == {f"Line:{line.key}"}


@pytest.mark.parametrize(
    ("key", "site", "path"),
    [
        ("Site:toledo", None, "fleet/sites/toledo/site.yaml"),
        ("Line:toledo/line-3", None, "fleet/sites/toledo/lines/line-3.yaml"),
        ("EdgeDevice:toledo-edge-1", "toledo", "fleet/sites/toledo/devices/toledo-edge-1.yaml"),
        ("EdgeDevice:toledo-edge-1", None, None),
        ("Model:surface-classifier", None, "fleet/models/surface-classifier.yaml"),
        ("Taxonomy:surface-defects@2", None, "taxonomies/surface-defects/v2.yaml"),
        (POLICY, None, None),
    ],
)
def test_usual_paths_follow_placement(key: str, site: str | None, path: str | None) -> None:
    assert usual_path(key, site) == path


def test_an_index_of_another_format_is_not_read() -> None:
    assert DependencyIndex.from_json(b'{"format_version": 0}') is None
    assert DependencyIndex.from_json(b"not json") is None
