"""Run the benchmarks and rewrite `docs/benchmarks.md` (what `make bench` calls).

Every `bench/bench_*.py` is a standalone script. The protocol between it and this runner:
- progress goes to stderr;
- stdout carries exactly one JSON object:
    {"benchmark": "validate",            # short name, used for the result file
     "title": "linefleet validate ...",  # the section heading
     "command": "...",                   # the exact command(s) that were timed
     "target": "...", "met": true,       # optional: the goal and whether this run met it
     "results": {...},                   # numbers (medians, ratios, samples)
     "markdown": "..."}                  # the section body (tables, notes)
The runner stores each result in `bench/results/<benchmark>.json` and renders it into
`docs/benchmarks.md`, with the machine it ran on and the command that produced it. Running
named scripts replaces only their sections (found by the `- Script:` line) and leaves the
rest of the document as it is on disk: engineers re-run their own benchmarks concurrently in
one working tree, and another's stored result may not be committed yet.

Usage: python bench/run.py [NAME ...]   (NAME: `validate` runs bench/bench_validate.py)
       python bench/run.py --render     (rewrite the document from the stored results only)
       python bench/run.py --reading NAME FILE   (store FILE as the reading of NAME's last run)
       python bench/run.py --check      (exit 1 if the document is not what the results render)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
DOC = ROOT / "docs" / "benchmarks.md"
REQUIRED = ("benchmark", "title", "command", "results", "markdown")


def python_speed() -> float:
    """Milliseconds one core takes for a fixed pure-Python workload (the best of 5 runs): the
    same machine model can be twice as fast one day as another (shared hosts), so a reading
    carries this figure to be compared with readings taken elsewhere."""
    import time

    def work() -> float:
        start = time.perf_counter()
        table: dict[int, str] = {}
        for i in range(200_000):
            table[i & 1023] = f"{i}:{i * 7 % 13}"
        return time.perf_counter() - start

    return round(min(work() for _ in range(5)) * 1000, 1)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for row in cpuinfo.read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    memory_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib = int(meminfo.read_text().split()[1])
        memory_gb = round(kib / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python_speed_ms": python_speed(),
    }


def git_commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


class BenchFailed(Exception):
    pass


def run_one(script: Path) -> dict[str, Any]:
    print(f"== {script.name}", file=sys.stderr, flush=True)
    before = machine()
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        raise BenchFailed(f"{script.name} failed with exit code {proc.returncode}")
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BenchFailed(f"{script.name}: stdout is not one JSON object ({exc})") from None
    missing = [key for key in REQUIRED if key not in result]
    if missing:
        raise BenchFailed(f"{script.name}: result lacks {', '.join(missing)}")
    result["script"] = f"bench/{script.name}"
    result["machine"] = before
    result["commit"] = git_commit()
    result["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return result


HEADER = [
    "# Benchmarks",
    "",
    "Written by `make bench` (`python bench/run.py`); do not edit by hand. Each section is",
    "one `bench/bench_*.py` script; `python bench/run.py NAME` re-runs one of them.",
    "",
]
SCRIPT_LINE = re.compile(r"^- Script: `(bench/bench_\w+\.py)`", re.MULTILINE)


def render(results: list[dict[str, Any]]) -> str:
    out = [*HEADER]
    for result in results:
        out += section(result)
    return "\n".join(out).rstrip() + "\n"


def splice(document: str, results: list[dict[str, Any]]) -> str:
    """`document` with the sections of `results` replaced (or added in script order)."""
    head, *parts = re.split(r"^(?=## )", document, flags=re.MULTILINE)
    sections = {}
    for part in parts:
        found = SCRIPT_LINE.search(part)
        sections[found.group(1) if found else part] = part.rstrip() + "\n"
    for result in results:
        sections[result["script"]] = "\n".join(section(result)).rstrip() + "\n"
    body = "\n".join(sections[key] for key in sorted(sections))
    return (head.rstrip() if head.strip() else "\n".join(HEADER).rstrip()) + "\n\n" + body


def section(result: dict[str, Any]) -> list[str]:
    """One benchmark's section: heading, where and how it ran, the verdict, its body."""
    m = result["machine"]
    verdict = ""
    if "target" in result:
        verdict = (
            f"**Target:** {result['target']} — **{'met' if result.get('met') else 'NOT met'}**"
        )
    out = [
        f"## {result['title']}",
        "",
        f"- Script: `{result['script']}`, run {result['date']} at commit `{result['commit']}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['os']}, "
        f"Python {m['python']}, load average {m.get('load_average_1m', '?')} at the start"
        + (
            f"; reference Python workload {m['python_speed_ms']} ms (`bench/run.py`"
            " `python_speed`: lower is faster; compare readings by it)"
            if "python_speed_ms" in m
            else ""
        ),
        f"- Command: `{result['command']}`",
        "",
    ]
    if verdict:
        out += [verdict, ""]
    out += [result["markdown"].rstrip(), ""]
    if result.get("reading"):
        out += [result["reading"].strip(), ""]
    return out


def stored_results() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS.glob("*.json"))]


def add_reading(name: str, text_file: Path) -> int:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        print(f"bench: no stored result {path.relative_to(ROOT)}: run it first", file=sys.stderr)
        return 2
    result = json.loads(path.read_text(encoding="utf-8"))
    result["reading"] = text_file.read_text(encoding="utf-8").strip()
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    DOC.write_text(splice(DOC.read_text(encoding="utf-8"), [result]), encoding="utf-8")
    print(f"wrote the reading of {name} into {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


def check() -> int:
    """The document must be exactly what the stored results render (nothing edited by hand)."""
    want = render(stored_results())
    if DOC.read_text(encoding="utf-8") == want:
        return 0
    print(
        f"bench: {DOC.relative_to(ROOT)} differs from what bench/results/ renders; "
        "re-run the benchmark or store a reading with --reading",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str]) -> int:
    scripts = sorted(BENCH.glob("bench_*.py"))
    if argv == ["--check"]:
        return check()
    if len(argv) == 3 and argv[0] == "--reading":
        return add_reading(argv[1], Path(argv[2]))
    if argv == ["--render"]:
        scripts = []
    elif argv:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in argv}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if len(scripts) != len(wanted):
            names = [s.stem.removeprefix("bench_") for s in sorted(BENCH.glob("bench_*.py"))]
            raise SystemExit(f"unknown benchmark(s); available: {', '.join(names)}")
    RESULTS.mkdir(exist_ok=True)
    failed = []
    fresh = []
    for script in scripts:
        try:
            result = run_one(script)
        except BenchFailed as exc:  # keep going: one broken script must not hide the others
            print(f"bench: {exc}; its previous result (if any) is kept", file=sys.stderr)
            failed.append(script.name)
            continue
        path = RESULTS / f"{result['benchmark']}.json"
        path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        fresh.append(result)
    DOC.parent.mkdir(exist_ok=True)
    if argv and argv != ["--render"] and DOC.is_file():
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), fresh), encoding="utf-8")
    else:
        DOC.write_text(render(stored_results()), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
