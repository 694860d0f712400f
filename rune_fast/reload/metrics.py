"""Prometheus metrics for a PolicyStore (optional; needs ``prometheus_client``).

The counters live in ``store.stats`` (one immutable snapshot the store
replaces on every attempt), so the exporter is a *custom collector* that reads
that snapshot at scrape time instead of mirroring every counter into
prometheus objects: there is one source of truth and nothing to keep in sync.
Only the duration histogram needs per-attempt observations, and it gets them
through ``store.subscribe``. The exposition format is prometheus_client's.

    from prometheus_client import start_http_server
    from rune_fast.reload.metrics import register_prometheus
    register_prometheus(store)             # default registry
    start_http_server(9100)
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .store import PolicyStore, ReloadResult

__all__ = ["StoreCollector", "register_prometheus"]

#: Reload durations span a tiny policy (~1 ms) to 10^6 facts (seconds).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StoreCollector:
    """Yields the store's reload metrics from ``store.stats`` on each scrape.

    Holds the store weakly: registering metrics must not keep a store (and
    its engines) alive; once the store is gone the collector yields nothing.
    """

    def __init__(self, store: PolicyStore, namespace: str = "rune", store_label: str | None = None) -> None:
        self._store = weakref.ref(store)
        self._ns = namespace
        self._labels = {"store": store_label} if store_label else {}

    def _name(self, name: str) -> str:
        return f"{self._ns}_{name}" if self._ns else name

    def describe(self) -> Iterator[Any]:
        # Same families as collect(), so registration detects name clashes.
        return self._families(None)

    def collect(self) -> Iterator[Any]:
        store = self._store()
        if store is None:
            return iter(())
        return self._families(store.stats)

    def _families(self, s: Any) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            InfoMetricFamily,
        )

        keys = list(self._labels)
        vals = list(self._labels.values())

        def counter(name: str, doc: str, value: float | None) -> CounterMetricFamily:
            m = CounterMetricFamily(self._name(name), doc, labels=keys)
            if s is not None:
                m.add_metric(vals, float(value or 0))
            return m

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            m = GaugeMetricFamily(self._name(name), doc, labels=keys)
            if s is not None and value is not None:
                m.add_metric(vals, float(value))
            return m

        yield counter("reload_attempts", "Policy reload attempts (initial, manual and file-triggered).", s and s.attempts)
        yield counter("reload_successes", "Reload attempts that produced a serving engine.", s and s.successes)
        yield counter("reload_failures", "Reload attempts that failed; the previous engine kept serving.", s and s.failures)
        yield counter("reload_rollbacks", "Rollbacks to an earlier engine.", s and s.rollbacks)
        yield gauge("engine_generation", "How many times the serving engine was replaced.", s and s.generation)
        yield gauge("reload_last_duration_seconds", "Duration of the last reload attempt.", s and s.last_duration)
        yield gauge(
            "reload_last_success",
            "1 if the last reload attempt succeeded, 0 if it failed.",
            None if s is None or s.last_ok is None else (1.0 if s.last_ok else 0.0),
        )
        yield gauge("engine_loaded_timestamp_seconds", "Unix time the serving engine was installed.", s and s.loaded_at)
        yield gauge("reload_last_failure_timestamp_seconds", "Unix time of the last failed reload.", s and s.last_error_at)
        yield gauge("engine_history_size", "Engines kept for rollback, the serving one included.", s and s.history_size)
        info = InfoMetricFamily(self._name("engine"), "Content hash of the serving policy.", labels=keys)
        if s is not None and s.version is not None:
            info.add_metric(vals, {"version": str(s.version)})
        yield info


def register_prometheus(
    store: PolicyStore,
    registry: Any = None,
    *,
    namespace: str = "rune",
    store_label: str | None = None,
    histogram: bool = True,
) -> StoreCollector:
    """Register the store's reload metrics with a prometheus registry.

    ``registry`` defaults to prometheus_client's global ``REGISTRY``.
    ``store_label`` adds a ``store="..."`` label (for several stores in one
    process; each must then have a distinct label). ``histogram`` also
    records every attempt's duration in ``<ns>_reload_duration_seconds``
    (labelled by outcome). Returns the collector (``registry.unregister`` it
    to stop exporting).
    """
    from prometheus_client import REGISTRY, Histogram

    registry = REGISTRY if registry is None else registry
    collector = StoreCollector(store, namespace, store_label)
    registry.register(collector)
    if histogram:
        labelnames = ["outcome"] + (["store"] if store_label else [])
        hist = Histogram(
            f"{namespace}_reload_duration_seconds" if namespace else "reload_duration_seconds",
            "Duration of policy reload attempts (read, compile, tests, swap).",
            labelnames=labelnames,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

        def observe(result: ReloadResult) -> None:
            if result.trigger == "rollback":
                return
            labels = {"outcome": "success" if result.ok else "failure"}
            if store_label:
                labels["store"] = store_label
            hist.labels(**labels).observe(result.duration)

        store.subscribe(observe)
    return collector
