"""`linefleet COMMAND ...` builds only COMMAND's parser; anything else builds them all."""

from __future__ import annotations

import argparse

import pytest

from linefleet.cli import build_parser, main


def commands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_a_named_command_alone_is_built() -> None:
    assert commands(build_parser(["validate", "--base", "main"])) == ["validate"]
    assert commands(build_parser(["plan", "--base", "main"])) == ["plan"]


@pytest.mark.parametrize("argv", [[], ["--version"], ["no-such-command"], ["-h"]])
def test_anything_else_builds_every_command(argv: list[str]) -> None:
    every = commands(build_parser())
    assert {"plan", "validate", "publish", "edge"} <= set(every)
    assert commands(build_parser(argv)) == every


@pytest.mark.parametrize("argv", [["plan", "--help"], ["validate", "--bogus"], ["nope"]])
def test_help_and_usage_errors_read_as_with_every_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    def run(parser: argparse.ArgumentParser) -> tuple[object, str, str]:
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(argv)
        out = capsys.readouterr()
        return stop.value.code, out.out, out.err

    assert run(build_parser(argv)) == run(build_parser())
    with pytest.raises(SystemExit):
        main(argv)
