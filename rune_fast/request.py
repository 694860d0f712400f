"""Request parsing: raw principal/action/resource, context and entities ->
validated values, within documented size limits.

Why it is a module of its own: every way a request enters the engine
(``authorize``, ``authorize_batch``, ``query``, embedded tests, the HTTP
fronts) goes through these few functions, so a request is validated one way
only. Two rules shape them:

- **One validation of entities.** Every entity form (``Entity``,
  ``("Type", "id")``, ``'Type::"id"'``, ``{"type", "id"}``,
  ``{"__entity": ..}``) ends in ``values.entity_problem``: full-match type
  names, ids that are real Unicode text within ``max_id_length``. A type
  such as ``"User\\n"`` is refused rather than becoming a type that escapes
  ``forbid(principal is User, ...)``.
- **Bounded before expensive.** Sizes are checked before anything is built
  from them (an entity literal's length before it is decoded; each string,
  the nesting, the number of values and the characters of the whole request
  while context and entities are converted), so a huge request costs time
  and memory proportional to the limits, not to its size, and fails with
  ``RuneRequestError`` naming the limit.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from .errors import RuneRequestError
from .lang import ast as A
from .limits import DEFAULT_LIMITS, Limits
from .policy.values import CRecord, CSet, ValueBudget, to_value
from .policy.values import show as _show
from .values import FALSE_KEY, INT_MAX, INT_MIN, TRUE_KEY, Entity, FloatKey, entity_problem, json_key, parse_entity_literal, plain_str

__all__ = [
    "EMPTY_CONTEXT",
    "RequestEntities",
    "parse_entity",
    "parse_entities",
    "parse_context",
    "flat_context",
    "flat_context_facts",
    "flat_context_within",
    "budget_for",
    "batch_arguments",
    "freeze",
]

EMPTY_CONTEXT = CRecord()
_SCALARS = (str, int, float, bool, Entity)


def budget_for(limits: Limits) -> ValueBudget:
    """A fresh budget for one request's context and entities."""
    return ValueBudget(limits.max_value_depth, limits.max_string_length, limits.max_request_values, limits.max_request_chars)


def _checked(ty: Any, ident: Any, field: str, limits: Limits) -> Entity:
    ty, ident = plain_str(ty), plain_str(ident)
    why = entity_problem(ty, ident)
    if why is not None:
        raise RuneRequestError(f"{field}: {why}", field=field)
    if len(ident) > limits.max_id_length:
        raise RuneRequestError(
            f"{field}: entity id of {len(ident)} characters is longer than max_id_length={limits.max_id_length}",
            field=field,
        )
    if type(ty) is str and type(ident) is str:  # always, after entity_problem; narrows for mypy
        return Entity(ty, ident)
    raise RuneRequestError(f"{field}: not an entity", field=field)  # pragma: no cover


def parse_entity(x: Any, field: str, limits: Limits = DEFAULT_LIMITS) -> Entity:
    """An entity from ``Entity``, ``("Type", "id")``, ``'Type::"id"'`` or a
    Cedar-JSON ``{"type": .., "id": ..}`` / ``{"__entity": {...}}`` dict."""
    t = type(x)
    if t is Entity or (isinstance(x, tuple) and len(x) == 2):
        return _checked(x[0], x[1], field, limits)
    if isinstance(x, str):
        text = str.__str__(x)  # exact str, whatever subclass the caller passed
        # An id of max_id_length characters, each written as a 6-character
        # \uXXXX escape, plus a type name: anything longer is refused unread.
        if len(text) > 6 * limits.max_id_length + 1024:
            raise RuneRequestError(
                f"{field}: entity literal of {len(text)} characters exceeds max_id_length={limits.max_id_length}",
                field=field,
            )
        e = parse_entity_literal(text)
        if e is not None:
            return _checked(e.type, e.id, field, limits)
        raise RuneRequestError(
            f'{field} must be an entity such as \'User::"alice"\' (type, "::", then a quoted id); got {_show(x)}',
            field=field,
        )
    if isinstance(x, tuple):
        raise RuneRequestError(f'{field} must be a pair ("Type", "id") of strings; got {_show(x)}', field=field)
    if isinstance(x, Mapping):
        inner = x.get("__entity", x) if len(x) == 1 else x
        if isinstance(inner, Mapping) and set(inner) == {"type", "id"}:
            return _checked(inner["type"], inner["id"], field, limits)
        raise RuneRequestError(f'{field} must be {{"type": "User", "id": "alice"}}; got {_show(x)}', field=field)
    raise RuneRequestError(
        f'{field} must be an entity: Entity, ("User", "alice") or \'User::"alice"\'; got {type(x).__name__} {_show(x)}',
        field=field,
    )


