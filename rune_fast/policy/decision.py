"""``Decision``: the answer to one request, as the authorizer states it.

It lives in the policy layer (like Cedar's ``Response``) so that everything
that decides or explains -- the engine, search and explain -- shares one
result type without depending on the engine module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request.

    ``decision`` is ``"permit"``, ``"deny"`` or ``"forbid"``; only permit
    allows. ``reasons`` are the ids of the determining policies (the
    satisfied forbids, else the satisfied permits); ``errors`` are
    ``(policy_id, message)`` for every policy that failed to evaluate (and
    ``("<engine>", message)`` for a failure of the engine itself, which
    always denies). ``cached`` says whether the decision came from the cache;
    ``version`` is the content hash of the bundle that decided.

    ``bool(decision)`` is ``decision.allowed``, so ``if engine.authorize(...)``
    means what it says.
    """

    decision: str
    allowed: bool
    reasons: tuple[str, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()
    cached: bool = False
    version: str = ""

    def __bool__(self) -> bool:
        return self.allowed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the CLI and the HTTP fronts)."""
        return {
            "decision": self.decision,
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "errors": [{"policy": p, "message": m} for p, m in self.errors],
            "cached": self.cached,
            "version": self.version,
        }
