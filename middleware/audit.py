"""Audit records and Prometheus metrics for guard decisions.

Audit: one ``logging`` record per decision on the ``rune_fast.middleware``
logger (or the one configured), with the structured fields in
``record.rune`` and a one-line ``key=value`` message. The fields are built
only when the logger is enabled for the level, so a silenced audit log costs
one cached level check. A hook can mask or drop fields (or the record).

Metrics: counting must not put a lock on the decision path, and
``prometheus_client`` metric objects take a lock on every ``inc`` and
``observe``. So each thread counts into its own plain lists (found through a
``threading.local``) and one collector, registered once per registry, sums
them when Prometheus scrapes. Counts are exact; a scrape sees each thread's
lists as they are at that moment.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Optional

__all__ = ["OUTCOMES", "AuditLog", "GuardMetrics", "LATENCY_BUCKETS"]

#: Every outcome a decision record can carry.
OUTCOMES = ("allow", "deny", "would_deny", "unauthenticated", "unavailable", "error", "too_large")
_OUTCOME_INDEX = {o: i for i, o in enumerate(OUTCOMES)}

#: Histogram bounds for the guard's own latency, in seconds.
LATENCY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25)

AuditHook = Callable[[dict], Optional[dict]]


class AuditLog:
    """Writes one record per decision; ``hook(fields) -> fields | None``."""

    __slots__ = ("logger", "level", "hook")

    def __init__(self, logger: logging.Logger, level: int, hook: Optional[AuditHook]) -> None:
        self.logger = logger
        self.level = level
        self.hook = hook

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(self.level)

    def write(self, fields: dict) -> None:
        hook = self.hook
        if hook is not None:
            try:
                out = hook(fields)
            except Exception as e:  # a broken hook must not break requests, nor leak fields
                self.logger.error("rune audit hook raised %s: %s; record dropped", type(e).__name__, e)
                return
            if out is None:
                return
            fields = out
        msg = " ".join(f"{k}={v}" for k, v in fields.items())
        self.logger.log(self.level, "rune decision %s", msg, extra={"rune": fields})


class GuardMetrics:
    """Lock-free counters of one guard, exported by :class:`_Collector`.

    Outcome counts are ``itertools.count`` objects: ``next()`` on one is a
    single C call, atomic under the GIL, so counting is exact without a lock.
    The latency histogram (opt-in: it costs two clock reads per request) is
    kept per thread in plain lists, found through a ``threading.local``, and
    summed at scrape time.
    """

    MODES = ("enforce", "dry_run")

    def __init__(self, name: str, latency: bool = False) -> None:
        self.name = name
        self.latency = latency
        #: ``counters[mode_index][outcome]`` -> itertools.count
        self.counters = tuple({o: itertools.count() for o in OUTCOMES} for _ in self.MODES)
        self._local = threading.local()
        self._all: list[list] = []
        self._all_lock = threading.Lock()  # taken once per thread, at its first observation

    def observe(self, seconds: float) -> None:
        """Add one latency to this thread's histogram lists."""
        try:
            c = self._local.c
        except AttributeError:
            c = self._local.c = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
            with self._all_lock:
                self._all.append(c)
        c[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        c[-1] += seconds

    def snapshot(self) -> tuple[dict, list[int], float]:
        """``({(outcome, mode): n}, bucket counts, latency sum)``."""
        outcomes = {}
        for mode, table in zip(self.MODES, self.counters):
            for o, counter in table.items():
                n = _count_value(counter)
                if n:
                    outcomes[(o, mode)] = n
        with self._all_lock:
            all_ = list(self._all)
        buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        total = 0.0
        for c in all_:
            for i in range(len(buckets)):
                buckets[i] += c[i]
            total += c[-1]
        return outcomes, buckets, total


def _count_value(counter: "itertools.count[int]") -> int:
    """The next value an ``itertools.count`` would return, without consuming it."""
    return int(repr(counter)[6:-1])


class _Collector:
    """One per registry: yields the metrics of every live guard using it."""

    def __init__(self) -> None:
        self.guards: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        decisions = CounterMetricFamily(
            "rune_middleware_decisions", "Guard decisions by outcome and mode", labels=["guard", "outcome", "mode"]
        )
        latency = HistogramMetricFamily(
            "rune_middleware_decision_seconds", "Time the guard spent per decision", labels=["guard"]
        )
        for m in list(self.guards):
            outcomes, buckets, total = m.snapshot()
            for (o, mode), n in sorted(outcomes.items()):
                decisions.add_metric([m.name, o, mode], n)
            if not m.latency:
                continue
            cum, acc = [], 0
            for bound, n in zip(list(LATENCY_BUCKETS) + [float("inf")], buckets):
                acc += n
                cum.append((repr(bound) if bound != float("inf") else "+Inf", acc))
            latency.add_metric([m.name], cum, total)
        yield decisions
        yield latency

    def describe(self) -> list:
        return []


_collectors: "weakref.WeakKeyDictionary[Any, _Collector]" = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def register_metrics(metrics: GuardMetrics, registry: Any = None) -> bool:
    """Export ``metrics`` through ``registry`` (default: prometheus_client's).

    Returns False when prometheus_client is not installed (metrics are then
    still counted and readable through ``GuardMetrics.snapshot``).
    """
    try:
        import prometheus_client
    except ImportError:
        return False
    reg = registry if registry is not None else prometheus_client.REGISTRY
    with _collectors_lock:
        col = _collectors.get(reg)
        if col is None:
            col = _collectors[reg] = _Collector()
            reg.register(col)
        col.guards.add(metrics)
    return True