class RequestEntities:
    """Request-supplied entities, parsed: parents, attributes and their facts."""

    __slots__ = ("uids", "parents", "attrs", "parent_rows", "attr_rows")

    def __init__(self) -> None:
        self.uids: list[Entity] = []  # every entity given, in request order (with or without attrs/parents)
        self.parents: dict[Entity, tuple[Entity, ...]] = {}
        self.attrs: dict[Entity, CRecord] = {}
        self.parent_rows: list[tuple] = []
        self.attr_rows: list[tuple] = []


def parse_entities(entities: Any, limits: Limits = DEFAULT_LIMITS, budget: Optional[ValueBudget] = None) -> Optional[RequestEntities]:
    """Validate and convert the ``entities`` of a request (``None``: none)."""
    if entities is None:
        return None
    if isinstance(entities, (str, bytes, Mapping)) or not isinstance(entities, Iterable):
        raise RuneRequestError(
            'entities must be a list of {"uid": {"type": .., "id": ..}, "attrs": {..}, "parents": [..]}',
            field="entities",
        )
    budget = budget or budget_for(limits)
    out = RequestEntities()
    seen: set = set()
    for i, item in enumerate(entities):
        f = f"entities[{i}]"
        if i >= limits.max_request_entities:
            raise RuneRequestError(
                f"more than max_request_entities={limits.max_request_entities} entities", field="entities"
            )
        if isinstance(item, A.RequestEntity):
            uid_raw, attrs_raw, parents_raw = item.uid, item.attrs, item.parents
        elif isinstance(item, Mapping):
            unknown = [k for k in item if k not in ("uid", "attrs", "parents")]
            if unknown:
                raise RuneRequestError(f"{f}: unknown key {_show(unknown[0])} (expected uid, attrs, parents)", field=f)
            if "uid" not in item:
                raise RuneRequestError(f"{f}: missing uid", field=f"{f}.uid")
            uid_raw = item["uid"]
            attrs_raw = item.get("attrs", {})
            parents_raw = item.get("parents", [])
        else:
            raise RuneRequestError(f"{f} must be an object with uid, attrs and parents; got {_show(item)}", field=f)
        uid = parse_entity(uid_raw, f"{f}.uid", limits)
        budget.charge_string(uid.id, f"{f}.uid")
        if uid in seen:
            raise RuneRequestError(f"{f}: entity {_show(str(uid))} is given twice", field=f"{f}.uid")
        seen.add(uid)
        out.uids.append(uid)
        if attrs_raw is None:
            attrs_raw = {}
        if not isinstance(attrs_raw, Mapping):
            raise RuneRequestError(f"{f}.attrs must be an object; got {_show(attrs_raw)}", field=f"{f}.attrs")
        rec = to_value(attrs_raw, f"{f}.attrs", budget)
        if rec:
            out.attrs[uid] = rec
            for name, v in rec.items():
                if type(v) in _SCALARS:
                    out.attr_rows.append((uid, name, v))
                elif type(v) is CSet:
                    out.attr_rows.extend((uid, name, x) for x in v if type(x) in _SCALARS)
        if parents_raw is None:
            parents_raw = []
        if isinstance(parents_raw, (str, bytes, Mapping)) or not isinstance(parents_raw, Iterable):
            raise RuneRequestError(f"{f}.parents must be a list of entities; got {_show(parents_raw)}", field=f"{f}.parents")
        ps = []
        for j, p in enumerate(parents_raw):
            pf = f"{f}.parents[{j}]"
            budget.charge(pf)
            ent = parse_entity(p, pf, limits)
            budget.charge_string(ent.id, pf)
            ps.append(ent)
        if ps:
            out.parents[uid] = tuple(ps)
            out.parent_rows.extend((uid, p) for p in ps)
    return out


_BATCH_FIELDS = ("principal", "action", "resource", "context", "entities")


def batch_arguments(i: int, req: Any) -> tuple:
    """``(principal, action, resource, context, entities)`` of the ``i``-th
    request of a batch: a dict with those fields (the first three required)
    or a tuple/list of 3 to 5 of them. Only the shape is checked here; the
    fields are parsed like ``authorize``'s arguments."""
    if isinstance(req, Mapping):
        unknown = [k for k in req if k not in _BATCH_FIELDS]
        if unknown:
            raise RuneRequestError(f"requests[{i}]: unknown field {unknown[0]!r}", field=f"requests[{i}].{unknown[0]}")
        missing = [k for k in _BATCH_FIELDS[:3] if k not in req]
        if missing:
            raise RuneRequestError(f"requests[{i}]: missing {missing[0]}", field=f"requests[{i}].{missing[0]}")
        return (req["principal"], req["action"], req["resource"], req.get("context"), req.get("entities"))
    if isinstance(req, (tuple, list)) and 3 <= len(req) <= 5:
        return tuple(req) + (None,) * (5 - len(req))
    raise RuneRequestError(
        f"requests[{i}] must be a dict with principal, action, resource (and context, entities)",
        field=f"requests[{i}]",
    )


