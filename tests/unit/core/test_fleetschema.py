"""The fleet files' JSON Schemas and the modeline that points an editor at them."""

from __future__ import annotations

import pytest

from linefleet_core.fleetschema import SCHEMA_FILES, modeline, schema_documents


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("fleet/policy.yaml", "Policy", "../schema/policy.schema.json"),
        ("fleet/models/m.yaml", "Model", "../../schema/model.schema.json"),
        ("fleet/sites/a/site.yaml", "Site", "../../../schema/site.schema.json"),
        ("fleet/sites/a/lines/l.yaml", "Line", "../../../../schema/line.schema.json"),
        (
            "fleet/sites/a/devices/d.yaml",
            "EdgeDevice",
            "../../../../schema/edge-device.schema.json",
        ),
        ("taxonomies/t/v1.yaml", "Taxonomy", "../../schema/taxonomy.schema.json"),
    ],
)
def test_modeline_points_at_the_schema_relative_to_the_file(
    path: str, kind: str, expected: str
) -> None:
    assert modeline(path, kind) == f"# yaml-language-server: $schema={expected}\n"


def test_modelines_name_the_files_the_schema_command_writes() -> None:
    named = {modeline("fleet/x.yaml", kind).rsplit("/", 1)[1].strip() for kind in SCHEMA_FILES}
    assert named == set(schema_documents())
