"""`linefleet edge status`: the device's own view, from its state directory, with no network.

The agent keeps its last report there (`reported.json`, the bytes it queued for the broker):
its `error` and `warning` (a camera that cannot be opened, frames of another aspect refused, a
scaled ROI) are what `linefleet status` judges, so the device's own view shows them and judges
them the same way (`Failed`, `DeviceError`; `Degraded`, `DeviceWarning`), with the report's
time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

from edge_puller.outbox import Outbox
from edge_puller.spool import spool_folder, spooled_files, spooled_lines
from edge_puller.state import Failure, StateStore
from edge_puller.target import Target
from linefleet_core.atomic import write_atomic
from linefleet_core.conditions import Condition, ConditionType, Reason
from linefleet_core.text import printable

LAST_REPORT = "reported.json"


def keep_report(state_dir: Path, document: bytes) -> None:
    """Keep the report the agent just queued, for `edge status` (replaced atomically)."""
    write_atomic(state_dir / LAST_REPORT, document)


def _last_report(state_dir: Path) -> dict[str, Any]:
    """The last report kept, or {} (none yet, or unreadable: the view goes without it)."""
    with contextlib.suppress(OSError, ValueError):
        found = json.loads((state_dir / LAST_REPORT).read_bytes())
        if isinstance(found, dict):
            return found
    return {}


def local_status(state_dir: Path) -> dict[str, Any]:
    state = StateStore(state_dir).read()
    target = state.target
    outbox_path = state_dir / "outbox.db"
    outbox = events = 0
    if outbox_path.exists():
        box = Outbox(outbox_path)
        outbox, events = box.size(), box.counter("event_seq")
        box.close()
    lines: list[dict[str, Any]] = []
    for key in sorted(set(state.active) | set(target.lines if target else ())):
        active = state.active.get(key)
        wanted = target.lines.get(key) if target else None
        candidate = active.candidate if active else None
        lines.append(
            {
                "line": key,
                "serving": active.serving.ref if active and active.serving else None,
                "serving_slot": active.serving_slot if active else None,
                "standby": active.standby.ref if active and active.standby else None,
                "candidate": candidate.ref if candidate else None,
                "stage": candidate.stage if candidate else None,
                "desired_serving": wanted.serving.ref if wanted else None,
                "spool": _spool(state_dir, key),
                "in_sync": bool(wanted and active and active.serving == wanted.serving),
            }
        )
    last_sync = _iso(state.last_sync)
    removed_at = _iso(state.removed_at)
    report = _last_report(state_dir)
    error, warning = str(report.get("error") or ""), str(report.get("warning") or "")
    condition = _reported(
        _condition(state.generation, state.applied_generation, lines, state.failures, target),
        error,
        warning,
    )
    if removed_at is not None:
        condition = Condition(
            ConditionType.REMOVED,
            Reason.REMOVED_FROM_FLEET,
            f"removed from the fleet at {removed_at}; still serving what it ran "
            f"(generation {state.applied_generation}) until it is added again",
        )
    return {
        "format_version": 1,
        "condition": condition.type.value,
        "reason": condition.reason.value,
        "message": condition.message,
        "site": target.document.site if target else None,
        "device": target.document.device if target else None,
        "generation": state.generation,
        "applied_generation": state.applied_generation,
        "commit": target.document.commit if target else None,
        "last_sync": last_sync,
        "removed_at": removed_at,
        "error": error,
        "warning": warning,
        "reported_at": report.get("at"),
        "outbox": outbox,
        "events_sent_or_queued": events,
        "lines": lines,
        "retired_spools": _retired_spools(state_dir, {line["line"] for line in lines}),
        "failures": {
            sha: {"reason": f.reason, "message": f.message, "generation": f.generation}
            for sha, f in sorted(state.failures.items())
        },
    }


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds")


def _spool(state_dir: Path, key: str) -> dict[str, Any]:
    """Anomaly frames waiting for upload and the spool's counters (see `spool.py`)."""
    folder = spool_folder(state_dir / "spool", key)
    counters: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        counters = json.loads((folder / "counters.json").read_bytes())
    if not isinstance(counters, dict):
        counters = {}
    sizes = []
    for path in spooled_files(folder):
        with contextlib.suppress(OSError):  # uploaded meanwhile
            sizes.append(path.stat().st_size)
    return {
        "waiting": len(sizes),
        "waiting_bytes": sum(sizes),
        "kept": counters.get("kept", 0),
        "evicted": counters.get("evicted", 0),
        "uploaded": counters.get("uploaded", 0),
        "by_reason": counters.get("reasons", {}),
    }


