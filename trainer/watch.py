"""`trainer watch`: start a training run when it is worth it, never twice for one dataset.

Level-triggered: every tick re-reads the label store (and, with a broker, the devices'
retained reported state), builds the current dataset version and asks the pure `decide`:

- nothing to do when this dataset version already had a run (the run is *claimed* in the
  label store under the dataset hash, a primary key: two watchers cannot both start it);
- train when at least `min_new_labels` labels arrived since the last trained dataset
  (annotations, confirmed overrides, reviews), or when a line's drift score is past the
  policy's `max_drift_score`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainer.events import Decision, Event, EventKind

if TYPE_CHECKING:
    from trainer.run import TrainRequest


class Verdict(enum.StrEnum):
    WAIT = "wait"
    TRAIN = "train"
    ALREADY_TRAINED = "already-trained"


@dataclass(frozen=True)
class WatchInputs:
    dataset: str
    dataset_frames: int
    already_claimed: bool
    new_labels: int
    min_new_labels: int
    drift: Mapping[str, float] = field(default_factory=dict)
    max_drift: float = 0.3


@dataclass(frozen=True)
class WatchDecision:
    verdict: Verdict
    reason: str


def decide(inputs: WatchInputs) -> WatchDecision:
    if inputs.already_claimed:
        return WatchDecision(Verdict.ALREADY_TRAINED, f"dataset {inputs.dataset[:12]} had a run")
    if inputs.dataset_frames == 0:
        return WatchDecision(Verdict.WAIT, "no labelled frames yet")
    drifting = sorted(k for k, v in inputs.drift.items() if v > inputs.max_drift)
    if drifting:
        worst = max(inputs.drift[k] for k in drifting)
        return WatchDecision(
            Verdict.TRAIN,
            f"drift on {', '.join(drifting)} (worst {worst:.2f} > {inputs.max_drift:g})",
        )
    if inputs.new_labels >= inputs.min_new_labels:
        return WatchDecision(
            Verdict.TRAIN,
            f"{inputs.new_labels} new label(s) since the last run (threshold "
            f"{inputs.min_new_labels})",
        )
    return WatchDecision(
        Verdict.WAIT, f"{inputs.new_labels}/{inputs.min_new_labels} new label(s), no drift"
    )


def new_labels_since(events: list[Event], last_event: int) -> int:
    """Label-making events after `last_event`: annotations, confirmed overrides, reviews."""
    count = 0
    for e in events:
        if e.id <= last_event:
            continue
        if e.kind in (EventKind.ANNOTATION, EventKind.REVIEW) or (
            e.kind is EventKind.QA and e.detail == Decision.CONFIRM.value
        ):
            count += 1
    return count


@dataclass(frozen=True)
class TickResult:
    decision: WatchDecision
    run_id: str | None = None


def tick(
    request: TrainRequest,
    min_new_labels: int,
    drift: Mapping[str, float],
    max_drift: float,
) -> TickResult:
    """One level-triggered pass: read, decide, maybe claim and train."""
    from trainer.datasets import build
    from trainer.run import pick_taxonomy, train_run

    store = request.workspace.open_store()
    try:
        last_trained = store.last_trained_event()
        taxonomy = pick_taxonomy(request, store.taxonomies)
        version = build(store.state(), taxonomy)
        inputs = WatchInputs(
            dataset=version.hash,
            dataset_frames=len(version.items),
            already_claimed=store.has_run(version.hash),
            new_labels=new_labels_since(
                [e for e in store.events(after=last_trained) if e.id <= version.last_event],
                last_trained,
            ),
            min_new_labels=min_new_labels,
            drift=drift,
            max_drift=max_drift,
        )
        decision = decide(inputs)
        if decision.verdict is not Verdict.TRAIN:
            return TickResult(decision)
        store.record_dataset(version.hash, version.taxonomy, len(version.items), version.last_event)
        if not store.claim_run(version.hash, decision.reason):
            return TickResult(WatchDecision(Verdict.ALREADY_TRAINED, "claimed by another watcher"))
        result = train_run(request, store, version)
        return TickResult(decision, result.run_id)
    finally:
        store.close()
