"""Every camera of the device at once: one reader thread per camera, a bounded queue per camera,
and inspection workers that decide each frame for every line the camera serves.

Backpressure is explicit and per camera. A live camera (USB index, stream URL) never waits for
inference: when its queue of `queue_frames` is full the *oldest* frame is dropped and counted
(`dropped`), so a slow model sees the newest frames and memory stays bounded. A recorded source
(a folder of images, a video file) is read no faster than frames are decided: its reader waits
for room, and nothing is dropped. Workers take frames round-robin across cameras, so one busy
camera cannot starve the others.

A camera that stops (folder gone, stream error, cable pulled) is reported (`state` "retrying"
with the reason, also in the report's `error`) and reopened with backoff by its own reader,
while the other cameras go on. Each camera's counters are in the report's `cameras` section.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_puller.runtime import Frame
from edge_puller.sources import Source

log = logging.getLogger("linefleet.edge")

FrameItem = tuple[str, Frame | None]
Opener = Callable[[Source, threading.Event, Callable[[str], None]], Iterator[FrameItem]]
LIVE_KINDS = frozenset({"usb", "stream", "live"})


@dataclass
class CameraFeed:
    """One camera: its source, its bounded queue and its counters (guarded by the hub's lock)."""

    source: Source
    capacity: int
    queue: collections.deque[FrameItem] = field(default_factory=collections.deque)
    read: int = 0
    decided: int = 0
    dropped: int = 0
    unassigned: int = 0
    state: str = "starting"
    message: str = ""
    retries: int = 0

    @property
    def live(self) -> bool:
        return self.source.kind in LIVE_KINDS

    def status(self) -> dict[str, Any]:
        return {
            "source": self.source.kind,
            "state": self.state,
            "message": self.message,
            "frames_read": self.read,
            "frames_decided": self.decided,
            "frames_dropped": self.dropped,
            "frames_unassigned": self.unassigned,
            "queued": len(self.queue),
            "retries": self.retries,
        }


class CameraHub:
    """The per-camera queues between the readers and the inspection workers."""

    def __init__(self, feeds: Mapping[str, CameraFeed]) -> None:
        self.feeds = dict(sorted(feeds.items()))
        self._order = list(self.feeds)
        self._next = 0
        self._cond = threading.Condition()
        self._open = len(self.feeds)
        self.on_change: Callable[[], None] = lambda: None

    # --- readers ---------------------------------------------------------------------------

    def put(self, feed: CameraFeed, item: FrameItem, stop: threading.Event) -> None:
        with self._cond:
            if not feed.live:
                while len(feed.queue) >= feed.capacity and not stop.is_set():
                    self._cond.wait(0.2)
            elif len(feed.queue) >= feed.capacity:
                feed.queue.popleft()  # the oldest frame goes: inspection sees the newest
                feed.dropped += 1
            feed.read += 1
            feed.queue.append(item)
            self._cond.notify_all()

    def problem(self, feed: CameraFeed, message: str) -> None:
        with self._cond:
            if message:
                feed.state, feed.message = "retrying", message
                feed.retries += 1
            else:
                feed.state, feed.message = "streaming", ""
        self.on_change()

    def finished(self, feed: CameraFeed, state: str, message: str = "") -> None:
        """The reader stopped; a source that ended while its problem stood (a video refused
        for its frame size) has failed with that problem, still in the report."""
        with self._cond:
            if state == "ended" and not message and feed.message:
                state, message = "failed", feed.message
            feed.state, feed.message = state, message
            self._open -= 1
            self._cond.notify_all()
        self.on_change()

    # --- workers ---------------------------------------------------------------------------

    def take(
        self, stop: threading.Event, timeout: float = 0.2
    ) -> tuple[CameraFeed, FrameItem] | None:
        """The next frame round-robin across cameras, waiting at most `timeout`; None when
        there is none yet (see `exhausted`), or when stopped."""
        with self._cond:
            for attempt in range(2):
                if stop.is_set():
                    return None
                for offset in range(len(self._order)):
                    index = (self._next + offset) % len(self._order)
                    feed = self.feeds[self._order[index]]
                    if feed.queue:
                        self._next = (index + 1) % len(self._order)
                        item = feed.queue.popleft()
                        self._cond.notify_all()  # a recorded source may be waiting for room
                        return feed, item
                if self._open <= 0 or attempt:
                    return None
                self._cond.wait(timeout)
            return None

    @property
    def exhausted(self) -> bool:
        """Every source ended and every queued frame was taken."""
        with self._cond:
            return self._open <= 0 and not any(f.queue for f in self.feeds.values())

    def done(self, feed: CameraFeed, decided: bool) -> None:
        with self._cond:
            if decided:
                feed.decided += 1
            else:
                feed.unassigned += 1

    def status(self) -> dict[str, dict[str, Any]]:
        with self._cond:
            return {camera: feed.status() for camera, feed in self.feeds.items()}

    def problems(self) -> list[str]:
        with self._cond:
            return [feed.message for feed in self.feeds.values() if feed.message]


def read_camera(
    hub: CameraHub,
    feed: CameraFeed,
    opener: Opener,
    stop: threading.Event,
    max_frames: int | None = None,
) -> None:
    """A camera's reader thread: frames from its source into its queue until `stop`."""
    hub.problem(feed, "")
    count = 0
    try:
        for item in opener(feed.source, stop, lambda message: hub.problem(feed, message)):
            hub.put(feed, item, stop)
            count += 1
            if stop.is_set() or (max_frames is not None and count >= max_frames):
                break
    except Exception as exc:  # a broken source must not take the device down
        log.exception("camera %s: reader failed", feed.source.camera)
        hub.finished(feed, "failed", f"camera {feed.source.camera}: {exc}")
        return
    hub.finished(feed, "ended" if not stop.is_set() else "stopped")
