"""The pure planner: (what the device has, what it should run) -> the ordered steps between.

`plan(observed)` touches nothing: it reads an `Observed` snapshot (`edge_puller/observed.py`:
the local state, the files in the artifact store, the loaded sessions, what the engine serves)
and returns frozen steps (`edge_puller/steps.py`).
The loop re-plans on every tick (level-triggered), so a step that failed, a crash or a new
desired state are all handled the same way: look again, plan again.

Order inside a plan: resume what the state says is active (after a restart the engine starts
empty; if the serving model's file is gone, the standby inspects until it is back), stage
every model the target needs (download → verify → load and smoke-test; serving
models first), switch lines whose models are ready, mark the generation applied, then retire
lines, unload sessions and prune files nobody needs, report, and last drain or delete the
spools of lines no longer served. The executor stops at the first failing step, so nothing
after a failed download runs in that tick: the old model keeps serving until the new one is
fully ready. A model that failed for good at this generation is
left out: a failed candidate means the line runs without it; a failed serving model means the
line keeps what it runs and the plan ends with `Wait` until the desired state changes.
"""

from __future__ import annotations

from edge_puller.observed import Observed, Running
from edge_puller.state import ActiveLine, Failure
from edge_puller.steps import (
    Activate,
    DeleteSpool,
    Download,
    LoadAndSmokeTest,
    MarkApplied,
    MarkSpool,
    Prune,
    Report,
    Resume,
    Retire,
    Step,
    Unload,
    Verify,
    Wait,
)
from edge_puller.target import Target
from linefleet_core.wire import CandidateSpec, LineSpec, ModelSpec

RETIRED_SPOOL_GRACE = 14 * 24 * 3600.0
"""How long a retired line's spool may keep uploading before what is left is discarded."""


def fingerprint(observed: Observed) -> str:
    """What a report says; a new report is due when it changes."""
    target = observed.target
    parts = [
        f"g{target.document.generation if target else 0}",
        f"a{observed.applied_generation}",
        *(
            f"{line}={r.serving[:12]}/{(r.candidate or '-')[:12]}/{r.stage}"
            for line, r in sorted(observed.running.items())
        ),
        *(f"!{sha[:12]}:{f.reason}" for sha, f in sorted(observed.failures.items())),
    ]
    return " ".join(parts)


def desired_active(
    line: LineSpec, current: ActiveLine | None, failures: dict[str, Failure]
) -> ActiveLine | None:
    """The A/B assignment a line should have, or None when its serving model failed."""
    serving = line.serving.artifact.sha256
    if serving in failures:
        return None
    candidate: CandidateSpec | None = line.candidate
    if candidate is not None and candidate.artifact.sha256 in failures:
        candidate = None
    previous = line.previous
    standby = previous if previous and previous.artifact.sha256 not in failures else None
    if standby is None and current is not None and current.serving is not None:
        # No rollback target named: keep the model that served until now hot.
        moved = current.serving.artifact.sha256 != serving
        standby = current.serving if moved else current.standby
    if standby is not None and standby.artifact.sha256 == serving:
        standby = None
    if current is None:
        return ActiveLine(line.serving, standby, "a", candidate)
    return current.switched_to(line.serving, standby, candidate)


def _without_failed_candidate(active: ActiveLine, failures: dict[str, Failure]) -> ActiveLine:
    """A candidate the engine dropped (or that failed) is never resumed, even for a moment."""
    if active.candidate is not None and active.candidate.artifact.sha256 in failures:
        return ActiveLine(active.slot_a, active.slot_b, active.serving_slot, None)
    return active


def _active_models(active: ActiveLine) -> list[ModelSpec]:
    found = [m for m in (active.serving, active.standby) if m is not None]
    if active.candidate is not None:
        found.append(active.candidate)
    return found


def _stage(model: ModelSpec, observed: Observed, planned: set[str]) -> list[Step]:
    """Steps that make `model` loaded, given what is stored, partial and loaded."""
    sha = model.artifact.sha256
    if sha in planned or sha in observed.loaded or sha in observed.failures:
        return []
    planned.add(sha)
    if sha in observed.stored:
        return [LoadAndSmokeTest(model)]
    have = observed.partial.get(sha, 0)
    steps: list[Step] = [] if have == model.artifact.size else [Download(model)]
    return [*steps, Verify(model, resumed=have > 0), LoadAndSmokeTest(model)]


