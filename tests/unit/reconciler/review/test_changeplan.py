"""The planner and its renderers: tables for the pure planner, golden files for the output.

Regenerate the golden files after an intended change of the output with
    LINEFLEET_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/reconciler/review/test_changeplan.py
and review the diff of tests/golden/plan/ like any other change.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.review import render
from reconciler.review.changeplan import Action, Plan, RevisionRef, plan_change
from reconciler.review.specdiff import FieldChange, diff, flatten
from reconciler.rules.rollout import Verdict
from tests.support.minifleet import documents, line_rel, load_docs

Docs = dict[str, Any]
GOLDEN = Path(__file__).resolve().parents[3] / "golden" / "plan"
NOW = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)
BASE = RevisionRef("main", "1" * 40)
HEAD = RevisionRef("feature", "2" * 40)
MODELS = "fleet/models/surface-classifier.yaml"


def make_plan(edit: Callable[[Docs], None], now: dt.datetime = NOW) -> Plan:
    base_docs = documents()
    head_docs = copy.deepcopy(base_docs)
    edit(head_docs)
    base, base_findings = load_docs(base_docs)
    head, head_findings = load_docs(head_docs)
    assert not base_findings
    return plan_change(
        base,
        head,
        now=now,
        base_rev=BASE,
        head_rev=HEAD,
        head_findings=head_findings,
        base_findings=base_findings,
    )


def big_change(docs: Docs) -> None:
    """One change of every kind the plan shows."""
    # toledo/line-1: shadow -> canary with good evidence (allowed)
    docs[line_rel("toledo/line-1")]["rollout"]["candidate"] = {
        "model": "surface-classifier@3",
        "stage": "canary",
        "canary_fraction": 0.1,
    }
    # toledo/line-2: shadow straight to production (violation)
    roll = docs[line_rel("toledo/line-2")]["rollout"]
    roll.update(serving="surface-classifier@3", previous="surface-classifier@2")
    del roll["candidate"]
    # dresden/line-1: roll back to v1 (and its taxonomy), abort the canary
    line = docs[line_rel("dresden/line-1")]
    line["taxonomy"] = "surface-defects@1"
    line["rollout"] = {"serving": "surface-classifier@1"}
    # dresden/line-2: a camera replaced, a bigger upload budget
    line = docs[line_rel("dresden/line-2")]
    cam3 = copy.deepcopy(line["cameras"][1])
    cam3["id"] = "cam-3"
    cam3["resolution"] = {"width": 1920, "height": 1080}
    line["cameras"][1] = cam3
    line["rollout"]["telemetry"] = {"daily_upload_budget_mb": 80.0}
    # dresden/line-3: a new line on a new device
    new = copy.deepcopy(docs[line_rel("dresden/line-2")])
    new.update(id="line-3", name="Dresden line-3", product="hood")
    docs[line_rel("dresden/line-3")] = new
    device = copy.deepcopy(docs["fleet/sites/dresden/devices/dresden-edge-1.yaml"])
    device.update(id="dresden-edge-2", serves=[{"line": "line-3", "cameras": ["cam-1", "cam-3"]}])
    docs["fleet/sites/dresden/devices/dresden-edge-2.yaml"] = device
    edge1 = docs["fleet/sites/dresden/devices/dresden-edge-1.yaml"]
    edge1["serves"][1]["cameras"] = ["cam-1", "cam-3"]
    # the catalogue: taxonomy v3 adds `dent`; surface-classifier@4 outputs it
    v3 = copy.deepcopy(docs["taxonomies/surface-defects/v2.yaml"])
    v3["version"] = 3
    v3["classes"].append({"id": "dent", "definition": "a local deformation", "severity": "major"})
    v3["migration"] = [{"add": "dent"}]
    docs["taxonomies/surface-defects/v3.yaml"] = v3
    v4 = copy.deepcopy(docs[MODELS]["versions"][2])
    v4.update(version=4, taxonomy="surface-defects@3", evaluation={})
    v4["output_classes"] = [*v4["output_classes"], "dent"]
    v4["artifact"]["sha256"] = "4" * 64
    docs[MODELS]["versions"].append(v4)
    # a site's calendar and the fleet policy
    docs["fleet/sites/toledo/site.yaml"]["freeze_periods"][0]["end"] = "2027-01-06T00:00"
    docs["fleet/policy.yaml"]["promotion"]["tolerance"] = 0.02


def no_change(docs: Docs) -> None:
    pass


def invalid_head(docs: Docs) -> None:
    docs[line_rel("toledo/line-1")]["rollout"]["serving"] = "surface-classifier@9"


SCENARIOS = {"change": big_change, "unchanged": no_change, "invalid": invalid_head}
RENDERERS: dict[str, Callable[[Plan], str]] = {
    "md": render.markdown,
    "json": render.json_text,
    "txt": render.text,
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("suffix", sorted(RENDERERS))
def test_golden(scenario: str, suffix: str) -> None:
    output = RENDERERS[suffix](make_plan(SCENARIOS[scenario]))
    golden = GOLDEN / f"{scenario}.{suffix}"
    if os.environ.get("LINEFLEET_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(output, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with LINEFLEET_UPDATE_GOLDEN=1"
    assert output == golden.read_text(encoding="utf-8")


def test_the_plan_is_deterministic() -> None:
    first, second = make_plan(big_change), make_plan(big_change)
    assert render.json_text(first) == render.json_text(second)
    assert render.markdown(first) == render.markdown(second)


def test_big_change_summary_and_verdicts() -> None:
    p = make_plan(big_change)
    verdicts = {line.key: (line.action, line.verdict) for line in p.lines}
    assert verdicts == {
        "dresden/line-1": (Action.UPDATE, Verdict.ROLLBACK),
        "dresden/line-2": (Action.UPDATE, Verdict.ALLOWED),
        "dresden/line-3": (Action.CREATE, Verdict.ALLOWED),
        "toledo/line-1": (Action.UPDATE, Verdict.ALLOWED),
        "toledo/line-2": (Action.UPDATE, Verdict.VIOLATION),
    }
    assert p.summary.text == (
        "Plan: 1 line to add, 4 to change, 0 to remove; 4 devices affected; "
        "policy: 1 violation, 1 rollback"
    )
    assert not p.ok and not p.errors
    assert [(d.key, d.action, d.lines) for d in p.devices] == [
        ("dresden-edge-1", Action.UPDATE, ("dresden/line-1", "dresden/line-2")),
        ("dresden-edge-2", Action.CREATE, ("dresden/line-3",)),
        ("toledo-edge-1", Action.UPDATE, ("toledo/line-1", "toledo/line-2")),
        ("toledo-edge-2", Action.UPDATE, ("toledo/line-2",)),
    ]
    assert [(c.kind, c.key, c.action) for c in p.catalogue] == [
        ("model", "surface-classifier@4", Action.CREATE),
        ("taxonomy", "surface-defects@3", Action.CREATE),
    ]
    tax = p.catalogue[1]
    assert FieldChange("migration", None, "+ dent (added)") in tax.changes
    assert [(c.kind, c.key) for c in (*p.sites, *p.settings)] == [
        ("site", "toledo"),
        ("policy", "fleet"),
    ]


@pytest.mark.parametrize(
    ("edit", "key", "expected"),
    [
        (
            lambda d: d[line_rel("toledo/line-1")]["rollout"].update(
                candidate={
                    "model": "surface-classifier@3",
                    "stage": "canary",
                    "canary_fraction": 0.2,
                }
            ),
            "toledo/line-1",
            [
                FieldChange("rollout.candidate.stage", "shadow", "canary"),
                FieldChange("rollout.candidate.canary_fraction", None, "0.2"),
            ],
        ),
        (
            lambda d: d[line_rel("toledo/line-1")]["cameras"].pop(),
            "toledo/line-1",
            [FieldChange("cameras[cam-2]", "640x480, left side, lighting ring-white", None)],
        ),
        (
            lambda d: d[line_rel("toledo/line-1")]["cameras"].reverse(),
            "toledo/line-1",
            [FieldChange("cameras", "(order)", "reordered")],
        ),
        (
            lambda d: d[line_rel("toledo/line-2")]["rollout"].pop("candidate"),
            "toledo/line-2",
            [
                FieldChange("rollout.candidate.model", "surface-classifier@3", None),
                FieldChange("rollout.candidate.stage", "shadow", None),
            ],
        ),
        (
            lambda d: d[line_rel("dresden/line-2")].update(product="hood"),
            "dresden/line-2",
            [FieldChange("product", "door-panel", "hood")],
        ),
    ],
    ids=["to canary", "camera removed", "cameras reordered", "abort", "product"],
)
def test_line_field_changes(
    edit: Callable[[Docs], None], key: str, expected: list[FieldChange]
) -> None:
    p = make_plan(edit)
    [line] = p.lines
    assert line.key == key
    assert list(line.changes) == expected


def test_removed_line_and_device() -> None:
    def remove(docs: Docs) -> None:
        del docs[line_rel("toledo/line-2")]
        del docs["fleet/sites/toledo/devices/toledo-edge-2.yaml"]
        docs["fleet/sites/toledo/devices/toledo-edge-1.yaml"]["serves"].pop()

    p = make_plan(remove)
    [line] = p.lines
    assert (line.key, line.action, line.changes) == ("toledo/line-2", Action.DELETE, ())
    assert line.devices == ("toledo-edge-1", "toledo-edge-2")  # who served it in base
    assert [(d.key, d.action) for d in p.devices] == [
        ("toledo-edge-1", Action.UPDATE),
        ("toledo-edge-2", Action.DELETE),
    ]
    assert p.devices[0].changes == (FieldChange("serves[line-2]", "cameras=[cam-1]", None),)
    assert p.summary.lines_removed == 1
    assert p.ok


def test_what_a_head_file_that_does_not_load_declares_is_not_shown_as_removed() -> None:
    """A line, device, model family or policy file that does not load in the head was planned
    as removed ("toledo/line-2 will be removed [allowed]", the policy back to its defaults):
    its error is the plan's, and nothing is said of a change that cannot be told."""

    def break_files(docs: Docs) -> None:
        docs[line_rel("toledo/line-2")]["cameras"] = "not a list"
        docs["fleet/sites/toledo/devices/toledo-edge-2.yaml"]["hardware"] = "x"
        docs[MODELS]["versions"] = "none"
        docs["fleet/policy.yaml"]["promotion"] = "strict"

    p = make_plan(break_files)
    assert {f.path for f in p.validation if f.severity == "error"} >= {
        line_rel("toledo/line-2"),
        "fleet/sites/toledo/devices/toledo-edge-2.yaml",
        MODELS,
        "fleet/policy.yaml",
    }
    assert (p.lines, p.devices, p.catalogue, p.settings) == ((), (), (), ())
    assert "0 to remove" in p.summary.text and "head is invalid" in p.summary.text


