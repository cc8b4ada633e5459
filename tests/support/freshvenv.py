"""A fresh virtualenv for tests that install linefleet as a user would, offline and fast.

The new environment has no packages of its own. Its dependencies come from the environment
running the tests through a folder of links to every installed distribution *except linefleet*
(a `.pth` line in the new environment adds that folder to `sys.path`; `.pth` files inside it
are not run, so the editable install of the source tree stays invisible). pip, run by the new
interpreter, therefore sees every dependency as installed and installs linefleet itself only,
from the wheel or source tree the test names, with `--no-index`. A dependency the wheel needs
and the test environment lacks makes that install fail, as it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

HIDDEN = ("linefleet", "__editable__", "_linefleet")
SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".demo", "__pycache__", "*.egg-info", "build", "dist", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", "bench", "tests",
)  # fmt: skip


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user who activated this virtualenv: its `bin` first on PATH,
        no PYTHONPATH (which would put a source tree ahead of the installed package)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env.update(extra)
        return env

    def pip_install(self, *requirements: str, cwd: Path | None = None) -> None:
        run(
            [str(self.python), "-m", "pip", "install", "--quiet", "--no-index", *requirements],
            env=self.env(),
            cwd=cwd or self.root,
        )


def dependency_links(folder: Path) -> Path:
    """A folder of links to everything installed here except linefleet (see the module doc)."""
    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if entry.name.startswith(HIDDEN) or entry.suffix == ".pth":
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


def create(root: Path, links: Path) -> Venv:
    """A new virtualenv at `root` (no pip of its own) that sees the dependencies in `links`."""
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", "--without-pip", str(root)], env=Venv(root).env(), cwd=root.parent)
    venv = Venv(root)
    purelib = run(
        [str(venv.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=venv.env(),
        cwd=root,
    ).strip()
    (Path(purelib) / "_test_dependencies.pth").write_text(f"{links}\n")
    return venv


def copy_source(source: Path, dest: Path) -> Path:
    """The source tree without caches, builds and virtualenvs (a build writes into its tree)."""
    shutil.copytree(source, dest, ignore=SOURCE_IGNORE, symlinks=True)
    return dest


def build_wheel(source: Path, out: Path) -> Path:
    """Build linefleet's wheel from a copy of `source`; return the wheel's path."""
    tree = copy_source(source, out / "src")
    dist = out / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--wheel-dir", str(dist), str(tree)],
        env=env,
        cwd=out,
    )  # fmt: skip
    (wheel,) = dist.glob("linefleet-*.whl")
    return wheel


def run(argv: list[str], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout
