"""Search: which resources, subjects or actions a request pattern allows.

``Engine.search_resources``, ``search_subjects`` and ``search_actions``
delegate here. The semantics are those of ``authorize``, candidate by
candidate, with the same context and request entities: an entity is in the
result exactly when ``authorize`` with it in the open slot says ``permit``.

Why it is shaped like this:

- **Candidates are the entities the engine knows.** Every entity that occurs
  in the model (facts, ``parent``, ``attr``, ``[sources]``, derived rows),
  every entity literal in the rules and policies, and every entity the
  request itself mentions (request entities' uids, parents and attribute
  values, context values). No rule can invent an entity outside that set,
  so enumerating relations of the (request) model never finds an entity
  that is not a candidate. Actions are the candidates whose type is
  ``Action`` or ends in ``::Action``.
- **A stable order and opaque tokens.** Results come sorted by (type, id).
  A page token names the engine version, the query it belongs to and the
  last entity returned, so the next page starts right after it, whatever
  the other pages did; a token from another engine version or another
  query is a ``RuneRequestError``, never a silently wrong page.
- **Per-candidate evaluation is the reference.** ``plan.py`` (the fast path)
  answers the common shapes from the model's indexes; whatever it cannot
  reduce is decided here, candidate by candidate, through the engine's own
  decision function.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import RuneRequestError
from ..lang import ast as A
from ..values import Entity, is_type_name

__all__ = ["MAX_LIMIT", "SearchPage", "known_entities", "search_actions", "search_resources", "search_subjects"]

#: Upper bound of ``limit`` (a page is built in memory).
MAX_LIMIT = 10_000
#: Upper bound of a page token's length (tokens are short; anything longer is junk).
MAX_TOKEN_CHARS = 2048

_TOKEN_VERSION = 1


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of search results.

    ``results`` are entities in (type, id) order; ``next_token`` is an opaque
    string to pass as ``page_token`` for the next page, or ``None`` when
    there are no more results.
    """

    results: tuple[Entity, ...]
    next_token: str | None = None

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"results": [{"type", "id"}...], "next_token"}``."""
        return {
            "results": [{"type": e.type, "id": e.id} for e in self.results],
            "next_token": self.next_token,
        }


# ---------------------------------------------------------------------------
# Known entities (per engine, built on first use)


class KnownEntities:
    """Every entity an engine knows, by type, in sorted order."""

    __slots__ = ("_sets", "all", "by_type")

    def __init__(self, entities: Iterable[Entity]) -> None:
        by_type: dict[str, list[Entity]] = {}
        for e in set(entities):
            by_type.setdefault(e.type, []).append(e)
        self.by_type: dict[str, tuple[Entity, ...]] = {t: tuple(sorted(v)) for t, v in by_type.items()}
        self.all: frozenset[Entity] = frozenset(e for v in self.by_type.values() for e in v)
        self._sets: dict[str, frozenset] = {}

    def set_of(self, ty: str) -> frozenset:
        s = self._sets.get(ty)
        if s is None:
            s = self._sets[ty] = frozenset(self.by_type.get(ty, ()))
        return s


_KNOWN: weakref.WeakKeyDictionary[Any, KnownEntities] = weakref.WeakKeyDictionary()
_KNOWN_LOCK = threading.Lock()


def _entities_in(x: Any, out: set) -> None:
    """Collect the entities inside a value, an AST node or a JSON-like structure."""
    todo = [x]
    while todo:
        v = todo.pop()
        t = type(v)
        if t is Entity:
            out.add(v)
        elif t is str or t is int or t is float or t is bool or v is None:
            continue
        elif isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, (tuple, list, frozenset, set)):
            todo.extend(v)
        elif hasattr(v, "__dataclass_fields__"):
            if isinstance(v, A.Loc):
                continue
            todo.extend(getattr(v, f) for f in v.__dataclass_fields__)
        else:
            try:
                todo.extend(iter(v))  # CSet and friends
            except TypeError:
                pass


def known_entities(engine: Any) -> KnownEntities:
    """The engine's candidate entities (see the module docstring); cached per engine."""
    k = _KNOWN.get(engine)
    if k is not None:
        return k
    with _KNOWN_LOCK:
        k = _KNOWN.get(engine)
        if k is None:
            found: set = set()
            # every entity the core interned (its facts' and rules' values),
            # then the parent/attr rows kept out of the core
            found.update(v for v in engine._model.symbols.table() if type(v) is Entity)
            for rows in engine._side_facts.values():
                for row in rows:
                    for v in row:
                        if type(v) is Entity:
                            found.add(v)
            _entities_in(engine.rules, found)
            _entities_in([p.policy for p in engine.policies], found)
            k = KnownEntities(found)
            _KNOWN[engine] = k
    return k


