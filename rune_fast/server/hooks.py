"""gunicorn server hooks for the decision point.

``rune serve`` installs them; people running gunicorn themselves get them
from ``docs/gunicorn.conf.py`` (or ``from rune_fast.server.hooks import *``
in their own config):

- ``post_worker_init``: load the policy in the worker, after the fork and
  before it accepts connections (the store's watcher threads are born here),
  retrying while the files are broken;
- ``child_exit``: retire a dead worker's live metrics (prometheus_client
  multiprocess mode).
"""

from __future__ import annotations

from typing import Any

__all__ = ["post_worker_init", "child_exit"]


def post_worker_init(worker: Any) -> None:
    from .state import start_all

    # If the files are broken right now, keep trying for half the worker
    # timeout before accepting connections: meanwhile the other workers
    # (which still hold the last good engine) take the traffic.
    start_all(block=True, wait=max(1.0, float(getattr(worker, "timeout", 30)) / 2))


def child_exit(server: Any, worker: Any) -> None:
    from .metrics import mark_worker_dead

    mark_worker_dead(worker.pid)
