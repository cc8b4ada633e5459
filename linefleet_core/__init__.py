"""The linefleet contract: fleet and taxonomy models, wire messages, and shared plumbing.

This package imports nothing else of linefleet; the reconciler, edge puller and trainer all
depend on it and never on each other.
"""

API_VERSION = "linefleet.io/v1"
