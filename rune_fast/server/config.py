"""Options of the policy decision point.

``create_app(path, **options)`` takes them as keywords; ``rune serve`` builds
one ``ServerOptions`` in the gunicorn master, and every worker (forked, or
re-spawned after a crash) builds its app from that same immutable object.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any, Optional

__all__ = ["ServerOptions", "DEFAULT_BIND"]

DEFAULT_BIND = "127.0.0.1:8181"


@dataclass(frozen=True)
class ServerOptions:
    """Every knob of the server; each limit is a documented bound on an input.

    - ``max_body_bytes``: request bodies above this answer 413.
    - ``max_batch_items``: items of ``/v1/authorize/batch`` and of
      ``/access/v1/evaluations`` above this answer 413.
    - ``max_query_rows``: ``/v1/query`` returns at most this many rows
      (``truncated: true`` beyond).
    - ``max_search_limit``: the largest page a search endpoint returns.
    - ``max_json_depth``: nesting of JSON bodies (deeper answers 400).
    - ``admin_token_file``: enables ``/v1/admin/*`` (bearer token in it).
    - ``decision_log``: a file path, ``"-"`` for stdout, or ``None`` (off).
    - ``decision_log_mask``: dotted request paths replaced by ``"***"`` in
      the log (e.g. ``"context.password"``); ``decision_log_request=False``
      leaves the request out of the log entirely.
    - ``run_dir``: directory shared by the workers of one server (admin
      broadcast); default: derived from the master's pid and the policy path.
    - ``watch``: reload on file changes; ``debounce``/``history`` as for
      ``PolicyStore``; ``cache_size`` for the engine's decision cache.
    - ``recursive``, ``manifest`` (``"auto"``, ``"require"``, ``"off"``),
      ``settle`` (seconds) and ``source_roots``: how the bundle is read, as
      for ``rune_fast.load`` (see docs/reload.md and docs/security.md).
    """

    path: str
    watch: bool = True
    debounce: float = 0.2
    history: int = 5
    cache_size: int = 4096
    max_body_bytes: int = 1_048_576
    max_batch_items: int = 1000
    max_query_rows: int = 1000
    max_search_limit: int = 1000
    max_json_depth: int = 32
    admin_token_file: Optional[str] = None
    decision_log: Optional[str] = None
    decision_log_mask: tuple[str, ...] = field(default=())
    decision_log_request: bool = True
    run_dir: Optional[str] = None
    control_poll: float = 0.1
    recursive: bool = False
    manifest: str = "auto"
    settle: float = 0.0
    source_roots: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.path.abspath(os.fspath(self.path)))
        object.__setattr__(self, "decision_log_mask", tuple(self.decision_log_mask))
        object.__setattr__(self, "source_roots", tuple(os.path.abspath(os.fspath(r)) for r in self.source_roots))
        if self.manifest not in ("auto", "require", "off"):
            raise ValueError(f"manifest must be one of auto, require, off, got {self.manifest!r}")
        if not isinstance(self.settle, (int, float)) or isinstance(self.settle, bool) or not 0 <= self.settle <= 60:
            raise ValueError(f"settle must be a number of seconds between 0 and 60, got {self.settle!r}")
        for name in ("max_body_bytes", "max_batch_items", "max_query_rows", "max_search_limit", "max_json_depth", "history"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    @classmethod
    def from_kwargs(cls, path: str, **options: Any) -> "ServerOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
        return cls(path=path, **options)

    def resolved_run_dir(self) -> str:
        """The directory the workers of one server share (control file).

        ``rune serve`` always sets it. Otherwise the workers of one gunicorn
        master agree on a name made of the master's pid (their parent) and a
        hash of the policy path, which a single-process server also gets.
        """
        if self.run_dir:
            return self.run_dir
        import hashlib

        digest = hashlib.sha256(self.path.encode()).hexdigest()[:12]
        return os.path.join(tempfile.gettempdir(), f"rune-serve-{os.getppid()}-{digest}")
