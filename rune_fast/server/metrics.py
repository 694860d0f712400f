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
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["Metrics", "render", "mark_worker_dead", "CONTENT_TYPE"]

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

try:
    from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
except ImportError:  # pragma: no cover - prometheus_client is a dependency
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _multiproc() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The metric objects of one process; children are cached per label set
    so that the request path does one dict lookup and one increment."""

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
        self._children: dict[tuple, Any] = {}
        self._serving: str | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric),) + labels
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def decision(self, endpoint: str, outcome: str, n: int = 1) -> None:
        self._child(self.decisions, endpoint, outcome).inc(n)

    def observe(self, endpoint: str, seconds: float) -> None:
        self._child(self.latency, endpoint).observe(seconds)

    def request(self, route: str, status: int) -> None:
        self._child(self.requests, route, str(status)).inc()

    def reload(self, result: str, trigger: str) -> None:
        self._child(self.reloads, result, trigger).inc()

    def serving(self, version: str) -> None:
        if version == self._serving:
            return
        if self._serving is not None:
            self._child(self.version, self._serving).set(0)
        self._child(self.version, version).set(1)
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

    get()
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
