"""What the report shows, as plain frozen data: filled by loaders, rendered by `build_report`.

Loaders translate their sources into these types; the builder knows nothing else, so it can be
tested with hand-made values. A section that is `None` had no source ("no data" on the page).
"""

from __future__ import annotations

from dataclasses import dataclass

CONDITIONS = ("Synced", "Progressing", "Degraded", "Failed", "Stale", "Unknown")


@dataclass(frozen=True)
class MetricPoint:
    """One reported metrics window of a line, at `at` (epoch seconds)."""

    at: float
    latency_p95_ms: float | None
    """None (like the rates and drift): no frames in the window, so nothing was measured."""
    defect_rate: float | None
    frames_per_s: float | None
    drift_score: float | None
    shadow_agreement: float | None = None


@dataclass(frozen=True)
class Gates:
    """The health-gate thresholds drawn on the charts (None: not known)."""

    max_latency_p95_ms: float | None = None
    min_shadow_agreement: float | None = None
    max_drift_score: float | None = None


@dataclass(frozen=True)
class LineView:
    site: str
    line: str
    condition: str
    """One of CONDITIONS (anything else is shown as given, in neutral colours)."""
    reason: str = ""
    message: str = ""
    sync: str = ""
    """Does the device run what git says (Synced, Progressing, OutOfSync, Unknown)."""
    health: str = ""
    """Are the line's errors, gates and drift fine (Healthy, Degraded, Failed, Stale, Unknown)."""
    device: str | None = None
    serving: str | None = None
    candidate: str | None = None
    stage: str | None = None
    phase: str | None = None
    last_seen: float | None = None
    gates: Gates | None = None
    history: tuple[MetricPoint, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.site}/{self.line}"


@dataclass(frozen=True)
class TimelineEntry:
    at: float
    commit: str
    author: str
    subject: str
    changes: tuple[str, ...]
    """Plan-style summaries: `toledo/line-3: surface-classifier@3 shadow → canary`."""
    approved_by: str = ""
    """Who approved the commit (`linefleet_forge.approval`): `Jane Doe <jane@…> via pull request
    #12 (local forge)`."""


@dataclass(frozen=True)
class LabelQueues:
    reviews: int
    """Open re-review tasks (taxonomy splits and deprecations)."""
    qa: int
    """Inspector overrides waiting for QA."""
    audits: int
    """New annotators' labels waiting for audit."""
    confirmed_since_dataset: int
    """Overrides confirmed by QA since the last dataset version was built."""
    last_dataset_at: float | None = None
    """When the last dataset version was built (None: never)."""


@dataclass(frozen=True)
class EscapeView:
    """A line's field escape rate: defective of the labelled audit samples (Wilson 95%)."""

    line: str
    sampled: int
    labelled: int
    defects: int
    low: float = 0.0
    high: float = 1.0
    limit: float | None = None
    """The policy's `max_field_escape_rate` (None: not set or not known)."""
    broken: bool = False
    """The lower bound is past the limit (`reconciler.service.healthgates`)."""


@dataclass(frozen=True)
class ReportData:
    generated_at: float
    sources: tuple[str, ...] = ()
    """Where the data came from, one phrase each (`fleet repo /x at 1a2b3c4d`)."""
    lines: tuple[LineView, ...] | None = None
    timeline: tuple[TimelineEntry, ...] | None = None
    labels: LabelQueues | None = None
    escapes: tuple[EscapeView, ...] | None = None
    """None: no label store given."""
    notes: tuple[str, ...] = ()
    """Anything the reader should know about gaps in the data."""
