"""Render a `Plan` as markdown (the pull-request comment), versioned JSON, or plain text.

Renderers are pure functions of the plan: no clock, no environment, stable ordering, so the
golden files in `tests/golden/plan/` pin the output byte for byte.
"""

from __future__ import annotations

import json
import re
from typing import Any

from linefleet_core.text import printable
from reconciler.review.changeplan import Action, Change, DevicePlan, LinePlan, Plan
from reconciler.review.specdiff import FieldChange
from reconciler.rules.rollout import Verdict

FORMAT_VERSION = 1
MARKER = "<!-- linefleet-plan -->"
"""First line of the markdown plan: CI finds and updates its one comment by this marker."""

ICON = {
    Verdict.ALLOWED: "✅",
    Verdict.VIOLATION: "❌",
    Verdict.ROLLBACK: "↩️",
    Verdict.UNCHANGED: "✅",
}
VERDICT_WORDS = {
    Verdict.ALLOWED: "allowed",
    Verdict.VIOLATION: "violation: this change must not merge as it is",
    Verdict.ROLLBACK: "rollback (always allowed, also during a freeze)",
    Verdict.UNCHANGED: "no rollout change",
}
VERB = {Action.CREATE: "added", Action.UPDATE: "updated", Action.DELETE: "removed"}
LABELS = (
    ("rollout.serving", "serving model"),
    ("rollout.candidate.model", "candidate"),
    ("rollout.candidate.stage", "candidate stage"),
    ("rollout.candidate.canary_fraction", "canary fraction"),
    ("rollout.candidate", "candidate"),
    ("rollout.previous", "rollback target"),
    ("rollout.telemetry.", "telemetry "),
    ("cameras[", "camera "),
    ("serves[", "serves "),
    ("freeze_periods[", "freeze period "),
)
LEGEND = (
    "`+` added · `~` changed · `-` removed · "
    "✅ allowed by the rollout policy · ❌ violates the policy (fix before merging) · "
    "↩️ rollback or abort (always allowed)"
)


def label(name: str) -> str:
    """A field path in words a plant engineer reads: `rollout.serving` -> `serving model`."""
    for prefix, words in LABELS:
        if name.startswith(prefix):
            name = words + name[len(prefix) :]
            break
    return name.replace("].", " ").replace("]", "").replace("[", " ")


def value(change: FieldChange, side: str | None) -> str:
    if side is None:
        return "—"
    if change.field.endswith("canary_fraction"):
        try:
            return f"{float(side):.0%}"
        except ValueError:
            return shown(side)
    return shown(side)


def shown(text: str) -> str:
    """A value from a fleet file as one visible line (`linefleet_core.text.printable`: line
    breaks, control and bidirectional characters as escapes), so a pull request cannot forge a
    line of the plan (`Plan: ... 0 violations`), drive the reader's terminal, or reorder what
    the approver reads."""
    return printable(text)


# -- markdown -------------------------------------------------------------------------------


def markdown(plan: Plan) -> str:
    out = [MARKER, f"## {_headline(plan)}", ""]
    out.append(
        f"`{plan.base.short}` → `{plan.head.short}` · policy checked at "
        f"{plan.now.strftime('%Y-%m-%d %H:%M %Z').strip()}"
    )
    out += ["", f"**{plan.summary.text}**", ""]
    if plan.errors or plan.validation:
        out += ["### ❌ The head revision has problems" if plan.errors else "### Warnings", ""]
        out += ["```text", *(f.render() for f in plan.validation), "```", ""]
    if plan.base_errors:
        out += [f"> ⚠️ The base revision has {plan.base_errors} validation error(s) itself.", ""]
    if plan.empty:
        out += ["No changes: the fleet is the same in both revisions.", ""]
    if plan.lines:
        out += ["### Lines", ""]
        for line in plan.lines:
            out += _md_line(line)
    if plan.devices:
        out += ["### Edge devices", "", "| device | change | why |", "|---|---|---|"]
        out += [_md_device_row(d) for d in plan.devices]
        out.append("")
        for device in plan.devices:
            if device.changes:
                out += [f"**`{device.key}`**", "", *_md_table(device.changes)]
    for title, group in (
        ("Model and taxonomy catalogue", plan.catalogue),
        ("Sites", plan.sites),
        ("Fleet policy", plan.settings),
    ):
        if group:
            out += [f"### {title}", ""]
            if group is plan.catalogue and plan.catalogue_violations:
                out += [f"> ❌ {f.render()}" for f in plan.catalogue_violations]
                out.append("")
            for change in group:
                out += _md_change(change)
    out += ["---", f"<sub>{LEGEND}</sub>", ""]
    return "\n".join(out)


def _headline(plan: Plan) -> str:
    if plan.errors:
        n = len(plan.errors)
        return f"❌ linefleet plan: the head revision is invalid ({n} error{_s(n)})"
    n = plan.summary.violations
    if n:
        return f"❌ linefleet plan: {n} violation{_s(n)} of the rollout policy"
    return "✅ linefleet plan: valid, the rollout policy allows every change"


def _md_line(line: LinePlan) -> list[str]:
    out = [f"#### {ICON[line.verdict]} `{line.key}` will be {VERB[line.action]}", ""]
    out += [f"**Policy:** {ICON[line.verdict]} {VERDICT_WORDS[line.verdict]}", ""]
    out += [f"> ❌ {f.message}" for f in line.findings]
    if line.findings:
        out.append("")
    if line.steps:
        out += [f"- {step.text}" for step in line.steps]
        out.append("")
    out += _md_table(line.changes)
    if line.devices:
        out += ["Edge devices: " + ", ".join(f"`{d}`" for d in line.devices), ""]
    return out


