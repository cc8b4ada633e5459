"""The incremental views (`LabelStore.state()`) equal a rebuild from the whole log.

Random sequences of label work (annotations, overrides, QA, migrations, reviews, a store
reopened from its checkpoint) are appended batch by batch; after every batch the store's
view must equal `replay(store.events())`, dict order included.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainer.store
import trainer.views
from linefleet_core.taxonomy import Taxonomy
from tests.support.labelstate import assert_same_state
from tests.support.trainer_data import taxonomies
from trainer import snapshot
from trainer.checks import RefusedEvents
from trainer.events import EventKind, NewEvent
from trainer.migrations import plan_migrations
from trainer.store import LabelStore
from trainer.views import replay

FRAMES = [f"{i:064x}" for i in range(4)]
Op = tuple[Any, ...]

ops = st.one_of(
    st.tuples(
        st.just("ann"), st.integers(0, 3), st.integers(0, 4), st.integers(0, 2), st.integers(1, 3)
    ),
    st.tuples(st.just("ov"), st.integers(0, 3), st.integers(0, 4), st.integers(1, 3)),
    st.tuples(st.just("qa"), st.integers(0, 50), st.sampled_from(["confirm", "reject"])),
    st.tuples(st.just("migrate"), st.integers(2, 3)),
    st.tuples(st.just("review"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("sample"), st.integers(0, 3)),
)


@pytest.fixture(autouse=True)
def small_limits() -> Iterator[None]:
    """Checkpoints every 3 events and audits of the first 2 labels, so short runs reach both."""
    saved = trainer.store.CHECKPOINT_EVERY, trainer.views.AUDIT_FIRST
    trainer.store.CHECKPOINT_EVERY, trainer.views.AUDIT_FIRST = 3, 2
    yield
    trainer.store.CHECKPOINT_EVERY, trainer.views.AUDIT_FIRST = saved


def run(url: str, taxes: dict[str, Taxonomy], batches: list[list[Op]]) -> LabelStore:
    """Append `batches` (bad ones are refused whole); check view == rebuild after each."""
    store = LabelStore.open(url, taxes)
    for sha in FRAMES:
        store.register_frame(sha, "toledo", "line-1", "cam-1")
    for ops_ in batches:
        batch = [new for op in ops_ for new in _events(store, op)]
        before = len(store.events())
        try:
            store.append(batch)
        except RefusedEvents:
            assert len(store.events()) == before
        if ("reopen",) in ops_:  # a new process: starts from the saved checkpoint
            store.close()
            store = LabelStore.open(url, taxes)
        assert_same_state(store.state(), replay(store.events(), taxes))
    return store


def _events(store: LabelStore, op: Op) -> list[NewEvent]:
    kind = op[0]
    if kind in ("ann", "ov"):
        version = op[-1]
        tax = store.taxonomies[f"surface-defects@{version}"]
        cls = tax.class_ids[op[2] % len(tax.class_ids)]
        if kind == "ann":
            who = f"ann-{op[3]}"
            return [
                NewEvent(EventKind.ANNOTATION, who, frame=FRAMES[op[1]], cls=cls, taxonomy=tax.ref)
            ]
        return [
            NewEvent(EventKind.OVERRIDE, "insp", frame=FRAMES[op[1]], cls=cls, taxonomy=tax.ref)
        ]
    if kind == "sample":
        sha = FRAMES[op[1]]
        return [
            NewEvent(EventKind.SAMPLE, "tol-edge-01", frame=sha, detail="audit", model_said="ok",
                     model_version="surface-classifier@2", source_id=f"sample:{sha}")
        ]  # fmt: skip
    state = store.state()
    if kind == "qa":  # an open override, a label, or an event that is neither (refused)
        targets = [*sorted(state.overrides), *sorted(state.labels), 10_000]
        return [NewEvent(EventKind.QA, "lead", target=targets[op[1] % len(targets)], detail=op[2])]
    if kind == "migrate":
        return plan_migrations(state, store.taxonomies, "surface-defects", upto=op[1])
    if kind == "review" and state.migrations:
        mig, (_, choices) = sorted(state.migrations.items())[op[1] % len(state.migrations)]
        cls = choices[op[2] % len(choices)] if choices else "ok"
        return [NewEvent(EventKind.REVIEW, "lead", target=mig, cls=cls)]
    return []


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=20))
def test_incremental_views_equal_a_rebuild_from_the_log(batches: list[list[Op]]) -> None:
    taxes = taxonomies()
    with tempfile.TemporaryDirectory() as tmp:
        store = run(f"sqlite:///{Path(tmp) / 'labels.db'}", taxes, batches)
        store.close()


def random_batches(seed: int, count: int) -> list[list[Op]]:
    rng = random.Random(seed)
    out: list[list[Op]] = []
    for _ in range(count):
        out.append([_random_op(rng) for _ in range(rng.randint(1, 4))])
    return out


def _random_op(rng: random.Random) -> Op:
    kind = rng.choice(["ann", "ann", "ann", "ov", "qa", "migrate", "review", "reopen"])
    if kind == "ann":
        return (kind, rng.randrange(4), rng.randrange(5), rng.randrange(3), rng.randint(1, 3))
    if kind == "ov":
        return (kind, rng.randrange(4), rng.randrange(5), rng.randint(1, 3))
    if kind == "qa":
        return (kind, rng.randrange(50), rng.choice(["confirm", "reject"]))
    if kind == "migrate":
        return (kind, rng.randint(2, 3))
    if kind == "review":
        return (kind, rng.randrange(10), rng.randrange(10))
    return ("reopen",)


def test_incremental_views_equal_a_rebuild_on_each_backend(
    store_url: str, taxes: dict[str, Taxonomy]
) -> None:
    store = run(store_url, taxes, random_batches(2, 50))
    state, events = store.state(), store.events()
    # the sequence reaches every kind of view change
    assert state.rejected and state.decided and state.migrations
    assert any(lab.origin is EventKind.OVERRIDE for lab in state.labels.values())
    assert any(e.kind is EventKind.REVIEW for e in events)
    assert any(lab.taxonomy.endswith("@3") for lab in state.labels.values())
    store.close()


def test_a_checkpoint_for_other_taxonomies_is_not_used(tmp_path: Path) -> None:
    taxes = taxonomies()
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    store = run(url, taxes, random_batches(3, 20))
    want = replay(store.events(), taxes)
    store.close()
    fewer = {ref: t for ref, t in taxes.items() if not ref.endswith("@3")}
    assert snapshot.fingerprint(fewer) != snapshot.fingerprint(taxes)
    other = LabelStore.open(url, fewer)
    assert_same_state(other.state(), replay(other.events(), fewer))
    other.close()
    again = LabelStore.open(url, taxes)
    assert_same_state(again.state(), want)
    again.close()
