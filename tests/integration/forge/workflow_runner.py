"""Run the `run:` steps of one GitHub Actions job locally, the way the runner would.

Just enough of Actions for our own workflows: `${{ }}` expressions over `github`, `secrets`
and `steps` contexts, `if:` with `success()`/`always()`/`!cancelled()`, `&&`, `||`, `==`,
`!=`, `continue-on-error`, step and job `env`, `$GITHUB_ENV`, `$GITHUB_STEP_SUMMARY`,
`$RUNNER_TEMP`, and `bash -e` as the default shell. `uses:`
steps are skipped (checkout and setup-python are what the test prepares by hand).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
PATH_EXPR = re.compile(r"(?<!['\w.])([a-z_]+(?:\.[A-Za-z0-9_-]+)+)")


@dataclass
class JobRun:
    outcomes: dict[str, str] = field(default_factory=dict)  # step id or name -> outcome
    failed: bool = False
    summary: str = ""
    logs: dict[str, str] = field(default_factory=dict)


def lookup(ctx: dict[str, Any], dotted: str) -> Any:
    value: Any = ctx
    for part in dotted.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return value


def evaluate(expr: str, ctx: dict[str, Any], ok_so_far: bool) -> Any:
    text = expr.strip()
    if text.startswith("${{"):
        text = EXPR.sub(lambda m: m.group(1), text).strip()
    text = text.replace("!cancelled()", "True").replace("always()", "True")
    text = text.replace("success()", repr(ok_so_far))
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = PATH_EXPR.sub(lambda m: f"_ctx({m.group(1)!r})", text)
    return eval(text, {"_ctx": lambda p: lookup(ctx, p)})


def substitute(text: str, ctx: dict[str, Any]) -> str:
    return EXPR.sub(lambda m: str(evaluate(m.group(1), ctx, True)), text)


def _exported(github_env: Path) -> dict[str, str]:
    """Variables earlier steps appended to $GITHUB_ENV as NAME=value lines."""
    lines = github_env.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def run_job(
    workflow: dict[str, Any],
    ctx: dict[str, Any],
    cwd: Path,
    env: dict[str, str],
    prepared: frozenset[str] = frozenset(),
) -> JobRun:
    """Run the job; steps whose id is in `prepared` count as done (set up by the test)."""
    (job,) = workflow["jobs"].values()
    result = JobRun()
    summary = cwd.parent / "step-summary.md"
    summary.write_text("")
    github_env = cwd.parent / "github-env"
    github_env.write_text("")
    runner_temp = cwd.parent / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    ctx = {**ctx, "steps": {}}
    base_env = {**os.environ, **env, "GITHUB_STEP_SUMMARY": str(summary)}
    base_env |= {"GITHUB_ENV": str(github_env), "RUNNER_TEMP": str(runner_temp)}
    base_env |= {k: substitute(str(v), ctx) for k, v in job.get("env", {}).items()}
    for step in job["steps"]:
        key = step.get("id") or step.get("name") or step.get("uses", "")
        condition = step.get("if", "success()")
        if not evaluate(str(condition), ctx, not result.failed):
            outcome = "skipped"
        elif "uses" in step or step.get("id") in prepared:
            outcome = "success"
        else:
            step_env = {k: substitute(str(v), ctx) for k, v in step.get("env", {}).items()}
            proc = subprocess.run(
                ["bash", "-e", "-c", substitute(step["run"], ctx)],
                cwd=cwd,
                env={**base_env, **_exported(github_env), **step_env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            result.logs[key] = proc.stdout + proc.stderr
            outcome = "success" if proc.returncode == 0 else "failure"
        result.outcomes[key] = outcome
        if "id" in step:
            ctx["steps"][step["id"]] = {"outcome": outcome}
        if outcome == "failure" and not step.get("continue-on-error", False):
            result.failed = True
    result.summary = summary.read_text()
    return result
