"""`linefleet_core.wiredump` dumps wire messages exactly as pydantic does, and signing with
pre-encoded members gives exactly the bytes of the straightforward way (properties over
generated documents, every optional field set or not, parts shared between documents)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, computed_field, field_serializer

from linefleet_core import wire
from linefleet_core.signing import SigningKey, canonical_json
from linefleet_core.wire import (
    Approval,
    ArtifactRef,
    CameraSpec,
    CandidateSpec,
    DesiredState,
    DeviceSpec,
    HealthGatesSpec,
    LineSpec,
    ModelInput,
    ModelOutputs,
    ModelSpec,
    Normalization,
    TaxonomySpec,
    TelemetrySpec,
    TilingSpec,
)
from linefleet_core.wiredump import Dumper, walkable

KEY = SigningKey.generate()
ids = st.sampled_from(["a", "toledo", "line-1", "edge-07", "x" * 63])
refs = st.sampled_from(["surface-classifier@1", "surface-defects@2", "m@999999"])
hexes = st.sampled_from(["0" * 64, "ab" * 32, "0123456789abcdef" * 4])
commits = st.sampled_from(["0" * 40, "f" * 40, "c0ffee" * 6 + "abcd"])
numbers = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False)
fractions = st.floats(min_value=0.0, max_value=1.0)
texts = st.text(min_size=1, max_size=12)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


normalizations = st.builds(
    Normalization,
    scale=positive,
    mean=maybe(st.lists(numbers, min_size=1, max_size=3)),
    std=maybe(st.lists(positive, min_size=1, max_size=3)),
)
inputs = st.builds(
    ModelInput,
    shape=st.lists(st.integers(1, 4096), min_size=4, max_size=4),
    color=st.sampled_from(["rgb", "bgr", "gray"]),
    name=maybe(texts),
    layout=maybe(st.sampled_from(["NCHW", "NHWC"])),
    resize=maybe(st.sampled_from(["stretch", "letterbox"])),
    normalize=maybe(normalizations),
    tiling=maybe(st.builds(TilingSpec, size=st.integers(1, 999), overlap=st.integers(0, 99))),
)
outputs = st.builds(
    ModelOutputs,
    probabilities=maybe(texts),
    logits=maybe(texts),
    boxes=maybe(texts),
    box_format=maybe(st.sampled_from(["yolov8", "yolov5"])),
    score_thresholds=maybe(st.dictionaries(texts, fractions, max_size=3)),
    default_score_threshold=maybe(fractions),
    iou_threshold=maybe(fractions),
    score=maybe(texts),
    map=maybe(texts),
    threshold=maybe(numbers),
)
model_fields: dict[str, st.SearchStrategy[Any]] = {
    "ref": refs,
    "artifact": st.builds(ArtifactRef, url=texts, sha256=hexes, size=st.integers(1, 2**40)),
    "input": inputs,
    "output_classes": st.lists(texts, min_size=1, max_size=4),
    "opset": st.integers(1, 30),
    "reference_stats": st.dictionaries(texts, numbers, max_size=4),
    "task": maybe(st.sampled_from(["classification", "detection", "anomaly"])),
    "outputs": maybe(outputs),
}
models = st.builds(ModelSpec, **model_fields)
candidates = st.builds(
    CandidateSpec,
    **model_fields,
    stage=st.sampled_from(["shadow", "canary"]),
    canary_fraction=maybe(fractions),
)
cameras = st.builds(
    CameraSpec,
    id=ids,
    fps=positive,
    width=st.integers(1, 8000),
    height=st.integers(1, 8000),
    roi=maybe(st.lists(st.integers(0, 4000), min_size=4, max_size=4)),
)
telemetry = st.builds(
    TelemetrySpec,
    uncertainty_band=st.lists(fractions, min_size=2, max_size=2),
    daily_upload_budget_mb=positive,
    spool_mb=positive,
    keep_defects=st.booleans(),
    keep_disagreements=st.booleans(),
    uncertain_below=maybe(fractions),
    audit_rate=maybe(fractions),
    novelty_threshold=maybe(positive),
)
gates = st.builds(
    HealthGatesSpec,
    max_error_rate=numbers,
    max_latency_p95_ms=numbers,
    min_shadow_agreement=numbers,
    max_defect_rate_jump=numbers,
    max_drift_score=numbers,
)


@st.composite
def devices(draw: st.DrawFn, shared: list[ModelSpec]) -> DesiredState:
    """A desired state whose lines draw their models from `shared` (one object, many lines,
    as one compile shares them) or make their own."""
    pick = st.sampled_from(shared) | models
    lines = [
        LineSpec(
            line=f"{draw(ids)}/{draw(ids)}",
            cameras=draw(st.lists(cameras, min_size=1, max_size=2)),
            taxonomy=draw(st.builds(TaxonomySpec, ref=refs, classes=st.lists(texts, min_size=2))),
            serving=draw(pick),
            candidate=draw(maybe(candidates)),
            previous=draw(maybe(pick)),
            telemetry=draw(telemetry),
            health_gates=draw(gates),
            novelty=draw(maybe(pick)),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    approval = st.builds(
        Approval, by=texts, via=texts, commit=commits, pull=maybe(st.integers(1, 999))
    )
    moment = st.datetimes(timezones=st.just(dt.UTC))
    return DesiredState(
        protocol=1,
        kind="DesiredState",
        site=draw(ids),
        device=draw(ids),
        generation=draw(st.integers(1, 2**53)),
        commit=draw(commits),
        content_hash=draw(hexes),
        spec=DeviceSpec(heartbeat_seconds=draw(st.integers(1, 3600)), lines=lines),
        approval=draw(maybe(approval)),
        expires_at=draw(maybe(moment)),
    )


@st.composite
def fleets(draw: st.DrawFn) -> list[DesiredState]:
    shared = draw(st.lists(models, min_size=1, max_size=3))
    return draw(st.lists(devices(shared), min_size=1, max_size=4))


@settings(max_examples=60, deadline=None)
@given(fleets())
def test_dumps_what_pydantic_dumps(docs: list[DesiredState]) -> None:
    dumper = Dumper()  # one for all documents: shared parts come from its memory
    for doc in docs:
        assert dumper.dump(doc) == doc.model_dump(mode="json")
        assert canonical_json(dumper.dump(doc.spec)) == canonical_json(
            doc.spec.model_dump(mode="json")
        )
        for line in doc.spec.lines:  # encoded once per object, spliced into every line naming it
            assert dumper.encoded(line.serving) == canonical_json(line.serving.model_dump())
            assert dumper.encoded(line.serving) is dumper.encoded(line.serving)
        drop = {"signature", "spec", "approval"}
        assert dumper.dump(doc, exclude=drop) == doc.model_dump(mode="json", exclude=drop)


@settings(max_examples=60, deadline=None)
@given(fleets())
def test_signing_with_the_spec_encoded_apart_gives_the_same_bytes(docs: list[DesiredState]) -> None:
    dumper = Dumper()
    for doc in docs:
        body = doc.model_dump(mode="json", exclude={"signature", "expires_at"})
        straight = canonical_json(KEY.sign(body))
        assert KEY.signed_payload(body, "spec") == straight
        head = dumper.dump(doc, exclude={"signature", "expires_at", "spec"})
        spec = canonical_json(dumper.dump(doc.spec))
        assert KEY.signed_payload(head, encoded={"spec": spec}) == straight


@given(
    st.dictionaries(
        st.sampled_from(["a", "protocol", "sig", "signature", "site", "spec", "z", "é"]),
        st.none() | st.integers() | st.text() | st.lists(st.integers()),
    ),
    st.sets(st.sampled_from(["a", "site", "spec", "z", "é"])),
)
def test_signed_payload_around_any_members(body: dict[str, Any], apart: set[str]) -> None:
    """Members encoded apart, before or after `signature`, or the only ones."""
    encoded = {k: canonical_json(body[k]) for k in apart if k in body}
    assert KEY.signed_payload(body, encoded=encoded) == canonical_json(KEY.sign(body))


def test_desired_states_are_walked_not_handed_to_pydantic() -> None:
    """The fast path is on for the documents publish signs: a new serialization rule in
    `linefleet_core.wire` would turn it off (correct, but slow), and this says so."""
    assert walkable(DesiredState)


class _Stamped(wire.Wire):
    at: dt.datetime
    label: str


def test_a_value_it_does_not_know_goes_to_pydantic() -> None:
    stamped = _Stamped(at=dt.datetime(2026, 12, 3, tzinfo=dt.UTC), label="x")
    assert (
        Dumper().dump(stamped)
        == stamped.model_dump(mode="json")
        == {
            "at": "2026-12-03T00:00:00Z",
            "label": "x",
        }
    )


class _Aliased(BaseModel):
    value: int = 0
    other: int = Field(default=1, serialization_alias="Other")


class _Formatted(BaseModel):
    value: float = 0.5

    @field_serializer("value")
    def _percent(self, value: float) -> str:
        return f"{value:.0%}"


class _Computed(BaseModel):
    value: int = 2

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return self.value * 2


class _Holder(wire.Sparse):
    inner: _Formatted | None = None


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (_Aliased(), {"value": 0, "other": 1}),  # (the alias only with by_alias)
        (_Formatted(), {"value": "50%"}),
        (_Computed(), {"value": 2, "double": 4}),
        (_Holder(inner=_Formatted()), {"inner": {"value": "50%"}}),
    ],
)
def test_types_with_their_own_serialization_are_not_walked(
    model: BaseModel, expected: dict[str, Any]
) -> None:
    assert not walkable(type(model))
    assert Dumper().dump(model) == model.model_dump(mode="json") == expected
