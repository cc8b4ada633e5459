"""The reconciler's quick intake (pydantic's JSON parser straight from bytes) only ever takes a
message the careful path (`json.loads`, then validation) takes too, and reads it the same.

`reconciler.service.observed._quick` is what makes `linefleet status` on 10,000 devices fast;
this is the promise that lets it skip the careful path: for any JSON value put into any field
of a valid reported state, event, online or desired document, and for the hostile corpus.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from linefleet_core.wire import DesiredState, Event, Online, ReportedState
from reconciler.service.observed import _no_constants, _quick
from tests.fuzz.test_fuzz_wire import PATHS, SIGNED, _paths, _replace, fuzz, json_values
from tests.hostile import wire_corpus as wc

MODELS: list[tuple[type[ReportedState | Event | Online | DesiredState], dict[str, Any]]] = [
    (ReportedState, wc.reported()),
    (Event, wc.event()),
    (Online, {"protocol": 1, "online": True, "agent": "x"}),
    (DesiredState, SIGNED),
]


def careful(model: type[Any], payload: bytes) -> Any:
    try:
        raw = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
        return model.model_validate(raw)
    except (UnicodeDecodeError, ValueError, RecursionError, ValidationError):
        return None


def agrees(model: type[Any], payload: bytes) -> None:
    quick = _quick(model, payload)
    if quick is not None:
        assert quick == careful(model, payload), payload[:200]


@pytest.mark.parametrize("case", wc.DEVICE_CASES, ids=lambda c: c.name)
def test_the_hostile_corpus(case: wc.DeviceCase) -> None:
    for model, _ in MODELS:
        agrees(model, case.payload)


@pytest.mark.parametrize(("model", "good"), MODELS, ids=lambda m: getattr(m, "__name__", ""))
def test_valid_messages_are_taken_quickly(model: type[Any], good: dict[str, Any]) -> None:
    payload = json.dumps(good).encode()
    assert _quick(model, payload) is not None
    agrees(model, payload)


@fuzz
@given(st.integers(0, len(MODELS) - 1), st.data(), json_values)
def test_any_value_in_any_field(which: int, data: st.DataObject, value: Any) -> None:
    model, good = MODELS[which]
    paths = PATHS if model is DesiredState else _paths(good)
    path = data.draw(st.sampled_from(paths))
    payload = json.dumps(_replace(copy.deepcopy(good), path, value)).encode()
    agrees(model, payload)


def test_a_number_too_large_for_a_float_goes_the_careful_way() -> None:
    """Found by the fuzz test above: a 330-digit integer in a float field is infinity to
    pydantic's JSON parser, but the careful path refuses it (the float conversion overflows)."""
    doc = copy.deepcopy(SIGNED)
    doc["spec"]["lines"][0]["telemetry"]["daily_upload_budget_mb"] = 10**330
    payload = json.dumps(doc).encode()
    assert careful(DesiredState, payload) is None
    assert _quick(DesiredState, payload) is None


@pytest.mark.parametrize("digits", [299, 300, 301, 330])
def test_long_digit_runs_around_the_limit(digits: int) -> None:
    """The quick path's guard is a run of 300 ASCII digits (a byte search): below it a number
    is read alike by both paths; from it on the message goes the careful way."""
    doc = copy.deepcopy(SIGNED)
    doc["spec"]["lines"][0]["telemetry"]["daily_upload_budget_mb"] = 10 ** (digits - 1)
    payload = json.dumps(doc).encode()
    assert (_quick(DesiredState, payload) is None) == (digits >= 300)
    agrees(DesiredState, payload)


def test_digits_apart_are_not_one_long_run() -> None:
    """300 digits split by a slash are two short runs: the message is still taken quickly."""
    doc = copy.deepcopy(SIGNED)
    doc["spec"]["lines"][0]["serving"]["artifact"]["url"] = f"file:///{'7' * 150}/{'7' * 150}"
    payload = json.dumps(doc).encode()
    assert careful(DesiredState, payload) is not None
    assert _quick(DesiredState, payload) is not None
    agrees(DesiredState, payload)
