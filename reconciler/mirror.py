"""Site artifact mirrors: a Distribution config in pull-through-cache mode, and warming.

A site's `artifact_mirror` (`site.yaml`) is a CNCF Distribution registry started with
`proxy.remoteurl` set to the central registry: it serves `GET /v2/REPO/blobs/sha256:…` from
its own storage and fetches what it lacks from the centre once. `publish` signs the site's
documents with `oci://MIRROR/REPO@sha256:…` (`reconciler.compile`), so devices only ever talk
to their site's mirror.

Measured on Distribution 2.8 (docs/benchmarks.md): while a blob is not yet stored, *every*
concurrent request for it is streamed from the centre separately, so 100 devices asking a
cold mirror at once cost up to 101 x the model over the uplink. `warm()` asks the mirror for
each blob once and hangs up after the response headers (the mirror goes on storing the blob
in the background), then polls with `Range: bytes=0-0` until the mirror answers `206`, which
it only does from its own storage. Warm before devices get the new documents.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterable
from dataclasses import dataclass

from linefleet_core.errors import PermanentError, TemporaryError
from linefleet_core.oci import Credentials, OciRef, is_oci, parse_ref, registry_base
from linefleet_core.spec import FleetSpec


class MirrorError(PermanentError):
    """The fleet does not say enough to configure a mirror (no mirror, several registries)."""


@dataclass(frozen=True)
class MirrorOptions:
    listen: str
    """`HOST:PORT` the mirror binds to."""
    data_dir: str
    upstream: str
    """The central registry `HOST[:PORT]`."""
    upstream_credentials: Credentials | None = None
    htpasswd: str | None = None
    """An htpasswd file (bcrypt) the site's devices authenticate against (read-only tokens)."""


def registries(spec: FleetSpec) -> list[str]:
    """Every registry host the model catalogue names (`oci://HOST/…`), sorted."""
    hosts = set()
    for family in spec.models.values():
        for version in family.versions:
            if is_oci(version.artifact.url):
                hosts.add(parse_ref(version.artifact.url).host)
    return sorted(hosts)


def upstream_of(spec: FleetSpec) -> str:
    """The one central registry a mirror proxies (a pull-through cache has one upstream)."""
    hosts = registries(spec)
    if not hosts:
        raise MirrorError("the model catalogue names no oci:// artifact: nothing to mirror")
    if len(hosts) > 1:
        raise MirrorError(
            f"the model catalogue names several registries ({', '.join(hosts)}); a site mirror "
            "proxies one: pass --upstream HOST[:PORT]"
        )
    return hosts[0]


def site_artifacts(spec: FleetSpec, site: str) -> list[OciRef]:
    """The `oci://` models the site's lines run, may run or roll back to (central refs)."""
    refs: set[OciRef] = set()
    for line in spec.lines_of(site):
        rollout = line.rollout
        names = [rollout.serving, rollout.previous]
        names.append(rollout.candidate.model if rollout.candidate else None)
        for name in names:
            version = spec.model_version(name) if name else None
            if version is not None and is_oci(version.artifact.url):
                refs.add(parse_ref(version.artifact.url))
    return sorted(refs, key=str)


def config_text(options: MirrorOptions) -> str:
    """The Distribution (`docker-registry serve`) config of a site mirror."""
    lines = [
        "# linefleet site artifact mirror: a pull-through cache of the central registry",
        "version: 0.1",
        "log:",
        "  level: info",
        "  formatter: json",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {options.data_dir}",
        "  cache:",
        "    blobdescriptor: inmemory",
        "http:",
        f"  addr: {options.listen}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
        "proxy:",
        f"  remoteurl: {registry_base(options.upstream)}",
    ]
    creds = options.upstream_credentials
    if creds is not None:
        lines += [f"  username: {creds.username}", f"  password: {creds.password}"]
    if options.htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: linefleet", f"    path: {options.htpasswd}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Warmed:
    ref: OciRef
    seconds: float


def warm(
    mirror: str,
    refs: Iterable[OciRef],
    *,
    credentials: Credentials | None = None,
    timeout: float = 600.0,
    poll: float = 0.2,
) -> list[Warmed]:
    """Make the mirror store each blob, fetching it from the centre once."""
    done = []
    for ref in refs:
        local = ref.with_host(mirror)
        start = time.monotonic()
        status = _get(local, credentials, ranged=False)  # starts the mirror's own copy
        delay = poll
        while status != 206:  # each poll of a blob not yet stored costs a few buffers' worth
            if time.monotonic() - start > timeout:
                raise TemporaryError(f"{local}: not stored by the mirror after {timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            status = _get(local, credentials, ranged=True)
        done.append(Warmed(ref, time.monotonic() - start))
    return done


def _get(ref: OciRef, credentials: Credentials | None, *, ranged: bool) -> int:
    """GET the blob and hang up after the status line; the mirror keeps caching."""
    base = registry_base(ref.host)
    scheme, _, hostport = base.partition("://")
    conn_type = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    headers = {"User-Agent": "linefleet-mirror-warm"}
    if ranged:
        headers["Range"] = "bytes=0-0"
    if credentials is not None:
        headers["Authorization"] = credentials.header()
    conn = conn_type(hostport, timeout=30)
    try:
        conn.request("GET", f"/v2/{ref.repo}/blobs/sha256:{ref.sha256}", headers=headers)
        response = conn.getresponse()
        status = response.status
    except OSError as exc:
        raise TemporaryError(f"mirror {ref.host}: {exc}", delay=5.0) from None
    finally:
        conn.close()
    if status in (401, 403):
        raise PermanentError(f"mirror {ref.host}: HTTP {status} (credentials?)")
    if status == 404:
        raise PermanentError(f"{ref}: the mirror and the central registry do not have it")
    if status not in (200, 206):
        raise TemporaryError(f"mirror {ref.host}: HTTP {status}", delay=5.0)
    return status
