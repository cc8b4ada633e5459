"""`linefleet bundle export`: one signed file that carries a site's desired state and models.

For a site with no network to the centre: compile and sign every device of the site at `rev`
exactly as `publish` would (same generation, so the devices' replay floor holds across both
paths), fetch every model those documents name from where the catalogue keeps it (the
registry for `oci://`, the fleet repository at `rev` for repository files, `https://`),
check each against its catalogue sha256 and size, and write the bundle
(`linefleet_core.bundle`) with a signed manifest.
"""

from __future__ import annotations

import hashlib
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from linefleet_core.bundle import Manifest, sign_manifest, write_bundle
from linefleet_core.catalogue import Artifact
from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.oci import Credentials, fetch_blob, is_oci, parse_ref
from linefleet_core.signing import SigningKey
from reconciler.compile import compile_fleet
from reconciler.publish import Revision, sign_all


@dataclass(frozen=True)
class Exported:
    path: Path
    devices: int
    artifacts: int
    artifact_bytes: int
    size: int


def export_bundle(
    revision: Revision,
    repo: Path,
    site: str,
    key: SigningKey,
    out: Path,
    artifact_base: str,
    credentials: Credentials | None = None,
) -> Exported:
    spec = revision.spec
    if site not in spec.sites:
        raise UsageError(
            f"--site {site}: not a site of the fleet ({', '.join(sorted(spec.sites))})"
        )
    docs = {
        device: doc
        for device, doc in compile_fleet(
            spec, revision.commit, revision.generation, artifact_base, revision.approval
        ).items()
        if doc.site == site
    }
    if not docs:
        raise UsageError(f"--site {site}: the site has no edge devices")
    signed = sign_all(docs, key)
    wanted: dict[str, tuple[str, Artifact]] = {}  # sha -> (model ref, catalogue artifact)
    for doc in docs.values():
        for line in doc.spec.lines:
            models = [line.serving, line.previous, line.candidate]
            for model in models:
                if model is None:
                    continue
                version = spec.model_version(model.ref)
                assert version is not None  # compile resolved it
                wanted[version.artifact.sha256] = (model.ref, version.artifact)
    with tempfile.TemporaryDirectory(prefix="linefleet-bundle-") as tmp:
        files: dict[str, Path] = {}
        for sha, (ref, artifact) in sorted(wanted.items()):
            data = _fetch(repo, revision.commit, artifact, credentials)
            if len(data) != artifact.size or hashlib.sha256(data).hexdigest() != sha:
                raise PermanentError(
                    f"{ref}: {artifact.url} does not match the catalogue's sha256 and size"
                )
            files[sha] = Path(tmp) / sha
            files[sha].write_bytes(data)
        manifest = Manifest(
            site,
            revision.commit,
            revision.generation,
            {d: hashlib.sha256(s.payload).hexdigest() for d, s in signed.items()},
            {sha: wanted[sha][1].size for sha in files},
            key.key_id,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bundle(
            out, sign_manifest(manifest, key), {d: s.payload for d, s in signed.items()}, files
        )
    total = sum(a.size for _, a in wanted.values())
    return Exported(out, len(docs), len(files), total, out.stat().st_size)


def _fetch(repo: Path, commit: str, artifact: Artifact, credentials: Credentials | None) -> bytes:
    url = artifact.url
    if is_oci(url):
        return fetch_blob(parse_ref(url), credentials)
    if url.startswith(("https://", "http://")):
        with urllib.request.urlopen(url, timeout=60) as response:
            data: bytes = response.read()
            return data
    path = url.removeprefix("file://")
    if url.startswith("file:///"):
        return Path(path).read_bytes()
    from linefleet_core.gitrepo import open_repo

    git_repo = open_repo(repo)
    top = Path(str(git_repo.working_tree_dir)).resolve()
    rel = repo.resolve().relative_to(top).as_posix()
    name = path if rel == "." else f"{rel}/{path}"
    try:
        blob = git_repo.commit(commit).tree / name.lstrip("./")
    except KeyError:
        raise PermanentError(f"{url}: not in the fleet repository at {commit[:12]}") from None
    raw: bytes = blob.data_stream.read()
    return raw
