"""Capped exponential backoff with jitter, shared by the convergence loop and the MQTT link."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays base, 2*base, 4*base, ... up to cap, each scaled by a random factor in [0.5, 1]."""

    base: float = 1.0
    cap: float = 300.0
    attempts: int = 0

    def next(self, hint: float = 0.0) -> float:
        """The next delay; never below `hint` (a server's or an error's own retry delay)."""
        self.attempts += 1
        delay = min(self.cap, max(hint, self.base * 2.0 ** (self.attempts - 1)))
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0
