"""Field audits: frames the edge's model called `ok` with confidence, sampled at random and sent
for a human's look. Their labels estimate each line's field escape rate (pure).

    new = sample_event(meta, sha)        # a `sample` event for a frame with reason audit/sample
    found = field_escapes(store.state()) # {"toledo/line-1": FieldEscapes(...)}
    found["toledo/line-1"].rate          # Rate: defective of the labelled samples, Wilson 95%

The field escape rate is the share of frames the serving model called `ok` that are in truth
defective: what gets through on the line, measured on the line's own frames. It is not the
holdout escape rate of `trainer/evidence.py` (defect frames called `ok`, of all defect frames),
which needs the defects to be found first. A sample counts once its frame has a class
(`trainer.datasets.frame_class` over its current labels: an annotation, a review of the sample
task, a confirmed override; frames whose annotators tie are left out); any class but `ok`
counts as an escape. Samples the model did not call `ok` (a device sampling other frames) are
not counted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from linefleet_core.catalogue import Rate
from linefleet_core.errors import UsageError
from linefleet_core.floors import rate
from linefleet_core.wire import FrameMeta
from trainer.datasets import frame_class
from trainer.events import EventKind, NewEvent
from trainer.metrics import OK
from trainer.views import Label, LabelState

AUDIT_REASONS = ("audit", "sample")
"""Frame reasons that mark an audit sample (the wire's `sample`, and `audit`)."""


def sample_event(meta: FrameMeta, sha: str) -> NewEvent | None:
    """The `sample` event of a frame the edge sent as an audit sample, else None."""
    if meta.reason not in AUDIT_REASONS:
        return None
    at = meta.captured_at
    return NewEvent(
        EventKind.SAMPLE,
        meta.device,
        frame=sha,
        detail=meta.reason,
        model_said=meta.predicted,
        model_version=meta.model,
        source_id=f"sample:{sha}",
        at=at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo else at,
    )


@dataclass(frozen=True)
class FieldEscapes:
    line: str
    sampled: int
    """Audit samples the model called `ok`."""
    labelled: int
    """Of them, those whose frame has a class."""
    rate: Rate | None
    """Defective of the labelled samples, with its 95% Wilson interval (None: none labelled)."""
    by_model: dict[str, Rate] = field(default_factory=dict)
    """The same per model version that called the frames `ok`."""

    def to_json(self) -> dict[str, object]:
        return {
            "sampled": self.sampled,
            "labelled": self.labelled,
            "rate": None if self.rate is None else self.rate.model_dump(),
            "by_model": {m: r.model_dump() for m, r in sorted(self.by_model.items())},
        }


def field_escapes(state: LabelState) -> dict[str, FieldEscapes]:
    """Per line (`site/line`) with audit samples: the field escape rate estimate."""
    labels: dict[str, list[Label]] = defaultdict(list)
    for label in state.labels.values():
        if label.cls is not None:
            labels[label.frame].append(label)
    sampled: dict[str, int] = defaultdict(int)
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    seen: set[str] = set()
    for ev in state.samples.values():
        if ev.model_said != OK or ev.frame is None or ev.frame in seen:
            continue
        seen.add(ev.frame)
        sampled[ev.line_key] += 1
        cls = frame_class(labels[ev.frame]) if labels.get(ev.frame) else None
        if cls is None:
            continue
        tally = counts[(ev.line_key, ev.model_version or "")]
        tally[0] += cls != OK
        tally[1] += 1
    out = {}
    for line in sorted(sampled):
        mine = {m: (d, n) for (key, m), (d, n) in counts.items() if key == line}
        defects = sum(d for d, _ in mine.values())
        labelled = sum(n for _, n in mine.values())
        out[line] = FieldEscapes(
            line,
            sampled[line],
            labelled,
            rate(defects, labelled) if labelled else None,
            {m: rate(d, n) for m, (d, n) in sorted(mine.items())},
        )
    return out


def sample_label(state: LabelState, task: int, cls: str, reviewer: str, taxonomy: str) -> NewEvent:
    """The annotation that closes sample task `task` (its frame gets class `cls`)."""
    ev = state.samples.get(task)
    if ev is None or ev.frame is None:
        raise UsageError(f"task {task} is not a sample task (see `labels tasks --kind sample`)")
    return NewEvent(EventKind.ANNOTATION, reviewer, frame=ev.frame, cls=cls, taxonomy=taxonomy)
