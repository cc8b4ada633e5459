"""Fail when the virtualenv differs from the lock: `pip freeze` must match requirements/dev.txt.

Usage: python .ci/lockcheck.py requirements/dev.txt   (run with the virtualenv's python)
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock: str) -> int:
    wanted = {}
    for line in Path(lock).read_text(encoding="utf-8").splitlines():
        m = PIN.match(line)
        if m:
            wanted[canonical(m.group(1))] = m.group(2)
    have = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    have.pop("linefleet", None)  # the checkout itself, installed editable
    problems = [
        f"{name}: locked {version}, installed {have.get(name, 'nothing')}"
        for name, version in sorted(wanted.items())
        if have.get(name) != version
    ]
    problems += [
        f"{name}: installed {v}, not in the lock"
        for name, v in sorted(have.items())
        if name not in wanted
    ]
    if problems:
        print(
            f"{lock}: the virtualenv does not match the lock:",
            *problems,
            sep="\n  ",
            file=sys.stderr,
        )
        print(
            "Run `make clean setup` (or `make lock` after changing pyproject.toml).",
            file=sys.stderr,
        )
        return 1
    print(f"{lock}: virtualenv matches the lock ({len(wanted)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
