"""The file name is the object's name: misfiled objects are located errors, and a file that
cannot be read still says by its place what it declared (so references to it are not errors)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from linefleet_core import placement
from linefleet_core import spec as fleetspec

from .fleetdocs import MemorySource

TAX2 = "taxonomies/surface-defects/v2.yaml"
LINE = "fleet/sites/toledo/lines/line-3.yaml"


@pytest.mark.parametrize(
    ("path", "declared"),
    [
        ("fleet/sites/toledo/site.yaml", "Site:toledo"),
        ("fleet/sites/toledo/lines/line-3.yaml", "Line:toledo/line-3"),
        ("fleet/sites/toledo/devices/tol-edge-01.yml", "EdgeDevice:tol-edge-01"),
        ("fleet/models/surface-classifier.yaml", "Model:surface-classifier"),
        ("taxonomies/surface-defects/v2.yaml", "Taxonomy:surface-defects@2"),
        ("taxonomies/surface-defects/draft.yaml", ""),
        ("fleet/policy.yaml", "Policy:fleet"),
        ("fleet", "Folder:fleet"),
        ("fleet/toledo.yaml", ""),
        ("fleet/sites/toledo/extra/line-3.yaml", ""),
    ],
)
def test_what_the_layout_says_a_file_declares(path: str, declared: str) -> None:
    assert placement.declared(path) == declared


def _move(src: MemorySource, old: str, new: str) -> None:
    src.docs[new] = src.docs.pop(old)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda s: s.edit("fleet/models/surface-classifier.yaml").update(name="surface-net"),
            [("fleet/models/surface-classifier.yaml", "name", "'surface-net' does not match")],
        ),
        (
            lambda s: _move(s, TAX2, "taxonomies/surface-defects/v3.yaml"),
            [("taxonomies/surface-defects/v3.yaml", "version", "2 does not match the file name")],
        ),
        (
            lambda s: _move(s, TAX2, "taxonomies/defects/v2.yaml"),
            [("taxonomies/defects/v2.yaml", "name", "'surface-defects' is in the folder")],
        ),
        (
            lambda s: _move(s, "fleet/sites/toledo/site.yaml", "fleet/sites/dresden/site.yaml"),
            [("fleet/sites/dresden/site.yaml", "id", "site 'toledo', but the file is in")],
        ),
        (
            lambda s: _move(s, "fleet/sites/toledo/site.yaml", "fleet/toledo.yaml"),
            [],
        ),
        (
            lambda s: _move(s, "fleet/sites/toledo/site.yaml", "fleet/site-toledo.yaml"),
            [("fleet/site-toledo.yaml", "id", "'toledo' does not match the file name")],
        ),
    ],
    ids=["model", "taxonomy version", "taxonomy folder", "site folder", "site elsewhere", "site"],
)
def test_misfiled_objects_are_one_located_error_each(
    edit: Callable[[MemorySource], None], expected: list[tuple[str, str, str]]
) -> None:
    src = MemorySource()
    edit(src)
    _, findings = fleetspec.load(src)
    got = [(f.path, f.field, f.message) for f in findings]
    assert len(got) == len(expected), got
    for (path, field, message), want in zip(got, expected, strict=True):
        assert (path, field) == want[:2]
        assert message.startswith(want[2]), message
    assert all(f.code == "file_name" for f in findings)


def test_a_misfiled_object_is_not_loaded_and_what_refers_to_it_is_not_an_error() -> None:
    src = MemorySource()
    src.edit("fleet/sites/toledo/lines/line-3.yaml")["id"] = "line-9"
    spec, findings = fleetspec.load(src)
    assert [f.field for f in findings] == ["id"]
    assert "toledo/line-9" not in spec.lines and "toledo/line-3" not in spec.lines
    assert spec.exists("Line", "toledo/line-3") and spec.exists("Line", "toledo/line-9")


def test_a_file_name_no_id_can_match_is_only_to_be_renamed() -> None:
    """`LINE-3.yaml` beside `line-3.yaml` (a case-colliding copy): 'set id to LINE-3' was
    suggested, an id the schema refuses."""
    src = MemorySource()
    _move(src, LINE, LINE.replace("line-3.yaml", "LINE-3.yaml"))
    _, findings = fleetspec.load(src)
    assert [f.render() for f in findings] == [
        f"{LINE.replace('line-3.yaml', 'LINE-3.yaml')}:3:5: id: 'line-3' does not match the file "
        "name LINE-3.yaml; rename the file to line-3.yaml (rollback pull requests, CODEOWNERS "
        "and the report find an object by its file name)"
    ]