def request_entities(context: Any, ents: Any) -> set:
    """Entities a request mentions (parsed context record, parsed request entities)."""
    out: set = set()
    if context:
        _entities_in(context, out)
    if ents is not None:
        out.update(ents.uids)  # an entity given with no attrs or parents is a candidate too
        out.update(ents.parents)
        for ps in ents.parents.values():
            out.update(ps)
        out.update(ents.attrs)
        _entities_in(list(ents.attrs.values()), out)
        for row in ents.attr_rows:
            out.add(row[0])
    return out


def is_action_type(ty: str) -> bool:
    return ty == "Action" or ty.endswith("::Action")


def candidates(engine: Any, wanted: Callable[[str], bool], extra: set) -> list[Entity]:
    """Sorted candidates whose type satisfies ``wanted``."""
    known = known_entities(engine)
    out: list[Entity] = []
    for ty, ents in known.by_type.items():
        if wanted(ty):
            out.extend(ents)
    extra_ok = [e for e in extra if wanted(e.type) and e not in known.all]
    if extra_ok:
        out.extend(extra_ok)
    out.sort()
    return out


def candidates_of_type(engine: Any, ty: str, extra: set) -> tuple[Any, frozenset]:
    """(sorted candidates of one type, the same as a set); shared when the
    request adds no entity of that type."""
    known = known_entities(engine)
    base = known.by_type.get(ty, ())
    extra_ok = [e for e in extra if e.type == ty and e not in known.all]
    if not extra_ok:
        return base, known.set_of(ty)
    merged = sorted(list(base) + extra_ok)
    return merged, frozenset(merged)


# ---------------------------------------------------------------------------
# Tokens