def plan(observed: Observed) -> list[Step]:
    steps: list[Step] = []
    planned: set[str] = set()

    # 1. After a restart, serve what the state says is active, before anything else.
    for key, persisted in sorted(observed.active.items()):
        active = _without_failed_candidate(persisted, observed.failures)
        if active.serving is None or active.serving.artifact.sha256 not in observed.stored:
            # The serving model's file is gone (rotted and discarded): inspect with the
            # standby until staging below brings the serving model back.
            if active.standby is None or active.standby.artifact.sha256 not in observed.stored:
                continue
            if active.serving_slot == "a":
                active = ActiveLine(None, active.slot_b, "b")
            else:
                active = ActiveLine(active.slot_a, None, "a")
        runs = Running.of(active)
        if runs is None or observed.running.get(key) == runs:
            continue
        usable = [m for m in _active_models(active) if m.artifact.sha256 in observed.stored]
        for model in usable:
            sha = model.artifact.sha256
            if sha not in observed.loaded and sha not in planned:
                planned.add(sha)
                steps.append(LoadAndSmokeTest(model))
        steps.append(Resume(key, active))

    target = observed.target
    if target is None:
        return _finish(steps, observed, keep=None)

    # 2. Stage: serving models first (they decide), then rollback targets, then candidates,
    # then novelty models (a line serves without one: frame-statistics novelty meanwhile).
    lines = [target.lines[k] for k in sorted(target.lines)]
    by_role = (
        [ln.serving for ln in lines]
        + [ln.previous for ln in lines if ln.previous is not None]
        + [ln.candidate for ln in lines if ln.candidate is not None]
        + [ln.novelty for ln in lines if ln.novelty is not None]
    )
    for model in by_role:
        steps += _stage(model, observed, planned)

    # 3. Switch every line whose assignment differs from what it should be.
    stalled: list[str] = []
    converged = True
    for line in lines:
        current = observed.active.get(line.line)
        wanted = desired_active(line, current, observed.failures)
        if wanted is None:
            failure = observed.failures[line.serving.artifact.sha256]
            stalled.append(f"{line.line}: {line.serving.ref} {failure.reason}: {failure.message}")
            converged = False
            continue
        if wanted != current:
            steps.append(Activate(line.line, wanted, line.health_gates))
    generation = target.document.generation
    if converged and observed.applied_generation != generation:
        steps.append(MarkApplied(generation))

    # 4. Retire lines the target no longer names; keep every model still referenced.
    for key in sorted(set(observed.active) - set(target.lines)):
        steps.append(Retire(key))
    keep = {sha for sha in target.models() if sha not in observed.failures}
    for key, active in observed.active.items():
        if key in target.lines:
            keep.update(m.artifact.sha256 for m in _active_models(active))
    for line in lines:
        wanted = desired_active(line, observed.active.get(line.line), observed.failures)
        if wanted is not None:
            keep.update(m.artifact.sha256 for m in _active_models(wanted))
    steps = _finish(steps, observed, keep=frozenset(keep))
    steps += _spool_steps(observed, target)  # last: a spool problem never holds up the rest
    if stalled:
        steps.append(Wait("; ".join(stalled) + " (waiting for a new desired state)"))
    return steps


def _spool_steps(observed: Observed, target: Target) -> list[Step]:
    """A spool outlives its line until its frames are uploaded, or the grace period ends."""
    steps: list[Step] = []
    for key, spool in sorted(observed.spools.items()):
        if key in target.lines:
            if spool.retired_at is not None:
                steps.append(MarkSpool(key, retired=False))
        elif spool.retired_at is None or not spool.loaded:
            steps.append(MarkSpool(key, retired=True))
        elif spool.pending == 0:
            steps.append(DeleteSpool(key, left=0))
        elif observed.now - spool.retired_at >= RETIRED_SPOOL_GRACE:
            steps.append(DeleteSpool(key, left=spool.pending))
    return steps


def _finish(steps: list[Step], observed: Observed, keep: frozenset[str] | None) -> list[Step]:
    if keep is not None:
        steps += [Unload(sha) for sha in sorted(observed.loaded - keep)]
        on_disk = observed.stored | frozenset(observed.partial)
        if on_disk - keep:
            steps.append(Prune(keep))
    if fingerprint(observed) != observed.reported:
        steps.append(Report())
    return steps
