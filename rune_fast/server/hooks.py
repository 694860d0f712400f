"""gunicorn server hooks for the decision point.

``rune serve`` installs them; people running gunicorn themselves get them
from ``docs/gunicorn.conf.py`` (or ``from rune_fast.server.hooks import *``
in their own config):

- ``post_worker_init``: load the policy in the worker, after the fork and
  before it accepts connections (the store's watcher threads are born here);
- ``child_exit``: retire a dead worker's live metrics (prometheus_client
  multiprocess mode).
"""

from __future__ import annotations

from typing import Any

__all__ = ["post_worker_init", "child_exit"]


def post_worker_init(worker: Any) -> None:
    from .state import start_all

    start_all(block=True)


def child_exit(server: Any, worker: Any) -> None:
    from .metrics import mark_worker_dead

    mark_worker_dead(worker.pid)
