"""Run-time side of the per-request plans: what generated code calls.

Values are in key form (``rune_fast.values.value_key``): strings, integers
and entities as themselves, booleans as two sentinels, floats wrapped in
``FloatKey``. The helpers mirror the executor's semantics operation by
operation (``datalog/_pycore.py``; see the package docstring).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from ..values import INT_MAX, INT_MIN, Entity
from ..values import FALSE_KEY as _FALSE_KEY
from ..values import TRUE_KEY as _TRUE_KEY
from ..values import FloatKey as _FloatKey
from ..values import value_key as row_key

__all__ = ["Fallback", "Unsupported", "RequestState", "STEP_BUDGET", "context_facts"]

#: Rows a request's plans may visit before the request is handed to the
#: general evaluator (which enforces the configured limits).
STEP_BUDGET = 20_000


class Fallback(Exception):
    """This request needs the general evaluator (budget spent, or an
    aggregate whose value the plans cannot decide order-independently)."""


class Unsupported(Exception):
    """A rule or relation the plans do not handle (decided at build time)."""


# ---------------------------------------------------------------------------
# Value helpers used by the generated code (values are in key form)


def _num(k: Any) -> Any:
    t = type(k)
    if t is int:
        return k
    if t is _FloatKey:
        return k[0]
    return None


def _cmp(code: int, a: Any, b: Any) -> bool:
    """A rule comparison: numbers numerically, other values by identity."""
    if a is None or b is None:  # an arithmetic failure: the binding derives nothing
        return False
    x = _num(a)
    y = _num(b)
    if x is not None and y is not None:
        if code == 0:
            return bool(x == y)
        if code == 1:
            return bool(x != y)
        if code == 2:
            return bool(x < y)
        if code == 3:
            return bool(x <= y)
        if code == 4:
            return bool(x > y)
        return bool(x >= y)
    if code == 0:
        return bool(a == b)
    if code == 1:
        return bool(a != b)
    return False


def _result(r: Any) -> Any:
    """A computed number in key form, or None when it is not a value (overflow)."""
    if type(r) is int:
        return r if INT_MIN <= r <= INT_MAX else None
    if r != r or r in (math.inf, -math.inf):
        return None
    return _FloatKey((r,))


def _ar(code: int, a: Any, b: Any) -> Any:
    """Rule arithmetic (``+ - * / %``); None when it fails."""
    if a is None or b is None:
        return None
    x = _num(a)
    y = _num(b)
    if x is None or y is None:
        return None
    if code == 1:
        r = x + y
    elif code == 2:
        r = x - y
    elif code == 3:
        r = x * y
    else:
        if y == 0:
            return None
        if type(x) is int and type(y) is int:
            q = abs(x) // abs(y)
            q = q if (x >= 0) == (y >= 0) else -q
            r = q if code == 4 else x - q * y
        else:
            r = x / y if code == 4 else math.fmod(x, y)
    return _result(r)


def _agg(code: int, vals: list) -> Any:
    """``sum``/``min``/``max``/``mean`` of collected values; None derives nothing."""
    if not vals:
        return None
    nums = []
    for v in vals:
        x = _num(v)
        if x is None:
            return None
        nums.append(x)
    floats = any(type(x) is float for x in nums)
    try:
        if code == 1:
            if floats:
                r = math.fsum(nums)
            else:
                # The executor checks the running total in visiting order;
                # answer only when no order can overflow, or every order does.
                pos = sum(x for x in nums if x > 0)
                neg = sum(x for x in nums if x < 0)
                if pos <= INT_MAX and neg >= INT_MIN:
                    r = pos + neg
                elif not INT_MIN <= pos + neg <= INT_MAX:
                    return None
                else:
                    raise Fallback("integer sum overflows on some visiting orders")
        elif code == 2 or code == 3:
            r = min(nums) if code == 2 else max(nums)
            if floats and any(x == r and type(x) is not type(r) for x in nums):
                raise Fallback("min/max tie between an integer and a float")
        else:
            r = math.fsum(nums) / len(nums)
    except OverflowError:
        raise Fallback("float overflow in an aggregate") from None
    return _result(r)


# ---------------------------------------------------------------------------
# Per-request state


class RequestState:
    """What one request's plans share: the request, the answers computed so
    far for this request (``memo``), and the rows it may still visit."""

    __slots__ = ("p", "a", "r", "ctx", "cx", "memo", "budget")

    def __init__(self, p: Entity, a: Entity, r: Entity, ctx: Mapping[str, Any], budget: int = STEP_BUDGET) -> None:
        self.p = p
        self.a = a
        self.r = r
        self.ctx = ctx
        self.cx: Optional[dict] = None
        self.memo: Optional[dict] = {}  # None: none yet (plans make it on first use)
        self.budget = budget

    def load_cx(self) -> dict:
        """``context(K, V)`` facts as a dict K -> V (key form): ``context_facts``.

        When every value is a string, an integer or an entity (their own key
        form), that dict equals the record: the engine then hands the record
        over as ``cx`` and this never runs."""
        cx = self.cx = context_facts(self.ctx)  # read only, like every cx
        return cx


def context_facts(ctx: Mapping[str, Any]) -> dict:
    """A context's ``context(K, V)`` facts as a dict K -> V in key form: its
    top-level scalars, in one pass over the record (booleans become the two
    sentinels, floats ``FloatKey``; nested values have no fact)."""
    cx = {}
    for k, v in ctx.items():
        t = type(v)
        if t is str or t is int or t is Entity:
            cx[k] = v
        elif t is bool:
            cx[k] = _TRUE_KEY if v else _FALSE_KEY
        elif t is float:
            cx[k] = row_key(v)
    return cx


# ---------------------------------------------------------------------------
# Code generation
