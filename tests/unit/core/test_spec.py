"""Loading a fleet: schema errors are collected (not just the first) and located."""

from __future__ import annotations

from linefleet_core import spec as fleetspec
from linefleet_core.errors import Finding

from .fleetdocs import MemorySource

LINE = "fleet/sites/toledo/lines/line-3.yaml"


def load(src: MemorySource) -> tuple[fleetspec.FleetSpec, list[Finding]]:
    return fleetspec.load(src)


def test_the_baseline_loads_without_findings() -> None:
    spec, findings = load(MemorySource())
    assert findings == []
    assert set(spec.lines) == {"toledo/line-3", "toledo/line-4"}
    assert set(spec.taxonomies) == {"surface-defects@1", "surface-defects@2"}
    assert spec.model_version("surface-classifier@2") is not None
    assert spec.model_version("surface-classifier@9") is None
    assert spec.policy.max_canary_lines_per_site == 1


def test_a_model_version_is_the_first_listed_with_that_number_in_the_family_held_now() -> None:
    src = MemorySource()
    versions = src.edit("fleet/models/surface-classifier.yaml")["versions"]
    versions.append({**versions[1], "opset": versions[1]["opset"] + 1})  # version 2 again
    spec, _ = load(src)
    first = spec.models["surface-classifier"].versions[1]
    assert spec.model_version("surface-classifier@2") is first
    assert spec.model_version("surface-classifier@4") is None
    assert spec.model_version("surface-classifier@x") is None
    assert spec.model_version("other@2") is None
    family = spec.models["surface-classifier"]
    spec.models["surface-classifier"] = family.model_copy(update={"versions": family.versions[:1]})
    assert spec.model_version("surface-classifier@2") is None  # the family replaced is read again
    assert spec.model_version("surface-classifier@1") is family.versions[0]


def test_no_coercion_and_every_error_is_reported_with_its_location() -> None:
    src = MemorySource()
    line = src.edit(LINE)
    line["cameras"][1]["resolution"]["width"] = "640"
    line["cameras"][0]["fsp"] = 3
    del line["product"]
    _, findings = load(src)
    assert [f.render() for f in findings] == [
        f"{LINE}:1:1: product: missing required field 'product'",
        f"{LINE}:19:3: cameras[0].fsp: unknown field 'fsp' (did you mean 'fps'?)",
        f"{LINE}:22:12: cameras[1].resolution.width: expected a whole number, "
        "but '640' is quoted text; remove the quotes",
    ]


def test_a_version_like_value_read_as_a_number_asks_for_quotes() -> None:
    src = MemorySource()
    src.raw["fleet/sites/toledo/site.yaml"] = (
        b"apiVersion: linefleet.io/v1\nkind: Site\nid: toledo\nname: 1.10\ntimezone: UTC\n"
    )
    _, findings = load(src)
    assert [f.render() for f in findings] == [
        "fleet/sites/toledo/site.yaml:4:7: name: expected text, but YAML read 1.1 as a float; "
        "put the value in quotes"
    ]


def test_wrong_api_version_kind_and_folder_are_located() -> None:
    src = MemorySource()
    src.raw["fleet/x.yaml"] = b"apiVersion: linefleet.io/v2\nkind: Site\n"
    src.raw["fleet/y.yaml"] = b"apiVersion: linefleet.io/v1\nkind: Sight\n"
    src.raw["fleet/z.yaml"] = b"apiVersion: linefleet.io/v1\nkind: Taxonomy\n"
    src.raw["fleet/w.yaml"] = b"- a list\n"
    _, findings = load(src)
    assert [f.render() for f in findings] == [
        "fleet/w.yaml:1:1: expected a mapping at the top level, got a list",
        "fleet/x.yaml:1:13: apiVersion: must be 'linefleet.io/v1'",
        "fleet/y.yaml:2:7: kind: unknown kind 'Sight'; one of: Site, Line, EdgeDevice, Model, "
        "Policy, Taxonomy",
        "fleet/z.yaml:2:7: kind: a Taxonomy belongs under taxonomies/",
    ]


def test_a_git_lfs_pointer_in_place_of_a_fleet_file_is_named_as_such() -> None:
    """A repository whose .gitattributes gives *.yaml to LFS holds pointers in git: the
    message said only 'expected a mapping at the top level, got a str'."""
    src = MemorySource()
    src.raw[LINE] = (
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        b"size 1234\n"
    )
    _, findings = load(src)
    assert [f.render() for f in findings] == [
        f"{LINE}:1:1: a Git LFS pointer, not the file's YAML: fleet files must be committed as "
        "they are (no LFS or other filter for them in .gitattributes): the publisher reads "
        "git's objects"
    ]


def test_duplicates_across_files_name_the_first_definition() -> None:
    src = MemorySource()
    src.docs["fleet/sites/toledo/line-3.yaml"] = dict(src.edit(LINE))  # a copy, misfiled
    src.docs["fleet/policy2.yaml"] = dict(src.edit("fleet/policy.yaml"))
    _, findings = load(src)
    messages = sorted(f.render() for f in findings)
    assert messages == [
        "fleet/policy2.yaml:2:7: kind: a second Policy; the fleet has one, in fleet/policy.yaml",
        "fleet/sites/toledo/lines/line-3.yaml:3:5: id: duplicate 'toledo/line-3'; first defined in "
        "fleet/sites/toledo/line-3.yaml",
    ]


def test_cross_field_rules_are_located_at_the_object() -> None:
    src = MemorySource()
    src.edit(LINE)["rollout"]["candidate"] = {"model": "surface-classifier@3", "stage": "canary"}
    src.edit("fleet/sites/toledo/site.yaml")["timezone"] = "Mars/Olympus"
    _, findings = load(src)
    assert [f.render() for f in findings] == [
        f"{LINE}:35:5: rollout.candidate: a canary candidate needs canary_fraction (for example 0.1)",
        "fleet/sites/toledo/site.yaml:5:11: timezone: unknown IANA timezone 'Mars/Olympus' "
        "(for example 'Europe/Berlin')",
    ]


def test_migration_steps_need_exactly_one_operation() -> None:
    src = MemorySource()
    src.edit("taxonomies/surface-defects/v2.yaml")["migration"] = [{"split": "x", "rename": "y"}]
    _, findings = load(src)
    assert [f.field for f in findings] == ["migration[0]"]
    assert "exactly one of: rename, split, merge, add, deprecate" in findings[0].message


def test_a_freeze_with_one_bound_in_utc_offset_and_one_local_is_located() -> None:
    src = MemorySource()
    src.edit("fleet/sites/toledo/site.yaml")["freeze_periods"] = [
        {"start": "2026-12-23T00:00+01:00", "end": "2027-01-04", "reason": "year-end"}
    ]
    _, findings = load(src)  # compared naive with aware: a TypeError (exit 3) before
    assert [f.render() for f in findings] == [
        "fleet/sites/toledo/site.yaml:7:3: freeze_periods[0]: start and end must both carry a "
        "UTC offset or both be the site's local time"
    ]
