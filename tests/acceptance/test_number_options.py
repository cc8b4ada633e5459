"""Every number a command takes is finite, and every duration is 0 or more: argparse's
`type=float` takes `nan`, `inf` and `-1`, and `labels ingest-events --seconds nan` (or
`-1`) stopped with exit 3 (a bug report) from `time.sleep`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linefleet.cli import build_parser, main
from linefleet.options import number, seconds


def _actions(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _actions(child, f"{path} {name}".strip())
        else:
            yield path, action


def test_no_option_takes_a_bare_float() -> None:
    found = [(path, a.option_strings) for path, a in _actions(build_parser()) if a.type is float]
    assert found == []
    typed = [a for _, a in _actions(build_parser()) if a.type in (number, seconds)]
    assert len(typed) >= 15


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "-1"])
def test_a_duration_that_is_not_a_finite_positive_number_is_a_usage_error(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["labels", "ingest-events", "--broker", "mqtt://127.0.0.1:1", "--seconds", value]
    with pytest.raises(SystemExit) as info:
        main([*args, "--state", str(tmp_path / "state")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seconds:" in err and "Traceback" not in err
