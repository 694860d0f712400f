"""The decision log: one JSON line per decision, to a file or stdout.

Each line carries ``decision_id`` (the id the response reports when asked
for detail), ``time``, ``version``, ``endpoint``, the ``request`` (masked),
``decision``, ``allowed``, ``reasons``, ``errors``, ``latency_ms`` and the
worker ``pid``. Only the JSON body is ever logged: HTTP headers, and so the
``Authorization`` header, never are.

Every worker appends to the same file: the file is opened with ``O_APPEND``
and each line goes out in one ``os.write``, so lines of different workers
never interleave.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Optional, Sequence

__all__ = ["DecisionLog", "mask"]

MASK = "***"


def mask(obj: Any, paths: Sequence[tuple[str, ...]]) -> Any:
    """A copy of ``obj`` with every dotted path replaced by ``"***"``.

    A path segment ``*`` matches every key (``evaluations.*.context.ssn``
    style paths are written ``context.ssn`` and applied to each item by the
    caller instead).
    """
    if not paths or not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for path in paths:
        _mask_one(out, path)
    return out


def _mask_one(d: dict, path: tuple[str, ...]) -> None:
    head, rest = path[0], path[1:]
    keys = list(d) if head == "*" else ([head] if head in d else [])
    for k in keys:
        if not rest:
            d[k] = MASK
        elif isinstance(d[k], dict):
            d[k] = dict(d[k])
            _mask_one(d[k], rest)


class DecisionLog:
    """Writes decision records; ``target`` is a path or ``"-"`` (stdout)."""

    def __init__(self, target: str, mask_paths: Sequence[str] = (), include_request: bool = True) -> None:
        self.target = target
        self.include_request = include_request
        self._paths = [tuple(p.split(".")) for p in mask_paths if p]
        self._pid = os.getpid()
        if target == "-":
            self._fd = sys.stdout.fileno()
            self._own = False
        else:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._own = True

    def write(
        self,
        decision_id: str,
        endpoint: str,
        request: Optional[dict],
        decision: Any,
        latency: float,
        now: Optional[float] = None,
    ) -> None:
        rec = {
            "decision_id": decision_id,
            "time": now if now is not None else time.time(),
            "endpoint": endpoint,
            "version": decision.version,
            "decision": decision.decision,
            "allowed": decision.allowed,
            "reasons": list(decision.reasons),
            "errors": [{"policy": p, "message": m} for p, m in decision.errors],
            "latency_ms": round(latency * 1000.0, 3),
            "pid": self._pid,
        }
        if self.include_request:
            rec["request"] = mask(request, self._paths) if request is not None else None
        line = json.dumps(rec, ensure_ascii=False, default=str) + "\n"
        try:
            os.write(self._fd, line.encode("utf-8"))
        except OSError:  # a full disk must not fail the decision
            pass

    def close(self) -> None:
        if self._own:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._own = False