def parse_context(context: Any, limits: Limits = DEFAULT_LIMITS, budget: Optional[ValueBudget] = None) -> CRecord:
    """Validate and convert a request's ``context`` (``None``: empty)."""
    if context is None:
        return EMPTY_CONTEXT
    if type(context) is not dict and not isinstance(context, Mapping):
        raise RuneRequestError(
            f"context must be a JSON object (a dict of names to values); got {type(context).__name__}",
            field="context",
        )
    if not context:
        return EMPTY_CONTEXT
    if type(context) is dict:
        flat = flat_context(context, limits, budget)
        if flat is not None:
            return flat
    # a dict (checked above) converts to a record
    record: CRecord = to_value(context, "context", budget or budget_for(limits))
    return record


_INF = float("inf")


def flat_context(context: dict, limits: Limits = DEFAULT_LIMITS, budget: Optional[ValueBudget] = None) -> Optional[CRecord]:
    """The common context, converted in one pass: a non-empty ``dict`` whose
    keys are strings and whose values are strings, booleans, 64-bit integers
    or finite floats (exact types), within the limits. ``None`` for anything
    else (nested values, entities, ``__entity``/``__extn`` objects, a value
    over a limit, a subclass of a scalar type): the caller then converts it
    with ``to_value``, which accepts or refuses it with the precise error.

    The result equals ``to_value(context, "context", budget)`` for every
    context it accepts (``tests/test_request_fastpath.py`` checks that), and
    ``budget``, when given, is charged exactly what ``to_value`` would charge:
    one value for the record, one per key, one per value, and the characters
    of every key and string value. Nothing is charged when ``None`` is
    returned.
    """
    got = flat_context_facts(context, limits, budget)
    return None if got is None else got[0]


def flat_context_facts(
    context: dict, limits: Limits = DEFAULT_LIMITS, budget: Optional[ValueBudget] = None
) -> Optional[tuple[CRecord, dict]]:
    """``flat_context`` and the record's ``context(K, V)`` facts in key form
    (``request_plans.context_facts``): the record itself when every value is
    a string or an integer (their own key form), else a dict with booleans
    and floats in key form. The engine hands them to the request plans."""
    if budget is None:
        return flat_context_within(context, (limits.max_value_depth, limits.max_string_length,
                                             limits.max_request_values, limits.max_request_chars))
    got = flat_context_within(context, (budget.depth, budget.string, budget.values, budget.chars))
    if got is not None:
        budget.values -= 1 + 3 * len(context)
        budget.chars -= sum(map(len, context)) + sum([len(v) for v in context.values() if type(v) is str])
    return got


def flat_context_within(context: dict, limits: tuple[int, int, int, int]) -> Optional[tuple[CRecord, dict]]:
    """``flat_context_facts`` under explicit limits: ``(depth, longest,
    values, chars)``, the nesting depth, the longest string, and the values
    and characters left for the request; the engine keeps its own limits as
    such a tuple. One pass over the context checks it and notes the entries
    whose key form differs from the value (booleans, floats)."""
    depth, longest, values, chars = limits
    n = len(context)
    if n == 1 and ("__entity" in context or "__extn" in context):
        return None
    used = 0  # characters of every key and string value
    odd = None  # keys of booleans and floats
    for k, v in context.items():
        if type(k) is not str:
            return None
        t = type(v)
        if t is str:
            used += len(k) + len(v)
        elif t is int:
            used += len(k)
            if v < INT_MIN or v > INT_MAX:
                return None
        elif t is bool:
            used += len(k)
            if odd is None:
                odd = [k]
            else:
                odd.append(k)
        elif t is float:
            used += len(k)
            if v != v or v == _INF or v == -_INF:
                return None
            if odd is None:
                odd = [k]
            else:
                odd.append(k)
        else:
            return None
    # No single string is longer than all of them together, so ``used <=
    # longest`` checks every string's length at once; a bigger context is
    # left to to_value (correct, only slower).
    if used > longest or depth <= 0 or values < 1 + 3 * n or chars < used:
        return None
    record = CRecord(context)
    if odd is None:
        return record, record
    facts = dict(context)
    for k in odd:
        v = facts[k]
        facts[k] = (TRUE_KEY if v else FALSE_KEY) if type(v) is bool else FloatKey((v,))
    return record, facts


#: The decision cache's key of a raw context or entities value (``None`` for
#: ``None``): ``rune_fast.values.json_key``, the one key scheme.
freeze = json_key
