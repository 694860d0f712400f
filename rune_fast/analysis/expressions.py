"""Policy sub-expressions compiled once, for explanations and search.

Both evaluate parts of a policy on their own (a clause, one side of a
comparison, the fixed arguments of a relation call) with the policy layer's
generated code (``generate_expression``). Generating and compiling Python
code costs far more than running it, so the functions are kept, by
(policy id, node identity); each entry holds its node, so an id cannot be
reused while the entry lives. Bounded: the table is emptied when full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..policy.codegen import generate_expression

__all__ = ["compiled", "MAX_ENTRIES"]

MAX_ENTRIES = 4096

_FNS: dict = {}


def compiled(node: Any, policy_id: str) -> Callable[..., Any]:
    """``f(p, a, r, c, d)`` computing ``node`` (raises what the policy would raise)."""
    key = (policy_id, id(node))
    hit = _FNS.get(key)
    if hit is not None and hit[0] is node:
        return hit[1]
    fn = generate_expression(node, policy_id)
    if len(_FNS) >= MAX_ENTRIES:
        _FNS.clear()
    _FNS[key] = (node, fn)
    return fn
