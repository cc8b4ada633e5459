"""The demo's model registry: a central OCI registry and Toledo's site mirror (a pull-through
cache made by `linefleet mirror config`), both CNCF Distribution on loopback ports.

The example fleet's ONNX files are pushed with `linefleet artifacts push` and the catalogue
names them `oci://REGISTRY/models/surface-classifier@sha256:…`; git keeps YAML only. Toledo's
devices fetch through the mirror, so no signed document carries a `file://` URL.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from linefleet.demo import fleetrepo
from linefleet.demo.context import Demo, StageFailed
from linefleet.demo.procs import wait_listening
from linefleet_core.loopback import free_port

DOCKER_REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
REPOSITORY = "models/surface-classifier"


def central_config(data: Path, port: int) -> str:
    return (
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def serve(demo: Demo, name: str, config: Path, port: int, timeout: float = 15.0) -> None:
    if not Path(DOCKER_REGISTRY).exists():
        raise StageFailed("docker-registry is not installed (run `make setup`)")
    log = config.with_suffix(".log")
    process = demo.children.start(name, [DOCKER_REGISTRY, "serve", str(config)], log)
    why = wait_listening(process, port, timeout)
    if why is not None:
        raise StageFailed(f"{name} {why}", log.read_text(errors="replace"))


def start_central(demo: Demo) -> None:
    folder = demo.root / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "central.yml"
    config.write_text(central_config(folder / "central-data", port), encoding="utf-8")
    serve(demo, "registry", config, port)
    demo.registry = f"127.0.0.1:{port}"
    demo.record["registry"] = demo.registry
    demo.console.ok(f"OCI registry (CNCF Distribution) on {demo.registry} (loopback only)")


def move_models_to_registry(demo: Demo, site: str) -> None:
    """Push the catalogue's repository files, point the catalogue at them, name a mirror."""
    target = f"oci://{demo.registry}/{REPOSITORY}"
    pushed: dict[str, dict[str, Any]] = {}
    for path in sorted((demo.repo / "fleet" / "artifacts").glob("*.onnx")):
        rel = path.relative_to(demo.repo).as_posix()
        doc = demo.lf_json("artifacts", "push", str(path), "--to", target, "--format", "json")
        pushed[rel] = doc["artifact"]
    demo.console.command(["linefleet", "artifacts", "push", "FILE", "--to", target])
    demo.console.output(f"{len(pushed)} model(s) pushed to {target}")
    moved = fleetrepo.set_artifacts(demo.repo, "surface-classifier", pushed)
    shutil.rmtree(demo.repo / "fleet" / "artifacts")
    demo.mirror = f"127.0.0.1:{free_port()}"
    fleetrepo.set_site_field(demo.repo, site, "artifact_mirror", demo.mirror)
    commit = fleetrepo.commit_and_push(
        demo.repo,
        f"Models to the registry ({moved} catalogue versions as oci:// digests); "
        f"{site} fetches through its mirror {demo.mirror}",
    )
    demo.console.note(f"committed {commit[:12]}: git holds YAML only now")


def start_mirror(demo: Demo, site: str) -> None:
    folder = demo.root / "registry"
    config = folder / f"mirror-{site}.yml"
    demo.lf(
        "mirror", "config", "--site", site, "--repo", str(demo.repo), "--out", str(config),
        "--data-dir", str(folder / f"mirror-{site}-data"), limit=3,
    )  # fmt: skip
    serve(demo, f"mirror {site}", config, int(demo.mirror.rsplit(":", 1)[1]))
    demo.record["mirror"] = {site: demo.mirror}
    demo.console.ok(f"{site}'s artifact mirror on {demo.mirror}, caching {demo.registry}")
