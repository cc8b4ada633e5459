"""The `linefleet` command: parse, dispatch to one command module, map errors to exit codes.

Every module in `linefleet.commands` exposes `register(subparsers)`, which adds its
subcommand and sets `run=<function(args) -> int>`. Command modules import their heavy
dependencies (MQTT, onnxruntime, MLflow) inside `run`, so `linefleet validate` starts fast
and an edge device without the trainer extra can still run `linefleet edge`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from linefleet import commands
from linefleet_core.errors import ExitCode, LinefleetError
from linefleet_core.text import printable_lines


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `argv`, only the subcommand it names when that one is
    found (importing every command module costs ~0.1 s of a `validate` or `plan`)."""
    parser = argparse.ArgumentParser(
        prog="linefleet",
        description="GitOps for defect-detection models across every line of every plant.",
        epilog="Exit codes: 0 ok, 1 invalid input, 2 usage, 3 unexpected (see log), "
        "4 service unavailable, 130 interrupted.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    first = argv[0] if argv else None
    if first in names:
        importlib.import_module(f"{commands.__name__}.{first}").register(sub)
        if first in sub.choices:
            return parser
        return build_parser()  # the module did not add a command of its own name
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


class _Version(argparse.Action):
    """`--version`: looked up only when asked (reading package metadata costs ~0.1-0.3 s)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("linefleet")
        except PackageNotFoundError:  # run from a source tree that was never installed
            text = "(not installed)"
        print(f"linefleet {text}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except LinefleetError as exc:
        print(f"linefleet: error: {printable_lines(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("linefleet: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception:
        log = _crash_log()
        print(
            f"linefleet: unexpected error (a bug); details written to {log}. Please report it.",
            file=sys.stderr,
        )
        return int(ExitCode.UNEXPECTED)


def _crash_log() -> Path:
    # Imported here: only a crash needs them (~10 ms of every command's start-up otherwise).
    import datetime as dt
    import tempfile
    import traceback

    folder = Path(os.environ.get("LINEFLEET_LOG_DIR", tempfile.gettempdir()))
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"linefleet-crash-{stamp}-{os.getpid()}.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
