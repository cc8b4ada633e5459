"""Compare two label views field by field, dict order included (the fold's order matters)."""

from __future__ import annotations

from trainer.views import LabelState


def assert_same_state(got: LabelState, want: LabelState) -> None:
    assert list(got.labels.items()) == list(want.labels.items())
    assert list(got.rejected.items()) == list(want.rejected.items())
    assert list(got.overrides.items()) == list(want.overrides.items())
    assert list(got.decided.items()) == list(want.decided.items())
    assert list(got.migrations.items()) == list(want.migrations.items())
    assert got.audit_queue == want.audit_queue
    assert list(got.annotated.items()) == list(want.annotated.items())
    assert list(got.samples.items()) == list(want.samples.items())
    assert got.last_event == want.last_event
    assert got.tasks() == want.tasks()
