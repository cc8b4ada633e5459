"""What `validate --base` and `plan` import: only what a valid fleet's check needs.

Start-up is a fixed ~0.3 s of every pull-request check; these tests keep out what it never
uses (pydantic's plugin search through every installed distribution's metadata, the forge
adapters, the crash log's modules). Each command runs in a fresh interpreter on a real git
repository, and its output is checked too: what it skips must not change what it says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import minifleet

# importlib.metadata (and email, zipfile, csv with it) was imported by pydantic's plugin
# loader; tempfile/traceback only write a crash log; difflib only suggests a field name.
NOT_NEEDED = (
    "importlib.metadata",
    "email",
    "tempfile",
    "traceback",
    "difflib",
    "linefleet_forge.base",
    "linefleet_forge.factory",
)
RUN = (
    "import json, sys\n"
    "from linefleet.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return minifleet.committed_minifleet(tmp_path_factory.mktemp("fleet"))


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Run `linefleet ARGS` in a fresh interpreter: exit code, output, modules loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    *output, last = proc.stdout.splitlines()
    result = json.loads(last)
    return result["code"], "\n".join(output), set(result["modules"])


def without_pydantic_setting() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("validate", "--base", "HEAD"), "valid: 0 error(s), 0 warning(s) in 13 document(s)"),
        (("plan", "--base", "HEAD", "--head", "HEAD"), "Plan: 0 lines to add, 0 to change"),
    ],
)
def test_the_pull_request_check_imports_nothing_it_does_not_use(
    repo: Path, args: tuple[str, ...], says: str
) -> None:
    code, out, modules = run(repo, *args, env=without_pydantic_setting())
    assert code == 0, out
    assert says in out
    assert "pydantic" in modules and "linefleet_forge.gitcache" in modules  # real imports seen
    assert not modules & set(NOT_NEEDED), modules & set(NOT_NEEDED)


def test_pydantic_decides_about_plugins_when_its_variable_is_set(repo: Path) -> None:
    """PYDANTIC_DISABLE_PLUGINS set (empty: every plugin on) gives pydantic's own loader back:
    it reads the installed distributions' entry points as documented."""
    env = {**without_pydantic_setting(), "PYDANTIC_DISABLE_PLUGINS": ""}
    code, out, modules = run(repo, "validate", "--base", "HEAD", env=env)
    assert code == 0, out
    assert "importlib.metadata" in modules
