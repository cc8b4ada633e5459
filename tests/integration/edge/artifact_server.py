"""A real HTTP server on 127.0.0.1 serving files with `Range` support, that can cut connections.

`cut_after` makes every response stop after that many body bytes (the connection is closed
mid-file, as a flaky factory network does); `ignore_range` makes it answer 200 to everything;
`trickle=(n, seconds)` sends the body n bytes at a time, a pause between (a slow link), until
`stop` is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Files:
    content: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    trickle: tuple[int, float] | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def _handler(files: Files) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            wanted = self.headers.get("Range")
            files.requests.append((self.path, wanted))
            data = files.content.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if wanted and not files.ignore_range:
                start = int(wanted.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if files.cut_after is not None and len(body) > files.cut_after:
                self.wfile.write(body[: files.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            try:
                step, pause = files.trickle or (len(body), 0.0)
                for at in range(0, len(body), max(1, step)):
                    if files.stop.is_set():
                        return
                    self.wfile.write(body[at : at + step])
                    self.wfile.flush()
                    time.sleep(pause)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client hung up on purpose (a body longer than it was signed for)

    return Handler


@contextmanager
def serve(files: Files) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
