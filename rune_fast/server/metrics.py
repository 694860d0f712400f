"""Prometheus metrics of the decision point, correct across gunicorn workers.

Every worker is a process with its own counters. With
``PROMETHEUS_MULTIPROC_DIR`` set (``rune serve`` sets it to a fresh
directory per run, before any worker exists), prometheus_client keeps each
worker's values in memory-mapped files there, ``/metrics`` in any worker
aggregates all of them, and gunicorn's ``child_exit`` hook
(``mark_worker_dead``) retires the live gauges of a dead worker. Without the
variable (a single process, e.g. uvicorn) the default registry is used.

Metric names (all prefixed ``rune_``):

- ``rune_decisions_total{endpoint, outcome}``: decisions (permit/deny/forbid);
- ``rune_decision_duration_seconds{endpoint}``: time to answer a decision
  request (parsing, validation and deciding, all items of a batch);
- ``rune_http_requests_total{route, status}``: every answered request;
- ``rune_reloads_total{result, trigger}``: reload attempts and rollbacks;
- ``rune_serving_version_info{version, pid}``: 1 for the version a live
  worker serves.

Request counts reach the exposition at most ``Metrics.FLUSH_INTERVAL``
(0.25 s) after the request (see ``Metrics``).
"""

from __future__ import annotations

import atexit
import os
import threading
from bisect import bisect_left
from typing import Any

__all__ = ["Metrics", "render", "mark_worker_dead", "CONTENT_TYPE"]

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

try:
    from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
except ImportError:  # pragma: no cover - prometheus_client is a dependency
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _multiproc() -> bool:
    # The same test prometheus_client applies when it picks its value storage.
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


class Metrics:
    """The metric objects of one process.

    In multiprocess mode every increment of a prometheus_client value takes
    a lock and writes a memory-mapped file (~8 µs); four of them per request
    would cost more than deciding. So the per-request metrics are counted in
    plain per-thread dicts (each written by its own thread only: no lock on
    the request path) and added to the prometheus values by a flusher thread
    every ``FLUSH_INTERVAL`` seconds, by ``/metrics`` before it renders, and
    at process exit. A scrape therefore sees other workers' requests at most
    ``FLUSH_INTERVAL`` late. Reloads and the serving version are rare and go
    straight to prometheus_client.
    """

    FLUSH_INTERVAL = 0.25

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.decisions = Counter("rune_decisions_total", "Decisions by endpoint and outcome", ["endpoint", "outcome"])
        self.latency = Histogram(
            "rune_decision_duration_seconds", "Time to answer a decision request", ["endpoint"], buckets=LATENCY_BUCKETS
        )
        self.requests = Counter("rune_http_requests_total", "HTTP requests by route and status", ["route", "status"])
        self.reloads = Counter("rune_reloads_total", "Reload attempts and rollbacks by result", ["result", "trigger"])
        kw: dict[str, Any] = {"multiprocess_mode": "liveall"} if _multiproc() else {}
        self.version = Gauge("rune_serving_version_info", "1 for the policy version this worker serves", ["version"], **kw)
        self._serving: str | None = None
        self._local = threading.local()
        self._accs: list[dict] = []
        self._flushed: dict[tuple, Any] = {}
        self._lock = threading.Lock()  # flush and registration only, never per request
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        atexit.register(self.flush)

    # -- request path: plain dict updates on the calling thread's own dict
    def _acc(self) -> dict:
        try:
            acc_: dict = self._local.acc
            return acc_
        except AttributeError:
            acc: dict = {}
            with self._lock:
                self._accs.append(acc)
            self._local.acc = acc
            self._start()
            return acc

    def decision(self, endpoint: str, outcome: str, n: int = 1) -> None:
        acc = self._acc()
        k = ("d", endpoint, outcome)
        acc[k] = acc.get(k, 0) + n

    def observe(self, endpoint: str, seconds: float) -> None:
        acc = self._acc()
        kb = ("b", endpoint, bisect_left(LATENCY_BUCKETS, seconds))
        acc[kb] = acc.get(kb, 0) + 1
        ks = ("s", endpoint)
        acc[ks] = acc.get(ks, 0.0) + seconds

    def request(self, route: str, status: int) -> None:
        acc = self._acc()
        k = ("r", route, status)
        acc[k] = acc.get(k, 0) + 1

    # -- flushing into prometheus_client
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rune-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.FLUSH_INTERVAL):
            try:
                self.flush()
            except Exception:  # pragma: no cover - never let the thread die
                pass

    def flush(self) -> None:
        with self._lock:
            for acc in self._accs:
                snap = dict(acc)  # a C-level copy: atomic under the GIL
                for k, v in snap.items():
                    fk = (id(acc),) + k
                    delta = v - self._flushed.get(fk, 0)
                    if delta:
                        self._apply(k, delta)
                        self._flushed[fk] = v

    def _apply(self, k: tuple, delta: Any) -> None:
        kind = k[0]
        if kind == "d":
            self.decisions.labels(k[1], k[2]).inc(delta)
        elif kind == "r":
            self.requests.labels(k[1], str(k[2])).inc(delta)
        elif kind == "b":
            # Histogram children keep one value per bucket (non-cumulative;
            # the exposition sums them) and one for the sum.
            self.latency.labels(k[1])._buckets[k[2]].inc(delta)
        elif kind == "s":
            self.latency.labels(k[1])._sum.inc(delta)

    # -- rare events: straight to prometheus_client
    def reload(self, result: str, trigger: str) -> None:
        self.reloads.labels(result, trigger).inc()

    def serving(self, version: str) -> None:
        if version == self._serving:
            return
        if self._serving is not None:
            self.version.labels(self._serving).set(0)
        self.version.labels(version).set(1)
        self._serving = version


_METRICS: Metrics | None = None


def get() -> Metrics:
    """The process's Metrics (created on first use, i.e. in the worker)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = Metrics()
    return _METRICS


def render() -> bytes:
    """The exposition text: every worker's values when multiprocess."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    get().flush()  # this worker's latest counts; the others flush on their own
    if _multiproc():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_worker_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook body: retire a dead worker's live gauges."""
    if _multiproc():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
