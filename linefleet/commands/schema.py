"""`linefleet schema --out DIR`: one JSON Schema per fleet file kind, for editors and CI.

The documents come from `linefleet_core.fleetschema`; this command writes them, or with
`--check` says which are missing or stale (exit 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from linefleet_core.errors import ExitCode, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="write the JSON Schemas of every fleet file kind",
        description="Write one JSON Schema per kind (site, line, edge-device, model, policy, "
        "taxonomy) into DIR. Editors pick them up through the yaml-language-server modeline "
        "at the top of each fleet file.",
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write (created)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if DIR is missing a schema or holds a stale one",
    )
    p.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from linefleet_core.fleetschema import schema_documents

    out: Path = ns.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    documents = schema_documents()
    if ns.check:
        stale = [
            name
            for name, text in documents.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"{out / name}: stale or missing (run: linefleet schema --out {out})")
        return int(ExitCode.INVALID if stale else ExitCode.OK)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        print(out / name)
    return int(ExitCode.OK)
