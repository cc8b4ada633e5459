"""What more than one command reads from its arguments: a `--now` time, the trainer's workspace
options, registry credentials. A command module never imports another one; what two commands
share lives here (parsing) or in the component below (everything else).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet_core.errors import UsageError

if TYPE_CHECKING:
    from linefleet_core.oci import Credentials

DEFAULT_STATE = Path(".linefleet/trainer")
"""The trainer's state folder (label store, frames, datasets) unless `--state` says otherwise."""


def number(text: str) -> float:
    """argparse type: a finite number (`float` alone takes `nan`, `inf` and `1e999`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds, 0 or more."""
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds cannot be negative")
    return value


def parse_now(text: str | None) -> dt.datetime | None:
    """`--now`: an ISO 8601 time (UTC when it has no offset), or None when not given."""
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now: {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def add_workspace_options(p: argparse.ArgumentParser) -> None:
    """`--state`, `--labels` and `--fleet-repo`: where the trainer's commands keep and read."""
    p.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help=f"trainer state (default {DEFAULT_STATE})"
    )
    p.add_argument("--labels", help="label store SQLAlchemy URL (default: SQLite under --state)")
    p.add_argument(
        "--fleet-repo", type=Path, default=Path(), help="fleet repo with taxonomies/ (default .)"
    )


def credentials_for(host: str, path: Path | None) -> Credentials | None:
    """Registry credentials for `host`: from `path` (JSON by host) or the environment."""
    from linefleet_core.oci import Credentials, OciError, load_credentials

    if path is not None:
        try:
            return load_credentials(path).get(host)
        except OciError as exc:
            raise UsageError(f"--credentials {exc}") from None
    token = os.environ.get("LINEFLEET_REGISTRY_TOKEN", "")
    user = os.environ.get("LINEFLEET_REGISTRY_USERNAME", "")
    if token or user:
        return Credentials(user, os.environ.get("LINEFLEET_REGISTRY_PASSWORD", ""), token)
    return None
