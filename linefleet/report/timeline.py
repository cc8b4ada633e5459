"""The rollout timeline: commits of the fleet repo that changed a line's rollout.

`rollout_changes(key, before, after)` is pure and says what changed in plan style
(`toledo/line-3: surface-classifier@3 shadow → canary`); `read_timeline(repo)` walks git history
with GitPython, reads only the changed line files of each commit, and names who approved
each commit (`linefleet_forge.approval`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from linefleet.report.data import TimelineEntry

LINE_FILE = re.compile(r"^(?:.*/)?fleet/sites/([^/]+)/lines/([^/]+)\.ya?ml$")
MAX_COMMITS = 200


def _rollout(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("rollout"), dict):
        return None
    rollout: dict[str, Any] = doc["rollout"]
    return rollout


def _candidate(rollout: dict[str, Any]) -> tuple[str, str] | None:
    cand = rollout.get("candidate")
    if not isinstance(cand, dict) or not cand.get("model"):
        return None
    return str(cand["model"]), str(cand.get("stage", "?"))


def rollout_changes(key: str, before: Any, after: Any) -> list[str]:
    """Plan-style summaries of how a line's rollout moved from `before` to `after` (YAML docs)."""
    old, new = _rollout(before), _rollout(after)
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        cand = _candidate(new)
        extra = "" if cand is None else f", candidate {cand[0]} in {cand[1]}"
        return [f"{key}: line added, serving {new.get('serving')}{extra}"]
    if new is None:
        return [f"{key}: line removed (was serving {old.get('serving')})"]
    out = []
    was, now = old.get("serving"), new.get("serving")
    c_old, c_new = _candidate(old), _candidate(new)
    if was != now:
        if c_old is not None and c_old[0] == now:
            out.append(f"{key}: {now} {c_old[1]} → production (was {was})")
        elif new.get("previous") == was and old.get("previous") == now:
            out.append(f"{key}: rolled back {was} → {now}")
        else:
            out.append(f"{key}: serving {was} → {now}")
    if c_old != c_new and not (c_old is not None and c_old[0] == now and c_new is None):
        if c_old is None and c_new is not None:
            out.append(f"{key}: {c_new[0]} → {c_new[1]} (new candidate)")
        elif c_new is None and c_old is not None:
            out.append(f"{key}: candidate {c_old[0]} ({c_old[1]}) withdrawn")
        elif c_old is not None and c_new is not None and c_old[0] == c_new[0]:
            out.append(f"{key}: {c_new[0]} {c_old[1]} → {c_new[1]}")
        elif c_old is not None and c_new is not None:
            out.append(f"{key}: candidate {c_old[0]} {c_old[1]} → {c_new[0]} {c_new[1]}")
    fraction = (
        (old.get("candidate") or {}).get("canary_fraction"),
        (new.get("candidate") or {}).get("canary_fraction"),
    )
    if not out and c_new is not None and fraction[0] != fraction[1]:
        out.append(f"{key}: {c_new[0]} canary share {fraction[0]} → {fraction[1]}")
    return out


def _doc(blob: Any) -> Any:
    if blob is None:
        return None
    try:
        return yaml.safe_load(blob.data_stream.read())
    except yaml.YAMLError:
        return None  # an invalid file in history: the plan/validate of its day said so


def _key(path: str) -> str | None:
    found = LINE_FILE.match(path)
    return None if found is None else f"{found.group(1)}/{found.group(2)}"


def commit_changes(commit: Any) -> list[str]:
    """What `commit` changed in line rollouts (the first commit creates, it does not change)."""
    if not commit.parents:
        return []
    parent = commit.parents[0]
    out: list[str] = []
    for change in parent.diff(commit, create_patch=False):
        key = _key(change.b_path or change.a_path or "")
        if key is not None:
            out += rollout_changes(key, _doc(change.a_blob), _doc(change.b_blob))
    return out


def read_timeline(
    repo: Any, rev: str = "HEAD", limit: int = MAX_COMMITS
) -> tuple[TimelineEntry, ...]:
    """Newest first: each commit (first-parent) that changed a line rollout, at most `limit`."""
    from linefleet_forge.approval import approval_of

    entries = []
    for commit in repo.iter_commits(rev, max_count=limit, first_parent=True):
        changes = commit_changes(commit)
        if changes:
            approval = approval_of(repo, commit.hexsha)
            entries.append(
                TimelineEntry(
                    at=float(commit.committed_date),
                    commit=commit.hexsha,
                    author=str(commit.author.name or commit.author.email or "?"),
                    subject=str(commit.summary),
                    changes=tuple(changes),
                    approved_by=f"{approval.by} via {approval.via}",
                )
            )
    return tuple(entries)
