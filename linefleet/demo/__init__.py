"""`linefleet demo`: the whole loop on one machine, from an empty folder to a fleet in production.

It drives every component through its command line, in order: a private Mosquitto, a fleet
repository with a bare origin and the local forge, synthetic frames, training and promotion
pull requests, signed publishing, edge agents in separate processes, inspector overrides and
QA, a walk through shadow, canary and production, and a regression caught on the device and in
git. Stages whose pieces are not built yet say so and are listed at the end.
"""

from linefleet.demo.context import Options
from linefleet.demo.runner import run_demo

__all__ = ["Options", "run_demo"]
