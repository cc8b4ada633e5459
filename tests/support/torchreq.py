"""PyTorch for the CNN tests: present, or a skip locally and a failure under CI=true."""

from __future__ import annotations

import importlib.util
import os

import pytest


def require_torch() -> None:
    if importlib.util.find_spec("torch") is not None:
        return
    message = "PyTorch is missing: pip install torch==2.13.0 (the trainer extra pins it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)  # CI installs the extra: missing is a defect
    pytest.skip(message)