def test_changed_artifact_of_a_published_version_is_shown() -> None:
    def swap(docs: Docs) -> None:
        docs[MODELS]["versions"][1]["artifact"]["sha256"] = "f" * 64

    p = make_plan(swap)
    [change] = p.catalogue
    assert (change.key, change.action) == ("surface-classifier@2", Action.UPDATE)
    assert [c.field for c in change.changes] == ["artifact.sha256"]
    assert p.lines == () and p.devices == ()
    [violation] = p.violations  # every line serving @2 would silently run another network
    assert violation.field == "versions[1].artifact.sha256"
    assert not p.ok
    assert p.summary.text.endswith("policy: 1 violation")
    assert f"> ❌ {violation.render()}" in render.markdown(p)


def test_invalid_head_fails_the_plan() -> None:
    p = make_plan(invalid_head)
    assert not p.ok
    assert any("unknown model 'surface-classifier@9'" in f.message for f in p.errors)
    assert "head is invalid" in p.summary.text


def test_json_is_versioned_and_names_both_commits() -> None:
    doc = json.loads(render.json_text(make_plan(big_change)))
    assert doc["format_version"] == 1
    assert doc["base"] == {"ref": "main", "sha": "1" * 40}
    assert doc["head"] == {"ref": "feature", "sha": "2" * 40}
    assert doc["ok"] is False and doc["valid"] is True
    [violating] = [line for line in doc["lines"] if line["verdict"] == "violation"]
    assert violating["violations"][0]["path"] == "fleet/sites/toledo/lines/line-2.yaml"


def test_markdown_starts_with_the_comment_marker() -> None:
    md = render.markdown(make_plan(big_change))
    assert md.splitlines()[0] == "<!-- linefleet-plan -->"
    assert "#### ❌ `toledo/line-2` will be updated" in md
    assert (
        "> ❌ toledo/line-2: surface-classifier@3 goes from shadow straight to production; "
        "promote to canary first"
    ) in md


def test_specdiff_keys_list_items_by_identity() -> None:
    spec, _ = load_docs(documents())
    device = spec.devices["toledo-edge-1"]
    flat = flatten(device, ("apiVersion", "kind"))
    assert flat["serves[line-2].cameras"] == "[cam-1]"
    changed = dict(flat, **{"serves[line-3].cameras": "[cam-1]"})
    assert diff(flat, changed) == (FieldChange("serves[line-3]", None, "cameras=[cam-1]"),)


SITE = "fleet/sites/toledo/site.yaml"


def _freezes(*periods: tuple[str, str, str]) -> Callable[[Docs], None]:
    def edit(docs: Docs) -> None:
        docs[SITE]["freeze_periods"] = [
            {"start": start, "end": end, "reason": reason} for start, end, reason in periods
        ]

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _freezes(
                ("2026-12-20T00:00", "2027-01-04T00:00", "year-end inventory"),
                ("2027-07-03", "2027-07-12T18:30", "summer retooling"),
            ),
            [
                FieldChange(
                    "freeze_periods[summer retooling]", None, "2027-07-03 to 2027-07-12 18:30"
                )
            ],
        ),
        (
            _freezes(
                ("2027-07-03", "2027-07-12", "summer retooling"),
                ("2026-12-20T00:00", "2027-01-04T00:00", "year-end inventory"),
            ),
            [FieldChange("freeze_periods[summer retooling]", None, "2027-07-03 to 2027-07-12")],
        ),
        (
            _freezes(),
            [FieldChange("freeze_periods[year-end inventory]", "2026-12-20 to 2027-01-04", None)],
        ),
        (
            _freezes(("2026-12-21T00:00+01:00", "2027-01-04T06:00+01:00", "year-end inventory")),
            [
                FieldChange(
                    "freeze_periods[year-end inventory]",
                    "2026-12-20 to 2027-01-04",
                    "2026-12-21 +0100 to 2027-01-04 06:00 +0100",
                )
            ],
        ),
        (
            _freezes(("2026-12-20T00:00", "2027-01-04T00:00", "stocktake")),
            [
                FieldChange("freeze_periods[stocktake]", None, "2026-12-20 to 2027-01-04"),
                FieldChange("freeze_periods[year-end inventory]", "2026-12-20 to 2027-01-04", None),
            ],
        ),
        (
            _freezes(
                ("2026-12-20T00:00", "2027-01-04T00:00", "year-end inventory"),
                ("2027-12-20", "2028-01-04", "year-end inventory"),
            ),
            [
                FieldChange(
                    "freeze_periods[year-end inventory from 2026-12-20]",
                    None,
                    "2026-12-20 to 2027-01-04",
                ),
                FieldChange(
                    "freeze_periods[year-end inventory from 2027-12-20]",
                    None,
                    "2027-12-20 to 2028-01-04",
                ),
                FieldChange("freeze_periods[year-end inventory]", "2026-12-20 to 2027-01-04", None),
            ],
        ),
    ],
    ids=["added", "inserted first", "removed", "moved", "renamed", "reason twice"],
)
def test_freeze_periods_are_named_by_reason_and_dates(
    edit: Callable[[Docs], None], expected: list[FieldChange]
) -> None:
    [site] = make_plan(edit).sites
    assert list(site.changes) == expected


