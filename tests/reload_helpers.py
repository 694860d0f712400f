"""Helpers shared by the reload tests (test_store.py, test_watch.py)."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for(pred, timeout: float = 30.0, interval: float = 0.005):
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


def wait_quiet(read, quiet: float = 0.3, timeout: float = 30.0):
    """Wait until ``read()`` has returned the same value for ``quiet`` seconds
    (e.g. a store's reload count: the events of the last change, which the
    watcher may deliver late on a loaded machine, have all been handled).
    Returns that value; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"still changing after {timeout}s")
        time.sleep(0.02)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value
