"""`forge_from_spec`: turn a `--forge` value into an adapter.

    local                               the local forge (PRs recorded inside the repository)
    github://OWNER/REPO                 GitHub; token from GITHUB_TOKEN; API base from
                                        LINEFLEET_GITHUB_API (default https://api.github.com),
                                        for GitHub Enterprise or a test server
    gitea://HOST[:PORT]/OWNER/REPO      Gitea or Forgejo over HTTPS; token from GITEA_TOKEN
    gitea+http://HOST[:PORT]/OWNER/REPO the same over plain HTTP (a forge on localhost)

`forgejo://` and `forgejo+http://` are accepted as aliases of the gitea forms.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from linefleet_core.errors import UsageError
from linefleet_forge.base import Forge

GITHUB_API = "https://api.github.com"
_NAME = r"[A-Za-z0-9_.-]+"
_GITHUB = re.compile(rf"^github://(?P<owner>{_NAME})/(?P<repo>{_NAME})/?$")
_GITEA = re.compile(
    rf"^(?:gitea|forgejo)(?:\+(?P<scheme>https?))?://(?P<host>[A-Za-z0-9.-]+(?::\d{{1,5}})?)"
    rf"(?P<prefix>(?:/{_NAME})*?)/(?P<owner>{_NAME})/(?P<repo>{_NAME})/?$"
)
USAGE = "expected local, github://OWNER/REPO or gitea://HOST[:PORT]/OWNER/REPO"


def forge_from_spec(
    spec: str, repo_path: Path | str, env: Mapping[str, str] | None = None
) -> Forge:
    """The adapter for `spec`; a UsageError for a malformed spec or a missing token."""
    env = os.environ if env is None else env
    spec = spec.strip()
    if spec == "local":
        from linefleet_forge.local import LocalForge

        return LocalForge.for_repo(Path(repo_path))
    if m := _GITHUB.match(spec):
        from linefleet_forge.github import GitHubForge

        api = env.get("LINEFLEET_GITHUB_API", "").strip() or GITHUB_API
        return GitHubForge(api, m["owner"], m["repo"], _token(env, "GITHUB_TOKEN", spec))
    if m := _GITEA.match(spec):
        from linefleet_forge.gitea import GiteaForge

        api = f"{m['scheme'] or 'https'}://{m['host']}{m['prefix']}/api/v1"
        return GiteaForge(api, m["owner"], m["repo"], _token(env, "GITEA_TOKEN", spec))
    raise UsageError(f"--forge {spec!r}: {USAGE}")


def _token(env: Mapping[str, str], name: str, spec: str) -> str:
    token = env.get(name, "").strip()
    if not token:
        raise UsageError(f"--forge {spec}: set {name} to an API token that may open pull requests")
    return token
