"""The Cedar value model of the policy layer: sets, records, kinds, equality,
conversion of request values, and the evaluation errors.

Why it is shaped like this:

- **Python values where Python agrees with Cedar.** Strings, integers,
  booleans and ``Entity`` are themselves; only sets (``CSet``) and records
  (``CRecord``) are our own types, because Python conflates ``True``, ``1``
  and ``1.0`` in ``==`` and hashing and Cedar does not: both compare through
  the one key scheme of ``rune_fast.values`` (``value_key``).
- **Errors are exceptions.** A condition that fails (missing attribute, type
  error, overflow) raises ``RuneEvalError`` (built by ``eval_error``,
  ``type_error``, ``overflow_error``); the policy loop turns that into "not
  satisfied" plus an error entry.
- **Requests are converted once and bounded.** ``to_value`` turns JSON-like
  request values into Cedar values under a ``ValueBudget`` (nesting, string
  length, total size), so a hostile request is a ``RuneRequestError``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Optional

from ..errors import RuneEvalError, RuneRequestError
from ..values import (
    INT_MAX,
    INT_MIN,
    Entity,
    entity_problem,
    format_value,
    from_key,
    parse_entity_literal,
    plain_str,
    value_key,
)

__all__ = [
    "MISSING",
    "CSet",
    "CRecord",
    "ValueBudget",
    "to_value",
    "from_value",
    "cedar_eq",
    "kind_name",
    "format_cedar",
    "show",
    "eval_error",
    "type_error",
    "overflow_error",
]


class _Missing:
    """The sentinel for "no such attribute" (``None`` is not a value either, but
    a distinct object keeps the intent readable)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()



class CSet:
    """An immutable Cedar set.

    ``keys`` is a frozenset of canonical keys (see ``rune_fast.values.value_key``): membership,
    ``containsAll`` and ``containsAny`` are set operations on it. Hashable so
    that sets can be elements of sets and parts of relation rows.
    """

    __slots__ = ("keys",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self.keys = frozenset(value_key(v) for v in items)

    @classmethod
    def _from_keys(cls, keys: frozenset) -> "CSet":
        s = cls.__new__(cls)
        s.keys = keys
        return s

    def __iter__(self) -> Iterator[Any]:
        return (from_key(k) for k in self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, v: Any) -> bool:
        return value_key(v) in self.keys

    def __eq__(self, other: object) -> bool:
        return type(other) is CSet and other.keys == self.keys

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.keys) ^ 0x5E7

    def __repr__(self) -> str:
        return "[" + ", ".join(format_cedar(v) for v in self) + "]"


class CRecord(dict):
    """An immutable Cedar record (a ``dict`` for fast ``.name`` access).

    Equality and hashing go through canonical keys so that ``{a: 1}`` and
    ``{a: true}`` differ. Never mutated after construction.
    """

    __slots__ = ()

    def _canon(self) -> frozenset:
        return frozenset((k, value_key(v)) for k, v in self.items())

    def __eq__(self, other: object) -> bool:
        return type(other) is CRecord and len(other) == len(self) and other._canon() == self._canon()

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._canon())

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {format_cedar(v)}" for k, v in self.items()) + "}"




def kind_name(v: Any) -> str:
    """Cedar's name for the kind of a value (used in type-error messages)."""
    t = type(v)
    if t is bool:
        return "bool"
    if t is int:
        return "long"
    if t is str:
        return "string"
    if t is Entity:
        return "entity"
    if t is CSet:
        return "set"
    if t is CRecord:
        return "record"
    if t is float:
        return "float"
    return t.__name__


def format_cedar(v: Any) -> str:
    if type(v) in (CSet, CRecord):
        return repr(v)
    try:
        return format_value(v)
    except Exception:  # pragma: no cover - defensive, messages only
        return repr(v)


def cedar_eq(a: object, b: object) -> bool:
    """Cedar ``==``: values of different kinds are unequal (never an error).

    Integers and floats (floats only come from data) compare numerically,
    as docs/language.md §2 says for all numbers.
    """
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    return False


class ValueBudget:
    """What one request may still spend on values (``to_value`` charges it).

    ``depth`` bounds nesting (checked before recursing, so a deep value is a
    ``RuneRequestError``, never a ``RecursionError``); ``string`` the length
    of one string; ``values`` and ``chars`` the whole request (every value
    counts one, every string its length): the request's size is known to be
    bounded before anything expensive is built from it.
    """

    __slots__ = ("depth", "string", "values", "chars")

    def __init__(self, depth: int, string: int, values: int, chars: int) -> None:
        self.depth = depth
        self.string = string
        self.values = values
        self.chars = chars

    def charge_string(self, x: str, field: str) -> None:
        n = len(x)
        if n > self.string:
            raise RuneRequestError(
                f"string of {n} characters is longer than max_string_length={self.string}", field=field
            )
        self.chars -= n
        self.values -= 1
        if self.chars < 0 or self.values < 0:
            raise self.exhausted(field)

    def charge(self, field: str, n: int = 1) -> None:
        self.values -= n
        if self.values < 0:
            raise self.exhausted(field)

    @staticmethod
    def exhausted(field: str) -> RuneRequestError:
        return RuneRequestError(
            "request too large (limits max_request_values / max_request_chars)", field=field
        )


