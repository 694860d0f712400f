"""What the guard decided for one request (:class:`Verdict`), and decision ids.

Split from ``guard.py``: the verdict is the value every adapter acts on, and
the id scheme is the one place that must stay unique across forked workers.
"""

from __future__ import annotations

import itertools
import os
from operator import itemgetter as _itemgetter
from typing import Optional

from rune_fast import Decision

__all__ = ["EXEMPT", "Verdict", "new_decision_id"]

_tuple_new = tuple.__new__


# ---------------------------------------------------------------------------
# Decision ids: a random per-process prefix and a counter. uuid4 costs a
# system call per request; this costs an increment. The prefix is redrawn in
# every forked child (gunicorn workers fork after import), so workers never
# share a sequence.

_id_prefix = os.urandom(5).hex()
_id_counter = itertools.count(1)


def _reseed_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(5).hex()
    _id_counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_ids)


def new_decision_id() -> str:
    """A process-unique decision id: 10 hex digits of prefix, then a counter."""
    return _id_prefix + "%x" % next(_id_counter)  # noqa: UP031 - %x is the cheapest hex formatting


class Verdict(tuple):
    """What the guard decided for one request, for an adapter to act on.

    ``status`` is 0 when the request proceeds (allowed, exempt, or any
    outcome in dry-run), else the HTTP status to answer with (401, 403, 404,
    413, 503). ``decision`` is the ``rune_fast.Decision`` the handler sees
    (``None`` for an exempt route); ``outcome`` the audit outcome;
    ``reason`` a located explanation for the log (never sent to the client).

    A tuple underneath, so that the guard's memo can keep a verdict's fields
    as a plain shared tuple (``Guard.decide`` returns it as is) and a
    Verdict is one C call (``tuple.__new__``) away when an adapter needs
    one, where an ``__init__`` would be a Python frame.

    ``decision_id`` is drawn lazily, on first read (``None`` in the tuple
    until then): most allowed requests send no decision header and write no
    audit record, so they never need one. Once drawn it is kept on the
    verdict, so the header, the problem body and the audit record of one
    request always carry the same id.
    """

    # No ``__slots__``: the instance dict (created only when an id is drawn)
    # holds the lazily drawn decision id.

    def __new__(
        cls, status: int, decision: Optional[Decision], decision_id: Optional[str], outcome: str, reason: str,
        version: str,
    ) -> "Verdict":
        return _tuple_new(cls, (status, decision, decision_id, outcome, reason, version))

    status: int = property(_itemgetter(0))  # type: ignore[assignment]
    decision: Optional[Decision] = property(_itemgetter(1))  # type: ignore[assignment]
    outcome: str = property(_itemgetter(3))  # type: ignore[assignment]
    reason: str = property(_itemgetter(4))  # type: ignore[assignment]
    version: str = property(_itemgetter(5))  # type: ignore[assignment]

    @property
    def decision_id(self) -> str:
        """This decision's id ("" for an exempt request), drawn on first read."""
        i: Optional[str] = self[2]
        if i is None:
            d = self.__dict__
            i = d.get("_id")
            if i is None:
                i = d.setdefault("_id", new_decision_id())  # atomic: one id even if two threads race
        return i

    @property
    def proceed(self) -> bool:
        return bool(self[0] == 0)

    def __repr__(self) -> str:
        return f"<Verdict {self[0] or 'proceed'} {self[3]} id={self.decision_id} reason={self[4]!r}>"


#: The verdict for exempt routes and methods: proceed, no decision, no headers.
EXEMPT = Verdict(0, None, "", "exempt", "", "")
