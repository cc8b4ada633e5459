"""A private, throwaway PostgreSQL for tests: initdb in a temp folder, a free loopback port.

    with Postgres() as pg:
        url = pg.create_database("labels")      # postgresql+psycopg://postgres@127.0.0.1:P/labels

Nothing is shared with a PostgreSQL service the machine may run: the cluster lives in its own
temp folder, listens on 127.0.0.1 only (its socket in that folder too), trusts local users,
skips fsync, and is deleted on `stop()`. initdb and postgres refuse to run as root, so under
root both run as the `postgres` system user, which then owns the temp folder.

The session fixture `postgres` finds the binaries (`pg_config --bindir`, then
/usr/lib/postgresql/*/bin, or `LINEFLEET_PG_BINDIR`). Without them it skips with the reason on a
developer machine, and fails under `CI=true` (`.ci/run` installs them there).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support.server import accepts, free_port

RUN_AS = "postgres"


class PostgresError(RuntimeError):
    pass


def find_bindir() -> Path | None:
    """The folder holding initdb and postgres, or None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    if env := os.environ.get("LINEFLEET_PG_BINDIR"):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next(
        (d for d in candidates if (d / "initdb").is_file() and (d / "postgres").is_file()), None
    )


class Postgres:
    """One PostgreSQL cluster in a temp folder, bound to 127.0.0.1 on a free port."""

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, bindir: Path | None = None, *, port: int | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PostgresError("PostgreSQL binaries (initdb, postgres) not found")
        self.bindir = found
        self.port = port or free_port()
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    @property
    def data(self) -> Path:
        assert self.root is not None, "start() first"
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> Postgres:
        if self.running:
            return self
        self.root = Path(tempfile.mkdtemp(prefix="linefleet-pg-"))
        self.root.chmod(0o700)
        as_user = _as_user()
        if as_user:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user]
        initdb += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]
        done = subprocess.run(initdb, capture_output=True, text=True, check=False, **as_user)
        if done.returncode != 0:
            self._remove()
            raise PostgresError(f"initdb exited with {done.returncode}:\n{done.stderr[-2000:]}")
        server = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        server += ["-h", self.host, "-k", str(self.root)]
        for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
            server += ["-c", setting]
        with (self.root / "postgres.log").open("ab") as log:
            self.process = subprocess.Popen(
                server, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **as_user
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log()
                self.process = None
                self._remove()
                raise PostgresError(f"postgres exited:\n{text[-2000:]}")
            if accepts(self.host, self.port) and self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise PostgresError(f"postgres did not accept connections in {timeout}s")

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT), then delete the cluster's folder."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None
        self._remove()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        if self.root is None:
            return ""
        try:
            return (self.root / "postgres.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _ready(self) -> bool:
        try:
            self._admin("SELECT 1")
        except Exception:  # the server is still starting up
            return False
        return True

    def _admin(self, sql: str) -> None:
        import psycopg

        conninfo = f"host={self.host} port={self.port} user={self.user} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root to the `postgres` user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PostgresError(f"running as root and there is no {RUN_AS!r} user to run as") from None
    return {"user": RUN_AS, "group": RUN_AS, "extra_groups": []}


def unavailable() -> str:
    """Why a private PostgreSQL cannot run here ("" when it can)."""
    if find_bindir() is None:
        return "PostgreSQL binaries (initdb, postgres) not found: apt-get install postgresql"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed: pip install -e '.[trainer]'"
    return ""


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One private PostgreSQL for the session (import this name into a conftest to use it)."""
    if reason := unavailable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()
