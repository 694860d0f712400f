"""The decision cache: bounded, two generations of dicts, hits without a lock.

Why it is shaped like this: a hit must be one dict lookup (the engine binds
``get`` once per generation), so there is no move-to-front on a hit; instead
an entry survives as long as it is hit at least once per half-capacity
insertions (an approximation of LRU). Only inserts and promotions take the
lock. Keys are built by the engine from the raw request (see
``rune_fast.request.freeze``); only validated, successfully evaluated
requests are inserted.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["DecisionCache", "NoCache"]


class DecisionCache:
    """Bounded two-generation cache; hits take no lock.

    ``get`` is the bound ``get`` of the young generation, so a hit is one
    attribute load and one C call. When the young dict reaches half the
    capacity it becomes the old generation (the previous old one is dropped)
    and a fresh young dict starts; a hit in the old generation promotes the
    entry. Total size never exceeds ``capacity``.
    """

    __slots__ = ("capacity", "half", "young", "old", "get", "lock", "hits_old", "inserts")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.half = max(1, capacity // 2)
        self.young: dict = {}
        self.old: dict = {}
        self.get = self.young.get
        self.lock = threading.Lock()
        self.inserts = 0

    def get_old(self, key: Any) -> Any:
        d = self.old.get(key)
        if d is not None:
            self.put(key, d)
        return d

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            young = self.young
            if len(young) >= self.half and key not in young:
                self.old = young
                young = self.young = {}
                self.get = young.get
            young[key] = value
            self.inserts += 1

    def clear(self) -> None:
        with self.lock:
            self.young = {}
            self.old = {}
            self.get = self.young.get

    def __len__(self) -> int:
        young, old = self.young, self.old
        return len(young) + sum(1 for k in old if k not in young)


class NoCache:
    """Stands in for the cache when ``cache_size=0`` (every lookup misses)."""

    __slots__ = ()
    capacity = 0

    @staticmethod
    def get(key: Any) -> None:
        return None

    @staticmethod
    def get_old(key: Any) -> None:
        return None

    def put(self, key: Any, value: Any) -> None:
        pass

    def clear(self) -> None:
        pass

    def __len__(self) -> int:
        return 0