def to_value(x: Any, field: str = "context", budget: Optional[ValueBudget] = None, depth: int = 0) -> Any:
    """Convert a JSON-like Python value from a request into a Cedar value.

    dict -> record (``{"__entity": {"type": .., "id": ..}}`` -> entity, as in
    Cedar JSON), list/tuple/set/frozenset -> set, ``Entity`` stays an entity;
    ``None``, ``{"__extn": ...}`` and integers outside 64 bits are rejected with
    a ``RuneRequestError`` naming ``field``. With a ``budget`` (requests),
    sizes and nesting are bounded too.
    """
    t = type(x)
    if t is str:
        if budget is not None:
            budget.charge_string(x, field)
        return x
    if t is bool:
        if budget is not None:
            budget.charge(field)
        return x
    if t is Entity:
        return _json_entity(x, field, budget)
    if t is int:
        if x < INT_MIN or x > INT_MAX:
            raise RuneRequestError(f"integer {x} does not fit in 64 bits", field=field)
        if budget is not None:
            budget.charge(field)
        return x
    if t is float:
        if x != x or x in (float("inf"), float("-inf")):
            raise RuneRequestError(f"{x} is not a finite number", field=field)
        if budget is not None:
            budget.charge(field)
        return x
    is_dict = t is dict  # the common case, without the slow ABC check
    if is_dict or isinstance(x, (Mapping, list, tuple, set, frozenset)):
        if budget is not None:
            if depth >= budget.depth:
                raise RuneRequestError(
                    f"value nested deeper than max_value_depth={budget.depth}", field=field
                )
            budget.charge(field, 1 + len(x))
        if is_dict or isinstance(x, Mapping):
            if len(x) == 1 and "__entity" in x:
                return _json_entity(x["__entity"], field, budget)
            if len(x) == 1 and "__extn" in x:
                raise RuneRequestError("extension values (__extn) are not supported", field=field)
            out = CRecord()
            for k, v in x.items():
                if type(k) is not str:
                    raise RuneRequestError(f"record keys must be strings, got {show(k)}", field=field)
                if budget is not None:
                    budget.charge_string(k, field)
                dict.__setitem__(out, k, to_value(v, f"{field}.{k}", budget, depth + 1))
            return out
        return CSet(to_value(v, f"{field}[{i}]", budget, depth + 1) for i, v in enumerate(x))
    if isinstance(x, (CSet,)):
        return x
    if isinstance(x, str):  # str subclasses
        return to_value(str.__str__(x), field, budget, depth)
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return to_value(int(x), field, budget, depth)
    if isinstance(x, float):
        return to_value(float(x), field, budget, depth)
    if x is None:
        raise RuneRequestError("null is not a value (Cedar has no null)", field=field)
    raise RuneRequestError(f"unsupported value {show(x)} of type {t.__name__}", field=field)


def show(x: Any, limit: int = 80) -> str:
    """``repr(x)``, cut to ``limit`` characters (error messages stay small)."""
    try:
        text = repr(x) if not isinstance(x, (str, bytes)) or len(x) <= limit else repr(x[:limit])
    except Exception:  # pragma: no cover - a broken __repr__ of a caller's object
        text = f"<{type(x).__name__}>"
    return text if len(text) <= limit + 8 else text[:limit] + "..."


def _json_entity(obj: Any, field: str, budget: Optional[ValueBudget] = None) -> Entity:
    """An entity inside a value: ``Entity``, ``{"type", "id"}`` or a literal
    string, validated by ``values.entity_problem`` like every entity."""
    ty: Any = None
    ident: Any = None
    if isinstance(obj, tuple) and len(obj) == 2:  # Entity (a NamedTuple)
        ty, ident = obj
    elif isinstance(obj, Mapping) and set(obj) == {"type", "id"}:
        ty, ident = obj.get("type"), obj.get("id")
    elif isinstance(obj, str):
        e = parse_entity_literal(str.__str__(obj)) if (budget is None or len(obj) <= 6 * budget.string + 1024) else None
        if e is not None:
            ty, ident = e
    ty, ident = plain_str(ty), plain_str(ident)
    why = entity_problem(ty, ident) if ty is not None else None
    if ty is not None and why is None:
        if budget is not None:
            budget.charge_string(ident, field)
        return Entity(ty, ident)
    raise RuneRequestError(
        f'expected an entity {{"type": "T", "id": "x"}}: {why or "got " + show(obj)}', field=field
    )


def from_value(v: Any) -> Any:
    """A Cedar value back as plain JSON-like Python (sets -> lists, records -> dicts)."""
    t = type(v)
    if t is CSet:
        return [from_value(x) for x in v]
    if t is CRecord:
        return {k: from_value(x) for k, x in v.items()}
    return v


def eval_error(msg: str) -> RuneEvalError:
    return RuneEvalError(msg, file="<policy>")


def type_error(expected: str, v: Any) -> RuneEvalError:
    return eval_error(f"type error: expected {expected}, got {kind_name(v)}")


def overflow_error(op: str, a: Any, b: Any = None) -> RuneEvalError:
    if b is None:
        return eval_error(f"integer overflow while attempting to {op} the value `{a}`")
    return eval_error(f"integer overflow while attempting to {op} the values `{a}` and `{b}`")