def _retired_spools(state_dir: Path, served: set[str]) -> list[dict[str, Any]]:
    """Spools of lines no longer served: still uploading until empty or the grace period ends."""
    found = []
    for key in spooled_lines(state_dir / "spool"):
        if key not in served:
            spool = _spool(state_dir, key)
            found.append({"line": key, **spool})
    return found


def _condition(
    held: int,
    applied: int,
    lines: list[dict[str, Any]],
    failures: dict[str, Failure],
    target: Target | None,
) -> Condition:
    """The device's own condition, in the fleet's vocabulary (`linefleet_core.conditions`):
    Progressing, Synced, Degraded or Failed (and Removed, set by the caller, when the device
    was taken out of the fleet)."""
    if target is None:
        return Condition(
            ConditionType.PROGRESSING, Reason.NO_DESIRED_STATE, "no desired state received yet"
        )
    serving_failed = [
        ln.serving.ref for ln in target.lines.values() if ln.serving.artifact.sha256 in failures
    ]
    if serving_failed:
        return Condition(
            ConditionType.FAILED,
            Reason.SERVING_NOT_INSTALLABLE,
            f"{', '.join(serving_failed)} cannot be installed; the old model serves",
        )
    if held != applied:
        return Condition(
            ConditionType.PROGRESSING,
            Reason.CONVERGING,
            f"converging to generation {held} (applied {applied})",
        )
    if failures:
        return Condition(
            ConditionType.DEGRADED,
            Reason.MODEL_FAILED,
            "a candidate or rollback model failed; the serving model runs",
        )
    if not all(line["in_sync"] for line in lines):
        return Condition(ConditionType.PROGRESSING, Reason.SWITCHING, "switching models")
    return Condition(ConditionType.SYNCED, Reason.APPLIED, f"running generation {held}")


def _reported(base: Condition, error: str, warning: str) -> Condition:
    """The condition with the last report's `error` and `warning` judged as the fleet judges
    them (`docs/protocol.md` section 6): an error is `Failed`, a warning `Degraded` over
    `Progressing` and `Synced`."""
    if error and base.type is not ConditionType.FAILED:
        return Condition(ConditionType.FAILED, Reason.DEVICE_ERROR, error)
    if warning and base.type in (ConditionType.SYNCED, ConditionType.PROGRESSING):
        return Condition(ConditionType.DEGRADED, Reason.DEVICE_WARNING, warning)
    return base


def render_text(status: dict[str, Any]) -> str:
    out = [
        printable(f"condition   {status['condition']} ({status['reason']}): {status['message']}"),
        f"device      {status['site'] or '?'}/{status['device'] or '?'}",
        f"generation  {status['generation']} held, {status['applied_generation']} applied"
        + (f" (commit {status['commit'][:12]})" if status["commit"] else ""),
        f"last sync   {status['last_sync'] or 'never'}",
        f"outbox      {status['outbox']} message(s) waiting",
    ]
    said = f" (reported {status['reported_at']})"
    out += [printable(f"error       {status['error']}{said}")] if status["error"] else []
    out += [printable(f"warning     {status['warning']}{said}")] if status["warning"] else []
    if not status["lines"]:
        out.append("lines       none yet (no desired state received)")
    for line in status["lines"]:
        extra = f", {line['stage']} {line['candidate']}" if line["candidate"] else ""
        sync = "" if line["in_sync"] else f"  [converging to {line['desired_serving']}]"
        out.append(
            f"line        {line['line']}: serving {line['serving']} (slot {line['serving_slot']}), "
            f"standby {line['standby'] or '-'}{extra}{sync}"
        )
        spool = line["spool"]
        out.append(
            f"spool       {spool['waiting']} frame(s) waiting ({spool['waiting_bytes']} bytes), "
            f"{spool['kept']} kept, {spool['uploaded']} uploaded, {spool['evicted']} evicted"
        )
        for reason, c in sorted(spool["by_reason"].items()):
            out.append(
                f"  {reason:<12}{c.get('kept', 0)} kept, {c.get('uploaded', 0)} uploaded, "
                f"{c.get('dropped', 0)} dropped"
            )
    for spool in status["retired_spools"]:
        out.append(
            f"retired     {spool['line']}: no longer served; {spool['waiting']} frame(s) "
            f"({spool['waiting_bytes']} bytes) still to upload"
        )
    for sha, failure in status["failures"].items():
        out.append(f"failed      {sha[:12]} {failure['reason']}: {failure['message']}")
    return "\n".join(out)


def render_json(status: dict[str, Any]) -> str:
    return json.dumps(status, indent=2, sort_keys=True)