def test_the_text_plan_names_a_moved_freeze_by_its_reason() -> None:
    text = render.text(make_plan(_freezes(("2026-12-20", "2027-01-06", "year-end inventory"))))
    assert (
        "  ~ freeze period year-end inventory: 2026-12-20 to 2027-01-04 -> 2026-12-20 to 2027-01-06"
    ) in text.splitlines()
    assert "freeze_periods 0" not in text


def test_a_value_cannot_forge_plan_lines_drive_a_terminal_or_escape_its_code_span() -> None:
    """A pull request set a line's product to text with a newline and a fake summary, an
    escape sequence and a backtick: the text plan printed a second `Plan: ... 0 violations`
    line and the raw escape, and the comment rendered `**APPROVED**`, a link and an image."""
    product = (
        "door\x1b[2J\nPlan: 0 lines to add, 0 to change, 0 to remove; 0 devices affected; "
        "policy: 0 violations\nx` | **APPROVED** [a](https://evil.example) `y \u202edi"
    )

    def edit(docs: Docs) -> None:
        docs[line_rel("toledo/line-1")]["product"] = product

    p = make_plan(edit)
    text = render.text(p)
    assert [row for row in text.splitlines() if row.startswith("Plan:")] == [p.summary.text]
    assert not any(c in text for c in "\x1b\u202e")
    assert "door\\x1b[2J\\x0aPlan: 0 lines" in text
    md = render.markdown(p)
    [row] = [row for row in md.splitlines() if row.startswith("| `~` | product")]
    assert row.endswith(
        "| `` door\\x1b[2J\\x0aPlan: 0 lines to add, 0 to change, 0 to remove; 0 devices "
        "affected; policy: 0 violations\\x0ax` \\| **APPROVED** [a](https://evil.example) `y "
        "\\u202edi `` |"
    )


def test_a_new_line_without_a_name_shows_no_empty_name_row() -> None:
    """A line added without `name` showed `+ name: ` (nothing after it) in the plan."""

    def add(docs: Docs) -> None:
        new = copy.deepcopy(docs[line_rel("dresden/line-2")])
        new.update(id="line-3")
        new.pop("name", None)
        docs[line_rel("dresden/line-3")] = new

    p = make_plan(add)
    [line] = [ln for ln in p.lines if ln.key == "dresden/line-3"]
    assert line.changes and all(c.field != "name" for c in line.changes)
    assert "+ name:" not in render.text(p)
    named = make_plan(lambda d: d[line_rel("dresden/line-2")].update(name="Paint 2"))
    unnamed = make_plan(lambda d: d[line_rel("dresden/line-2")].pop("name", None))
    assert next(c for ln in named.lines for c in ln.changes if c.field == "name").after == "Paint 2"
    assert next(c for ln in unnamed.lines for c in ln.changes if c.field == "name").after is None