def _query_digest(kind: str, parts: tuple) -> str:
    text = json.dumps([kind] + [str(p) for p in parts], ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _short(version: str) -> str:
    """The part of the engine version a token carries (64 bits of the content hash)."""
    return version[:16]


def make_token(version: str, digest: str, last: Entity) -> str:
    raw = json.dumps([_TOKEN_VERSION, _short(version), digest, last.type, last.id], ensure_ascii=True,
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_token(token: Any, version: str, digest: str) -> Entity:
    """The entity after which the page starts; ``RuneRequestError`` if the
    token is malformed, from another engine version or another query."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise RuneRequestError("page_token must be a token returned by a previous search", field="page_token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw.decode())
        tv, ver, dig, ty, ident = data
    except Exception:
        raise RuneRequestError("page_token is malformed", field="page_token") from None
    if tv != _TOKEN_VERSION or not isinstance(ty, str) or not isinstance(ident, str):
        raise RuneRequestError("page_token is malformed", field="page_token")
    if ver != _short(version):
        raise RuneRequestError(
            "page_token belongs to another engine version (the policies changed); start the search again",
            field="page_token",
        )
    if dig != digest:
        raise RuneRequestError("page_token belongs to a different search", field="page_token")
    return Entity(ty, ident)


def _check_limit(limit: Any) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise RuneRequestError(f"limit must be an integer from 1 to {MAX_LIMIT}; got {limit!r}", field="limit")
    return limit


def _check_type(ty: Any, field: str) -> str:
    if not is_type_name(ty):
        raise RuneRequestError(f"{field} must be an entity type name such as Document; got {ty!r}", field=field)
    return ty


# ---------------------------------------------------------------------------
# Paging over a sorted candidate list


def page(
    engine: Any,
    digest: str,
    cands: list[Entity],
    allowed: Callable[[Entity], bool],
    limit: int,
    page_token: Any,
) -> SearchPage:
    """Walk sorted candidates after the token's position, keep the allowed ones."""
    start = 0
    if page_token is not None:
        after = read_token(page_token, engine.version, digest)
        start = bisect_right(cands, after)
    out: list[Entity] = []
    more = False
    for i in range(start, len(cands)):
        e = cands[i]
        if allowed(e):
            if len(out) == limit:
                more = True
                break
            out.append(e)
    token = make_token(engine.version, digest, out[-1]) if more else None
    return SearchPage(tuple(out), token)


#: Full result lists of recent searches per engine, for their next pages.
RECENT_RESULTS = 16
_RECENT: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
_RECENT_LOCK = threading.Lock()


def remembered(engine: Any, digest: str, page_token: Any, compute: Callable[[], list[Entity]]) -> list[Entity]:
    """The sorted results of a search, computed once for all its pages.

    A token is checked before anything is computed. The results of the last
    ``RECENT_RESULTS`` searches of an engine that had more than one page are
    kept, so the next pages cost a lookup; an engine is immutable and the
    digest names the whole query, so a kept list is exactly what computing
    again would give.
    """
    if page_token is not None:
        read_token(page_token, engine.version, digest)
        recent = _RECENT.get(engine)
        hit = recent.get(digest) if recent is not None else None
        if hit is not None:
            return hit
    return compute()


def _remember(engine: Any, digest: str, results: list[Entity]) -> None:
    with _RECENT_LOCK:
        recent = _RECENT.get(engine)
        if recent is None:
            recent = _RECENT[engine] = {}
        recent.pop(digest, None)
        recent[digest] = results
        while len(recent) > RECENT_RESULTS:
            recent.pop(next(iter(recent)))


def page_of_sorted(engine: Any, digest: str, results: list[Entity], limit: int, page_token: Any) -> SearchPage:
    """A page of an already computed, sorted result list."""
    start = 0
    if page_token is not None:
        after = read_token(page_token, engine.version, digest)
        start = bisect_right(results, after)
    elif len(results) > limit:
        _remember(engine, digest, results)
    chunk = results[start : start + limit]
    more = start + limit < len(results)
    return SearchPage(tuple(chunk), make_token(engine.version, digest, chunk[-1]) if more else None)


# ---------------------------------------------------------------------------
# The three searches


def _decider(engine: Any, ctx: Any, ents: Any) -> Callable[[Entity, Entity, Entity], bool]:
    def allowed(p: Entity, a: Entity, r: Entity) -> bool:
        return engine._decide(p, a, r, ctx, ents)[0] == "permit"

    return allowed


def _parse(engine: Any, principal: Any, action: Any, resource: Any, context: Any, entities: Any) -> tuple:
    """Parse a search request with the engine's own request parser."""
    dummy = Entity("Search", "")
    p, a, r, ctx, ents = engine._parse_request(
        principal if principal is not None else dummy,
        action if action is not None else dummy,
        resource if resource is not None else dummy,
        context,
        entities,
    )
    return (p if principal is not None else None, a if action is not None else None,
            r if resource is not None else None, ctx, ents)


def within_checker(engine: Any, p: Entity, a: Entity, ctx: Any, ents: Any, within: Entity) -> Callable[[Entity], bool]:
    """``resource in within`` under the hierarchy a request with that
    resource would see (static, plus request entities' parents, or derived
    per request when rules compute ``parent`` from the request)."""
    from ..policy.policies import OverlayData

    static = engine._static
    has_ents = ents is not None and bool(ents.parents or ents.attrs)
    if engine._dynamic_hierarchy or (has_ents and engine._entity_hierarchy):

        def inside(r: Entity) -> bool:
            data = OverlayData(static, ents.parents if ents else None, ents.attrs if ents else None)
            data.hierarchy = engine._request_model(p, a, r, ctx, ents)
            return data.is_in(r, within)

        return inside
    if has_ents:
        data = OverlayData(static, ents.parents, ents.attrs)
        return lambda r: data.is_in(r, within)
    return lambda r: static.is_in(r, within)


def _canonical(x: Any) -> Any:
    """A JSON-able form of a request value in which every value carries its
    type, so two requests that mean different things never share a form.

    The query digest names the remembered results of a search and checks
    page tokens, so it must be keyed on everything the results depend on:
    ``json.dumps(..., default=str)`` made the set ``{"x"}`` and the string
    ``"{'x'}"`` one digest, and the next page of one search could be read
    from the other's results. Values are already validated (bounded depth
    and size) by the request parser when this runs.
    """
    t = type(x)
    if x is None:
        return ["n"]
    if t is bool:
        return ["b", x]
    if t is int:
        return ["i", x]
    if t is float:
        return ["f", repr(x)]
    if t is str:
        return ["s", x]
    if t is Entity:
        return ["e", x.type, x.id]
    if isinstance(x, dict):
        items = [[_canonical(k), _canonical(v)] for k, v in x.items()]
        items.sort(key=lambda kv: json.dumps(kv[0]))
        return ["d", items]
    if t is list or t is tuple:
        return ["l", [_canonical(v) for v in x]]
    if isinstance(x, (set, frozenset)):
        return ["S", sorted((_canonical(v) for v in x), key=json.dumps)]
    # anything else (a str or int subclass, a CSet, an AST node): its exact
    # type and repr, never confused with a plain value
    return ["o", f"{t.__module__}.{t.__qualname__}", repr(x)]


def _freeze_digest(x: Any) -> str:
    try:
        return json.dumps(_canonical(x), separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return f"{type(x).__qualname__}:{x!r}"


def search_resources(
    engine: Any,
    principal: Any,
    action: Any,
    resource_type: Any,
    *,
    context: Any = None,
    entities: Any = None,
    within: Any = None,
    limit: int = 100,
    page_token: str | None = None,
) -> SearchPage:
    """Resources of ``resource_type`` that ``principal`` may ``action`` (see ``Engine.search_resources``)."""
    limit = _check_limit(limit)
    rtype = _check_type(resource_type, "resource_type")
    p, a, _, ctx, ents = _parse(engine, principal, action, None, context, entities)
    w = engine._entity(within, "within") if within is not None else None
    digest = _query_digest("resources", (p, a, rtype, w, _freeze_digest(context), _freeze_digest(entities)))
    from . import plan

    def compute() -> list[Entity]:
        cands, cand_set = candidates_of_type(engine, rtype, request_entities(ctx, ents))
        found = plan.resources(engine, p, a, rtype, ctx, ents, cands, cand_set)
        if w is not None:
            inside = within_checker(engine, p, a, ctx, ents, w)
            found = {e for e in found if inside(e)}
        return sorted(found)

    return page_of_sorted(engine, digest, remembered(engine, digest, page_token, compute), limit, page_token)


def search_subjects(
    engine: Any,
    action: Any,
    resource: Any,
    principal_type: Any,
    *,
    context: Any = None,
    entities: Any = None,
    limit: int = 100,
    page_token: str | None = None,
) -> SearchPage:
    """Principals of ``principal_type`` that may ``action`` on ``resource``."""
    limit = _check_limit(limit)
    ptype = _check_type(principal_type, "principal_type")
    _, a, r, ctx, ents = _parse(engine, None, action, resource, context, entities)
    digest = _query_digest("subjects", (a, r, ptype, _freeze_digest(context), _freeze_digest(entities)))
    from . import plan

    def compute() -> list[Entity]:
        cands, cand_set = candidates_of_type(engine, ptype, request_entities(ctx, ents))
        return sorted(plan.subjects(engine, a, r, ptype, ctx, ents, cands, cand_set))

    return page_of_sorted(engine, digest, remembered(engine, digest, page_token, compute), limit, page_token)


def search_actions(
    engine: Any,
    principal: Any,
    resource: Any,
    *,
    context: Any = None,
    entities: Any = None,
    limit: int = 100,
    page_token: str | None = None,
) -> SearchPage:
    """Actions ``principal`` may do on ``resource``."""
    limit = _check_limit(limit)
    p, _, r, ctx, ents = _parse(engine, principal, None, resource, context, entities)
    digest = _query_digest("actions", (p, r, _freeze_digest(context), _freeze_digest(entities)))
    cands = candidates(engine, is_action_type, request_entities(ctx, ents))
    allowed = _decider(engine, ctx, ents)
    return page(engine, digest, cands, lambda e: allowed(p, e, r), limit, page_token)
