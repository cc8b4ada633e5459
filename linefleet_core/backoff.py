"""Capped exponential backoff with jitter: the one retry delay of every loop that retries
(the edge's convergence loop, its MQTT link and camera, the reconciler's tick and session)."""

from __future__ import annotations

import random
from dataclasses import dataclass


def retry_delay(attempt: int, base: float, cap: float, hint: float = 0.0) -> float:
    """The delay before retry number `attempt` (1, 2, ...): base, 2*base, 4*base, ... up to
    `cap`, never below `hint` (a server's or an error's own retry delay), each scaled by a
    random factor in [0.5, 1] so many clients that failed together do not retry together."""
    ceiling = min(cap, max(hint, base * 2.0 ** min(max(attempt, 1) - 1, 30)))
    return ceiling * random.uniform(0.5, 1.0)


@dataclass
class Backoff:
    """`retry_delay` with the attempt count kept: `next()` after a failure, `reset()` after a
    success."""

    base: float = 1.0
    cap: float = 300.0
    attempts: int = 0

    def next(self, hint: float = 0.0) -> float:
        """The next delay; never below `hint` (a server's or an error's own retry delay)."""
        self.attempts += 1
        return retry_delay(self.attempts, self.base, self.cap, hint)

    def reset(self) -> None:
        self.attempts = 0
