"""The one condition vocabulary: what `linefleet status` (the fleet's view, from reports) and
`linefleet edge status` (a device's own view, from its state directory) say about a device.

A condition is a type (one word, first match wins in each view), a reason code from `Reason`
(stable, for machines and alerts) and a free-text message (for people). Both views use the
same types; each has reasons only it can know. The fleet view's two verdicts (sync: does the
device run what git says; health: are its errors and gates fine) give their reasons from the
same `Reason`; no reason is ever a free-text string.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ConditionType(enum.StrEnum):
    SYNCED = "Synced"
    """Runs exactly the desired state."""
    PROGRESSING = "Progressing"
    """Converging: desired state differs from what runs, or none was received yet."""
    DEGRADED = "Degraded"
    """Serves, but a model under test was rolled back, failed or is past a health gate, or it
    inspects not quite as declared (frames at another scale: the report's `warning`)."""
    FAILED = "Failed"
    """Cannot converge: an error, a failed line, a refused document, an uninstallable model."""
    STALE = "Stale"
    """Fleet view only: not heard from in time; never shown as Synced."""
    UNKNOWN = "Unknown"
    """Fleet view only: never reported."""
    REMOVED = "Removed"
    """Device view only: taken out of the fleet; keeps serving what it ran."""


class Reason(enum.StrEnum):
    # the fleet's view (reconciler.service.fleetstatus)
    NEVER_REPORTED = "NeverReported"
    REPORT_REFUSED = "ReportRefused"  # nothing accepted from it; its last message was refused
    OFFLINE = "Offline"
    HEARTBEAT_MISSED = "HeartbeatMissed"
    DEVICE_ERROR = "DeviceError"
    DEVICE_WARNING = "DeviceWarning"  # inspects, not quite as declared (the report's `warning`)
    LINE_FAILED = "LineFailed"
    REFUSED_DOCUMENT = "RefusedDocument"
    ROLLED_BACK = "RolledBack"
    OUT_OF_SYNC = "OutOfSync"  # git is ahead of what the broker holds for the device
    ROLLED_BACK_BY_HAND = "RolledBackByHand"  # `linefleet edge rollback`: diverges from git
    HEALTH_GATE = "HealthGate"
    # both views
    NO_DESIRED_STATE = "NoDesiredState"
    CONVERGING = "Converging"
    APPLIED = "Applied"
    # the device's own view (edge_puller.localstatus)
    SERVING_NOT_INSTALLABLE = "ServingNotInstallable"
    MODEL_FAILED = "ModelFailed"
    SWITCHING = "Switching"
    REMOVED_FROM_FLEET = "RemovedFromFleet"
    # the fleet view's sync and health verdicts (reconciler.service.fleetstatus)
    GIT_AHEAD = "GitAhead"  # the sync verdict of OUT_OF_SYNC
    STALE = "Stale"  # the sync verdict of a Stale device: it cannot say
    WITHIN_GATES = "WithinGates"
    NOT_COMPUTED = "NotComputed"
    # the report's view (linefleet.report): it may read the reports without the desired state
    DESIRED_NOT_READ = "DesiredNotRead"
    NO_REPORT = "NoReport"  # a declared line no device has reported


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    reason: Reason
    message: str
