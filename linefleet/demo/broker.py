"""A private Mosquitto for the demo: loopback only, a free port, persistence in the state dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from linefleet.demo.context import StageFailed
from linefleet.demo.procs import Children, wait_listening
from linefleet_core.loopback import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def config_text(port: int, data_dir: Path) -> str:
    """`linefleet broker config`'s generator in its anonymous loopback form. Anonymous access is
    acceptable only because the listener is bound to 127.0.0.1; a plant's broker comes from
    `linefleet broker config` (accounts, ACL, client ids bound to accounts, TLS)."""
    from reconciler.broker import config_text as generate
    from reconciler.broker import loopback

    # stay root: the state dir is not the mosquitto user's
    stay_root = os.geteuid() == 0
    return generate(
        loopback(
            str(data_dir.parent), str(data_dir), port, stay_root=stay_root, autosave_interval=5
        )
    )


def start(children: Children, folder: Path, timeout: float = 10.0) -> str:
    """Start Mosquitto as a child; return its `mqtt://` URL once it accepts connections."""
    if not Path(MOSQUITTO).exists():
        raise StageFailed("Mosquitto is not installed (run `make setup`)")
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(config_text(port, data))
    log = folder / "mosquitto.log"
    process = children.start("mosquitto", [MOSQUITTO, "-c", str(conf)], log)
    why = wait_listening(process, port, timeout)
    if why is not None:
        raise StageFailed(f"Mosquitto {why}", log.read_text(errors="replace"))
    return f"mqtt://127.0.0.1:{port}"
