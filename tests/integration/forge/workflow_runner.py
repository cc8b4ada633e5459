"""Run the `run:` steps of one GitHub Actions job locally, the way the runner would.

Just enough of Actions for our own workflows: `${{ }}` expressions over `github`, `secrets`
and `steps` contexts, `if:` with `success()`/`always()`/`!cancelled()`, `&&`, `||`, `==`,
`!=`, `continue-on-error`, step and job `env`, `$GITHUB_ENV`, `$GITHUB_STEP_SUMMARY`,
`$RUNNER_TEMP`, and `bash -e` as the default shell. A local composite action
(`uses: ./path`) runs its steps with `inputs` (defaults, then `with:`), `$GITHUB_ACTION_PATH`
and `$GITHUB_OUTPUT` (read back as `steps.<id>.outputs`); its step outcomes are recorded as
`<action step>/<step>`. Other `uses:` steps are skipped (checkout and setup-python are what
the test prepares by hand).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    ctx = {**ctx, "steps": {}, "runner": {"temp": str(runner_temp)}}
    base_env = {**os.environ, **env, "GITHUB_STEP_SUMMARY": str(summary)}
    base_env |= {"GITHUB_ENV": str(github_env), "RUNNER_TEMP": str(runner_temp)}
    base_env |= {k: substitute(str(v), ctx) for k, v in job.get("env", {}).items()}
    _run_steps(job["steps"], ctx, cwd, base_env, result, prepared, "")
    result.summary = summary.read_text()
    return result


def _run_steps(
    steps: list[dict[str, Any]],
    ctx: dict[str, Any],
    cwd: Path,
    base_env: dict[str, str],
    result: JobRun,
    prepared: frozenset[str],
    prefix: str,
) -> bool:
    """Run `steps` in order; return False when one failed (without continue-on-error)."""
    github_env = Path(base_env["GITHUB_ENV"])
    ok = True
    for step in steps:
        key = prefix + (step.get("id") or step.get("name") or step.get("uses", ""))
        condition = step.get("if", "success()")
        outputs: dict[str, str] = {}
        if not evaluate(str(condition), ctx, ok and not result.failed):
            outcome = "skipped"
        elif str(step.get("uses", "")).startswith("./"):
            outcome = _composite(step, ctx, cwd, base_env, result, prepared, key)
        elif "uses" in step or step.get("id") in prepared:
            outcome = "success"
        else:
            output = cwd.parent / "github-output"
            output.write_text("")
            step_env = {k: substitute(str(v), ctx) for k, v in step.get("env", {}).items()}
            proc = subprocess.run(
                ["bash", "-e", "-c", substitute(step["run"], ctx)],
                cwd=cwd,
                env={**base_env, **_exported(github_env), **step_env, "GITHUB_OUTPUT": str(output)},
                capture_output=True,
                text=True,
                timeout=300,
            )
            result.logs[key] = proc.stdout + proc.stderr
            outcome = "success" if proc.returncode == 0 else "failure"
            outputs = _exported(output)
        result.outcomes[key] = outcome
        if "id" in step:
            ctx["steps"][step["id"]] = {"outcome": outcome, "outputs": outputs}
        if outcome == "failure" and not step.get("continue-on-error", False):
            ok = False
            result.failed = True
    return ok


def _composite(
    step: dict[str, Any],
    ctx: dict[str, Any],
    cwd: Path,
    base_env: dict[str, str],
    result: JobRun,
    prepared: frozenset[str],
    key: str,
) -> str:
    folder = (cwd / step["uses"]).resolve()
    action = yaml.safe_load((folder / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    inputs = {
        name: substitute(str(spec.get("default", "")), ctx)
        for name, spec in action.get("inputs", {}).items()
    }
    unknown = set(step.get("with", {})) - set(inputs)
    assert not unknown, f"{step['uses']}: no such inputs {unknown}"
    inputs |= {k: substitute(str(v), ctx) for k, v in step.get("with", {}).items()}
    inner = {**ctx, "inputs": inputs, "steps": {}}
    env = {**base_env, "GITHUB_ACTION_PATH": str(folder)}
    ok = _run_steps(action["runs"]["steps"], inner, cwd, env, result, prepared, f"{key}/")
    return "success" if ok else "failure"
