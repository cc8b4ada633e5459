"""A private Mosquitto for the demo: loopback only, a free port, persistence in the state dir."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from linefleet.demo.context import StageFailed
from linefleet.demo.procs import Children

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config_text(port: int, data_dir: Path) -> str:
    """`linefleet broker config`'s generator in its anonymous loopback form. Anonymous access is
    acceptable only because the listener is bound to 127.0.0.1; a plant's broker comes from
    `linefleet broker config` (accounts, ACL, client ids bound to accounts, TLS)."""
    from reconciler.broker import BrokerOptions
    from reconciler.broker import config_text as generate

    options = BrokerOptions(
        str(data_dir.parent),
        str(data_dir),
        port,
        "127.0.0.1",
        anonymous=True,
        # stay root: the state dir is not the mosquitto user's
        user="root" if os.geteuid() == 0 else None,
        autosave_interval=5,
    )
    return generate(options)


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StageFailed("Mosquitto exited at start", log.read_text(errors="replace"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise StageFailed(f"Mosquitto did not listen on port {port}", log.read_text(errors="replace"))
