"""Per-process state of the decision point: the PolicyStore and its companions.

A ``PolicyStore`` owns watcher threads, and threads do not survive
``fork()``. So a store is only ever created in the process that serves with
it: ``start()`` is called by the gunicorn ``post_worker_init`` hook (after
the fork, before the worker accepts connections) or, when the app runs under
a server without our hooks, by the first request. An ``os.register_at_fork``
handler drops anything a parent process created (e.g. with ``--preload``),
so a child can never use its parent's store or watcher.

The request path reads ``state.store.engine`` once per request and keeps that
snapshot to the end: no lock is taken to decide.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from typing import Any, Optional

from .config import ServerOptions

__all__ = ["ServerState", "start_all"]

log = logging.getLogger("rune_fast.server")

_INSTANCES: "weakref.WeakSet[ServerState]" = weakref.WeakSet()


class ServerState:
    """Everything one process needs to serve: store, log, metrics, control."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.admin_token: Optional[bytes] = None
        if options.admin_token_file:
            self.admin_token = _read_token(options.admin_token_file)
        self._reset()
        _INSTANCES.add(self)

    def _reset(self) -> None:
        """Forget everything process-specific (called in a forked child)."""
        self._lock = threading.Lock()
        self.store: Any = None
        self.load_error: Optional[str] = None
        self.decision_log: Any = None
        self.control: Any = None
        self.metrics: Any = None
        self._hashes: dict[str, list] = {}
        self._retry: Optional[threading.Thread] = None
        self.pid = os.getpid()

    # -- start-up ------------------------------------------------------------
    def start(self, block: bool = True, wait: float = 0.0) -> bool:
        """Create the store (once per process). Returns whether one is loaded.

        With ``wait`` > 0 a failed initial load (the files are broken right
        now, e.g. caught mid-write) is retried every 0.1 s for that long: the
        gunicorn hook uses it so that a worker does not accept connections
        it cannot serve while its siblings can. After that, the load is
        retried in the background every second and ``/health/ready`` says 503.
        """
        if self.store is not None:
            return True
        deadline = time.monotonic() + wait
        while block and wait > 0 and time.monotonic() < deadline:
            with self._lock:
                if self.store is None:
                    self._create()
            if self.store is not None:
                return True
            time.sleep(0.1)
        if not block:
            if self._retry is None:
                with self._lock:
                    if self._retry is None:
                        self._retry = threading.Thread(target=self._retry_loop, name="rune-start", daemon=True)
                        self._retry.start()
            return self.store is not None
        with self._lock:
            if self.store is None:
                self._create()
            return self.store is not None

    def _retry_loop(self) -> None:
        while self.store is None:
            with self._lock:
                if self.store is None:
                    self._create()
            if self.store is None:
                time.sleep(1.0)

    def _create(self) -> None:
        from ..reload.store import PolicyStore
        from . import metrics as metrics_mod

        o = self.options
        if self.metrics is None:
            try:
                self.metrics = metrics_mod.get()
            except Exception:  # pragma: no cover - prometheus_client missing
                log.exception("rune_fast.server: metrics disabled")
        if self.decision_log is None and o.decision_log:
            from .decision_log import DecisionLog

            self.decision_log = DecisionLog(o.decision_log, o.decision_log_mask, o.decision_log_request)
        try:
            store = PolicyStore(
                o.path, watch=o.watch, debounce=o.debounce, history=o.history, cache_size=o.cache_size,
                recursive=o.recursive, manifest=o.manifest, settle=o.settle, source_roots=list(o.source_roots),
            )
        except Exception as e:  # RuneError, OSError: keep 503 and retry
            self.load_error = _one_line(e)
            log.error("rune_fast.server: initial load of %s failed: %s", o.path, self.load_error)
            return
        self.load_error = None
        store.subscribe(self._on_reload)
        self._remember_hashes(store.version, store.history[-1].files if store.history else ())
        if self.metrics is not None:
            self.metrics.reload("ok", "initial")
            self.metrics.serving(store.version)
        if self.control is None:
            from .control import ControlChannel

            self.control = ControlChannel(o.resolved_run_dir(), o.control_poll, self._apply_control)
            self.control.start()
        self.store = store  # published last: readers see a complete state

    # -- reload events ---------------------------------------------------------
    def _on_reload(self, result: Any) -> None:
        if self.metrics is not None:
            self.metrics.reload("ok" if result.ok else "error", result.trigger)
            if result.version:
                self.metrics.serving(result.version)
        if result.ok and result.changed and result.version:
            self._remember_hashes(result.version, result.files)

    def _remember_hashes(self, version: str, files: Any) -> None:
        if version in self._hashes:
            return
        out = []
        for f in files or ():
            try:
                with open(f, "rb") as fh:
                    digest: Optional[str] = hashlib.sha256(fh.read()).hexdigest()
            except OSError:
                digest = None
            out.append({"path": str(f), "sha256": digest})
        if len(self._hashes) > 64:
            self._hashes.clear()
        self._hashes[version] = out

    def sources(self, version: str, files: Any) -> list:
        if version not in self._hashes:
            self._remember_hashes(version, files)
        return self._hashes[version]

    # -- admin operations (local, then broadcast) ------------------------------
    def _apply_control(self, msg: dict) -> None:
        store = self.store
        if store is None:
            return
        op = msg.get("op")
        if op == "reload":
            store.reload()
        elif op == "rollback":
            self.rollback_to(str(msg.get("version", "")))

    def rollback_to(self, version: str) -> Any:
        """Roll this worker's store back to ``version`` (a no-op if serving it)."""
        store = self.store
        versions = [h.version for h in store.history]
        if version not in versions:
            log.warning("rune_fast.server: version %s is not in this worker's history", version[:12])
            return None
        steps = len(versions) - 1 - versions.index(version)
        if steps == 0:
            return None
        return store.rollback(steps)

    def close(self) -> None:
        if self.control is not None:
            self.control.stop()
        if self.store is not None:
            self.store.close()
        if self.decision_log is not None:
            self.decision_log.close()


def _one_line(err: BaseException) -> str:
    errors = getattr(err, "errors", None) or [err]
    return "; ".join(
        f"{e.location}: {e.message}" if hasattr(e, "location") and hasattr(e, "message") else f"{type(e).__name__}: {e}"
        for e in errors
    )


def _read_token(path: str) -> bytes:
    with open(path, "rb") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"admin token file {path} is empty")
    return token


def start_all(block: bool = True, wait: float = 0.0) -> None:
    """Start every state of this process (the ``post_worker_init`` hook)."""
    for s in list(_INSTANCES):
        s.start(block=block, wait=wait)


def _after_fork_in_child() -> None:
    for s in list(_INSTANCES):
        s._reset()
    from . import metrics as metrics_mod

    # prometheus_client re-opens its per-pid files itself after a fork; only
    # our record of the version this process serves must be forgotten.
    m = metrics_mod._METRICS
    if m is not None:  # the parent's threads and counts stay with the parent
        m._serving = None
        m._local = threading.local()
        m._accs = []
        m._flushed = {}
        m._lock = threading.Lock()
        m._thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)
