"""Benchmark: `linefleet validate` vs `check-jsonschema` on a 40 x 40 x 4 generated fleet.

Both run from the command line as a CI job would, each in a fresh process every time (no
in-process cache survives), repeated; we report medians and their ratio, measured in this
one run on this machine. The files are read once before timing so both tools find them in
the OS page cache: "cold" means a cold interpreter, not a cold disk.

check-jsonschema gets the fairest set-up we could give it: ONE process over every file,
against one schema that dispatches on `kind` to the exported per-kind schemas (embedded as
schema resources). For reference we also time the obvious CI form: one process per kind.
check-jsonschema only checks structure; `linefleet validate` also checks references,
taxonomy compatibility, migrations and device capability.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SITES, LINES, CAMERAS = 40, 40, 4
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))
TARGET_S = 1.0
BIN = Path(sys.executable).parent
KIND_DIRS = {  # schema name -> glob of its files
    "site": "fleet/sites/*/site.yaml",
    "line": "fleet/sites/*/lines/*.yaml",
    "edge-device": "fleet/sites/*/devices/*.yaml",
    "model": "fleet/models/*.yaml",
    "policy": "fleet/policy.yaml",
    "taxonomy": "taxonomies/*/*.yaml",
}
KINDS = {
    "site": "Site",
    "line": "Line",
    "edge-device": "EdgeDevice",
    "model": "Model",
    "policy": "Policy",
    "taxonomy": "Taxonomy",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr[-2000:]!r}"
        )
    return elapsed


def samples(argvs: list[list[str]], cwd: Path) -> list[float]:
    """Wall time of running `argvs` one after another, REPEAT times (after one warm-up)."""
    for argv in argvs:
        timed(argv, cwd)
    return [sum(timed(argv, cwd) for argv in argvs) for _ in range(REPEAT)]


def dispatch_schema(schema_dir: Path) -> dict[str, Any]:
    """One schema for every fleet file: `kind` selects the exported per-kind schema."""
    resources = {
        name: json.loads((schema_dir / f"{name}.schema.json").read_text()) for name in KINDS
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://linefleet.invalid/schema/fleet-file.schema.json",
        "$defs": resources,
        "required": ["kind"],
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}},
                "then": {"$ref": f"{name}.schema.json"},
            }
            for name, kind in KINDS.items()
        ],
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="linefleet-bench-") as tmp:
        repo = Path(tmp) / "fleet-repo"
        generate = [
            str(BIN / "linefleet"), "fleet", "generate", "--out", str(repo),
            "--sites", str(SITES), "--lines-per-site", str(LINES),
            "--cameras-per-line", str(CAMERAS),
        ]  # fmt: skip
        log(f"generating {SITES} x {LINES} x {CAMERAS} ...")
        subprocess.run(generate, check=True, stdout=subprocess.DEVNULL)
        files = sorted(str(p.relative_to(repo)) for g in KIND_DIRS.values() for p in repo.glob(g))
        size = sum((repo / f).stat().st_size for f in files)
        (repo / "fleet-file.schema.json").write_text(json.dumps(dispatch_schema(repo / "schema")))

        validate = [str(BIN / "linefleet"), "validate", "--repo", "."]
        check_one = [
            str(BIN / "check-jsonschema"),
            "--schemafile",
            "fleet-file.schema.json",
            *files,
        ]
        check_per_kind = [
            [
                str(BIN / "check-jsonschema"),
                "--schemafile",
                f"schema/{name}.schema.json",
                *sorted(str(p.relative_to(repo)) for p in repo.glob(pattern)),
            ]
            for name, pattern in KIND_DIRS.items()
        ]
        log(f"{len(files)} files, {size / 1e6:.1f} MB; {REPEAT} runs each")
        log("linefleet validate ...")
        ours = samples([validate], repo)
        log("check-jsonschema, one process ...")
        theirs = samples([check_one], repo)
        log("check-jsonschema, one process per kind ...")
        theirs_per_kind = samples(check_per_kind, repo)

    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    med_per_kind = statistics.median(theirs_per_kind)
    ratio = med_theirs / med_ours
    met = med_ours < TARGET_S and med_ours < med_theirs
    command = f"cd FLEET && linefleet validate --repo .   # FLEET = {' '.join(generate[1:4])} ..."
    markdown = "\n".join(
        [
            f"Fleet: `linefleet fleet generate --sites {SITES} --lines-per-site {LINES} "
            f"--cameras-per-line {CAMERAS}` — {SITES * LINES:,} lines, "
            f"{SITES * LINES * CAMERAS:,} cameras, {len(files):,} YAML files, "
            f"{size / 1e6:.1f} MB. Each tool runs in a fresh process, {REPEAT} times after one "
            "warm-up (files in the page cache).",
            "",
            "| command | median | min | max | vs validate |",
            "|---|---|---|---|---|",
            _row("`linefleet validate --repo .`", ours, med_ours),
            _row(
                "`check-jsonschema --schemafile fleet-file.schema.json <all files>` (1 process)",
                theirs,
                med_ours,
            ),
            _row(
                "`check-jsonschema --schemafile schema/<kind>.schema.json <files>` (6 processes)",
                theirs_per_kind,
                med_ours,
            ),
            "",
            f"**linefleet validate is {ratio:.1f}x faster** than check-jsonschema in one "
            "process, which checks structure only; validate also checks references, taxonomy "
            "compatibility and migrations, device capability and the canary limit.",
            "`fleet-file.schema.json` dispatches on `kind` to the six exported schemas "
            "(embedded unchanged), so check-jsonschema starts once, like validate.",
        ]
    )
    result = {
        "benchmark": "validate",
        "title": f"linefleet validate, {SITES} sites x {LINES} lines x {CAMERAS} cameras",
        "command": "python bench/bench_validate.py  (times: linefleet validate --repo FLEET; "
        "check-jsonschema --schemafile fleet-file.schema.json FILES...)",
        "target": f"validate under {TARGET_S:g} s and faster than check-jsonschema",
        "met": met,
        "results": {
            "files": len(files),
            "bytes": size,
            "repeat": REPEAT,
            "validate_s": _stats(ours),
            "check_jsonschema_s": _stats(theirs),
            "check_jsonschema_per_kind_s": _stats(theirs_per_kind),
            "speedup_vs_check_jsonschema": round(ratio, 2),
            "speedup_vs_check_jsonschema_per_kind": round(med_per_kind / med_ours, 2),
        },
        "markdown": markdown,
    }
    del command
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    log(f"validate {med_ours:.3f} s, check-jsonschema {med_theirs:.3f} s: {ratio:.1f}x")
    return 0


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "samples": [round(v, 3) for v in values],
    }


def _row(label: str, values: list[float], reference: float) -> str:
    med = statistics.median(values)
    return (
        f"| {label} | {med:.3f} s | {min(values):.3f} s | {max(values):.3f} s | "
        f"{med / reference:.2f}x |"
    )


if __name__ == "__main__":
    sys.exit(main())