def _md_table(changes: tuple[FieldChange, ...]) -> list[str]:
    if not changes:
        return []
    rows = ["| | | before | after |", "|---|---|---|---|"]
    for c in changes:
        sign = "+" if c.before is None else "-" if c.after is None else "~"
        rows.append(
            f"| `{sign}` | {_cell(shown(label(c.field)))} | {_code(value(c, c.before))} | "
            f"{_code(value(c, c.after))} |"
        )
    return [*rows, ""]


def _md_device_row(device: DevicePlan) -> str:
    what = {
        Action.CREATE: "added",
        Action.DELETE: "removed",
        Action.UPDATE: "changed" if device.changes else "new desired state",
    }[device.action]
    why = ", ".join(f"`{line}`" for line in device.lines)
    return f"| `{device.key}` | {what} | {'serves changed ' + why if why else ''} |"


def _md_change(change: Change) -> list[str]:
    head = f"- {change.kind} `{change.key}` will be {VERB[change.action]}"
    if not change.changes:
        return [head, ""]
    return [head, "", *(f"  {row}" if row else "" for row in _md_table(change.changes))]


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _code(text: str) -> str:
    """A code span that holds any text: a backtick in a value cannot end it (and turn the rest
    into markdown: links, images, @mentions in the plan comment)."""
    if text == "—":
        return text
    body = _cell(text)
    longest = max((len(run) for run in re.findall("`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- text -----------------------------------------------------------------------------------


def text(plan: Plan) -> str:
    out = [
        f"linefleet plan: {plan.base.short} -> {plan.head.short} "
        f"(policy at {plan.now.isoformat()})",
        "",
    ]
    for finding in plan.validation:
        out.append(finding.render())
    if plan.validation:
        out.append("")
    for line in plan.lines:
        out.append(f"  # {line.key} will be {VERB[line.action]}  [{line.verdict.value}]")
        out += _text_changes(line.changes)
        out += [f"    = {step.text}" for step in line.steps]
        out += [f"    ! {f.message}" for f in line.findings]
        if line.devices:
            out.append(f"    devices: {', '.join(line.devices)}")
        out.append("")
    for device in plan.devices:
        why = f" (serves changed {', '.join(device.lines)})" if device.lines else ""
        out.append(f"  # device {device.key} will be {VERB[device.action]}{why}")
        out += _text_changes(device.changes)
        out.append("")
    for change in (*plan.catalogue, *plan.sites, *plan.settings):
        out.append(f"  # {change.kind} {change.key} will be {VERB[change.action]}")
        out += _text_changes(change.changes)
        out.append("")
    for finding in plan.catalogue_violations:
        out.append(f"  ! {finding.render()}")
    if plan.catalogue_violations:
        out.append("")
    out.append(plan.summary.text)
    return "\n".join(out) + "\n"


def _text_changes(changes: tuple[FieldChange, ...]) -> list[str]:
    out = []
    for c in changes:
        if c.before is None:
            out.append(f"  + {shown(label(c.field))}: {value(c, c.after)}")
        elif c.after is None:
            out.append(f"  - {shown(label(c.field))}: {value(c, c.before)}")
        else:
            out.append(f"  ~ {shown(label(c.field))}: {value(c, c.before)} -> {value(c, c.after)}")
    return out


# -- json -----------------------------------------------------------------------------------


def as_json(plan: Plan) -> dict[str, Any]:
    summary = plan.summary
    return {
        "format_version": FORMAT_VERSION,
        "base": {"ref": plan.base.ref, "sha": plan.base.sha},
        "head": {"ref": plan.head.ref, "sha": plan.head.sha},
        "evaluated_at": plan.now.isoformat(),
        "ok": plan.ok,
        "valid": not plan.errors,
        "summary": {
            "lines_added": summary.lines_added,
            "lines_changed": summary.lines_changed,
            "lines_removed": summary.lines_removed,
            "devices_affected": summary.devices_affected,
            "violations": summary.violations,
            "rollbacks": summary.rollbacks,
            "errors": summary.errors,
            "text": summary.text,
        },
        "lines": [
            {
                "key": line.key,
                "action": line.action.value,
                "verdict": line.verdict.value,
                "steps": [{"move": s.move.value, "text": s.text} for s in line.steps],
                "changes": _json_changes(line.changes),
                "violations": [f.as_dict() for f in line.findings],
                "devices": list(line.devices),
            }
            for line in plan.lines
        ],
        "devices": [
            {
                "key": d.key,
                "site": d.site,
                "action": d.action.value,
                "changes": _json_changes(d.changes),
                "lines": list(d.lines),
            }
            for d in plan.devices
        ],
        "catalogue": [_json_change(c) for c in plan.catalogue],
        "catalogue_violations": [f.as_dict() for f in plan.catalogue_violations],
        "sites": [_json_change(c) for c in plan.sites],
        "policy": [_json_change(c) for c in plan.settings],
        "validation": [f.as_dict() for f in plan.validation],
        "base_errors": plan.base_errors,
    }


def json_text(plan: Plan) -> str:
    return json.dumps(as_json(plan), indent=2, ensure_ascii=False) + "\n"


def _json_change(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "key": change.key,
        "action": change.action.value,
        "changes": _json_changes(change.changes),
    }


def _json_changes(changes: tuple[FieldChange, ...]) -> list[dict[str, str | None]]:
    return [{"field": c.field, "before": c.before, "after": c.after} for c in changes]
