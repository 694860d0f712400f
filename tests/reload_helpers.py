"""Helpers shared by the reload tests (test_store.py, test_watch.py)."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for(pred, timeout: float = 10.0, interval: float = 0.005):
    """Poll ``pred`` until truthy or fail after ``timeout`` seconds (never hangs)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def write(path: Path, text: str) -> None:
    """A plain in-place rewrite (truncate + write), like most scripts do."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
