"""Benchmark: models through a site mirror, and an air-gap bundle for a 20-device site.

Part 1 (site mirror). Set-up, not timed: a central registry and one site mirror (CNCF
Distribution from Debian's `docker-registry`, the mirror in pull-through mode as written by
`linefleet mirror config`), both on loopback ports with storage in a temp folder; a 50 MB model
pushed to the centre with `linefleet_core.oci.push_file`. Timed: 100 device fetchers, each the
edge agent's own `ArtifactStore` (`download` by digest from the mirror, then `verify`: size and
sha256), all started at once in threads; the time until every one holds a verified copy, and
the bytes the central registry sent (its access log: `http.response.written` of blob GETs),
i.e. the uplink. Twice: a cold mirror (devices are the first to ask), and a mirror warmed with
`reconciler.mirror.warm` first (what `linefleet mirror warm --site S` does).

Part 2 (bundle). Set-up: `linefleet fleet generate` with one site of 20 lines and 20 devices
(its real tiny ONNX models), committed. Timed: `linefleet bundle export --site` (median of 3),
and `linefleet edge import` of the bundle on each of the 20 devices into a fresh state
directory (verify, stage, load and smoke-test, converge); the bundle's size against the models
it holds.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
Usage: python bench/bench_artifacts.py [--devices N] [--model-mb MB]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def uplink_bytes(central: Any) -> int:
    return sum(
        int(r.get("http.response.written", 0))
        for r in central.requests()
        if r["http.request.method"] == "GET" and "/blobs/sha256:" in r["http.request.uri"]
    )


def fetch_all(url: str, sha: str, size: int, devices: int, folder: Path) -> float:
    """`devices` edge artifact stores fetch and verify the model at once; seconds until all."""
    from edge_puller.artifacts import ArtifactStore
    from linefleet_core.errors import TemporaryError

    errors: list[str] = []

    def device(n: int) -> None:
        store = ArtifactStore(folder / f"d{n:03d}", reserve_bytes=0)
        for _ in range(20):  # the agent retries temporary errors with backoff
            try:
                store.download(url, sha, size)
                store.verify(sha, size, resumed=False)
                break
            except TemporaryError:
                time.sleep(0.5)
        if not store.has(sha):
            errors.append(f"device {n}: not fetched")
        shutil.rmtree(store.root)  # keep the disk use of 100 copies bounded

    threads = [threading.Thread(target=device, args=(n,)) for n in range(devices)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise SystemExit("; ".join(errors[:5]))
    return seconds


def mirror_part(tmp: Path, devices: int, model_mb: int) -> dict[str, Any]:
    from linefleet_core.oci import push_file
    from reconciler.mirror import MirrorOptions, config_text, warm
    from tests.support.mosquitto import free_port
    from tests.support.registry import Registry

    model = tmp / "model.onnx"
    model.write_bytes(os.urandom(model_mb * 1024 * 1024))
    size = model.stat().st_size
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    out: dict[str, Any] = {"devices": devices, "model_bytes": size}
    with Registry(tmp / "central") as central:
        ref = push_file(model, f"oci://{central.address}/models/big").ref
        for mode in ("cold", "warmed"):
            port = free_port()
            options = MirrorOptions(f"127.0.0.1:{port}", str(tmp / f"{mode}-data"), central.address)
            config = config_text(options)
            before = uplink_bytes(central)
            with Registry(tmp / f"mirror-{mode}", port=port, config=config) as mirror:
                warm_s = 0.0
                if mode == "warmed":
                    start = time.perf_counter()
                    warm(mirror.address, [ref])
                    warm_s = time.perf_counter() - start
                log(f"{mode} mirror: {devices} devices fetch {size} bytes ...")
                seconds = fetch_all(str(ref.with_host(mirror.address)), sha, size, devices, tmp)
                time.sleep(1.0)  # the mirror's background store finishes
            sent = uplink_bytes(central) - before
            out[mode] = {
                "seconds_until_all_verified": round(seconds, 2),
                "warm_seconds": round(warm_s, 2),
                "uplink_bytes": sent,
                "uplink_models": round(sent / size, 2),
            }
            log(f"  {out[mode]}")
    return out


def lf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "linefleet"), *args], check=True, capture_output=True, text=True
    )


def bundle_part(tmp: Path, devices: int) -> dict[str, Any]:
    repo = tmp / "fleet-repo"
    lf(
        "fleet", "generate", "--out", str(repo), "--sites", "1",
        "--lines-per-site", str(devices), "--devices-per-site", str(devices),
        "--cameras-per-line", "1",
    )  # fmt: skip
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "bench"],
        ["git", "config", "user.email", "bench@linefleet.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "generated fleet"],
    ):
        subprocess.run(argv, cwd=repo, check=True)
    keys = json.loads(lf("keys", "generate", "--out", str(tmp / "keys"), "--format", "json").stdout)
    site = sorted(p.name for p in (repo / "fleet" / "sites").iterdir())[0]
    out = tmp / "site.bundle"
    exports = []
    summary: dict[str, Any] = {}
    for _ in range(3):
        start = time.perf_counter()
        done = lf(
            "bundle", "export", "--site", site, "--repo", str(repo), "--out", str(out),
            "--signing-key", keys["private_key"], "--format", "json",
        )  # fmt: skip
        exports.append(time.perf_counter() - start)
        summary = json.loads(done.stdout)
    device_ids = sorted(
        p.stem for p in (repo / "fleet" / "sites" / site / "devices").glob("*.yaml")
    )
    imports = []
    for device in device_ids:
        start = time.perf_counter()
        lf(
            "edge", "import", str(out), "--state-dir", str(tmp / "edge" / device),
            "--device", f"{site}/{device}", "--trust-key", keys["public_key"],
        )  # fmt: skip
        imports.append(time.perf_counter() - start)
    return {
        "devices": len(device_ids),
        "export_seconds_median": round(statistics.median(exports), 2),
        "import_seconds_median": round(statistics.median(imports), 2),
        "import_seconds_total": round(sum(imports), 2),
        "bundle_bytes": summary["bytes"],
        "artifact_bytes": summary["artifact_bytes"],
        "models": summary["artifacts"],
        "overhead_ratio": round(summary["bytes"] / summary["artifact_bytes"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--model-mb", type=int, default=50)
    parser.add_argument("--bundle-devices", type=int, default=20)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="linefleet-bench-artifacts-") as tmp:
        mirror = mirror_part(Path(tmp), ns.devices, ns.model_mb)
        log("bundle ...")
        bundle = bundle_part(Path(tmp), ns.bundle_devices)
    cold, warmed = mirror["cold"], mirror["warmed"]
    mb = mirror["model_bytes"] / 1024 / 1024
    markdown = "\n".join(
        [
            f"{mirror['devices']} device fetchers (the edge's `ArtifactStore`: download by digest "
            f"from the site mirror, verify size and sha256), a {mb:.0f} MB model, all at once:",
            "",
            "| mirror | until all verified | uplink (central → mirror) | = models |",
            "|---|---|---|---|",
            f"| cold (devices ask first) | {cold['seconds_until_all_verified']} s | "
            f"{cold['uplink_bytes'] / 1024 / 1024:.0f} MB | {cold['uplink_models']} x |",
            f"| warmed (`mirror warm`, {warmed['warm_seconds']} s first) | "
            f"{warmed['seconds_until_all_verified']} s | "
            f"{warmed['uplink_bytes'] / 1024 / 1024:.0f} MB | {warmed['uplink_models']} x |",
            "",
            "Distribution 2.8's pull-through cache streams every request for a blob it has not "
            "stored yet from the centre separately, so a cold mirror costs up to one model per "
            "device that asks at the same time. `linefleet mirror warm --site S` (run before "
            "the devices get the new desired state) has the mirror store it first.",
            "",
            f"Air-gap bundle for a {bundle['devices']}-device site ({bundle['models']} models, "
            f"{bundle['artifact_bytes']} bytes of models; generated fleet, tiny models):",
            "",
            "| export (median of 3) | import per device (median) | all devices | bundle | "
            "bundle / models |",
            "|---|---|---|---|---|",
            f"| {bundle['export_seconds_median']} s | {bundle['import_seconds_median']} s | "
            f"{bundle['import_seconds_total']} s | {bundle['bundle_bytes']} bytes | "
            f"{bundle['overhead_ratio']} x |",
            "",
            "An import verifies the manifest and the document, stages the models and converges "
            "(load and smoke-test each model) in a new process, like `linefleet edge import`.",
        ]
    )
    result = {
        "benchmark": "artifacts",
        "title": "Models through a site mirror; an air-gap bundle",
        "command": f"python bench/bench_artifacts.py --devices {ns.devices} --model-mb "
        f"{ns.model_mb} --bundle-devices {ns.bundle_devices}",
        "target": "uplink = 1 x the model through a (warmed) site mirror",
        "met": warmed["uplink_models"] < 1.5,
        "results": {"mirror": mirror, "bundle": bundle},
        "markdown": markdown,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
