"""Admin operations broadcast to every worker through a control file.

gunicorn's workers share nothing but the file system, and an admin call
lands on one of them. That worker applies the operation itself and then
writes ``control.json`` in the run directory shared by the server's workers:
``{"seq": n, "op": "reload" | "rollback", "version": V}``. Every worker polls
the file (one ``stat`` every ``control_poll`` seconds, default 0.1 s, on a
daemon thread) and applies each new ``seq`` once. A rollback is broadcast by
*version*, not by steps, so workers whose histories differ still converge on
the same engine.

We chose a file over signalling the master (``SIGHUP`` would restart every
worker, throwing away warm caches and histories) or a socket between workers
(gunicorn's workers cannot address each other): the file needs no extra
process, survives a worker being replaced, and a worker started later simply
takes the current ``seq`` as its starting point.

Writes are serialised with ``flock`` and made atomic with ``os.replace``.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from typing import Any, Callable, Optional

__all__ = ["ControlChannel"]

FILE = "control.json"


class ControlChannel:
    def __init__(self, run_dir: str, poll: float, apply: Callable[[dict], None]) -> None:
        self.run_dir = run_dir
        self.poll = poll
        self._apply = apply
        self._path = os.path.join(run_dir, FILE)
        self._lock_path = os.path.join(run_dir, FILE + ".lock")
        # The directory is created by the first publish: a server whose admin
        # API is never used leaves nothing behind.
        current = self.read()
        self.seq = current.get("seq", 0) if current else 0
        self._stamp = self._stat()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _stat(self) -> Optional[tuple]:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def read(self) -> Optional[dict]:
        try:
            with open(self._path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("seq"), int) else None

    def publish(self, op: str, **fields: Any) -> int:
        """Write the next control message; returns its sequence number.

        The caller has already applied the operation, so its own watcher skips
        this ``seq``.
        """
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self.read()
                seq = (current.get("seq", 0) if current else 0) + 1
                msg = {"seq": seq, "op": op, "pid": os.getpid(), **fields}
                tmp = f"{self._path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(msg, f)
                os.replace(tmp, self._path)
                self.seq = max(self.seq, seq)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return seq

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rune-control", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        """Apply a new control message if there is one (also called by tests)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        msg = self.read()
        if msg is None or msg["seq"] <= self.seq:
            return
        self.seq = msg["seq"]
        self._apply(msg)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.check()
            except Exception:  # pragma: no cover - never let the thread die
                import logging

                logging.getLogger("rune_fast.server").exception("control channel")
