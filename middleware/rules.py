"""Per-route rules: exemptions and action/resource overrides, declared on the route.

A rule is data attached to a route (a Falcon resource class attribute, a
responder/view decorated with :func:`rule`, a FastAPI dependency), never a
change to shared configuration made while serving. Everything a rule says is
parsed and checked here, when the route is declared, so that a typo fails the
import of the app instead of the first request.

Entity templates such as ``'Document::"{doc_id}"'`` are split once into a
fixed type and an id template; at request time the route parameters fill the
id and the entity is built directly as ``Entity(type, id)``. A parameter value
is therefore only ever an id: it cannot close the quote and smuggle in another
type, whatever characters the client puts in the path.
"""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional, TypeVar, Union

from rune_fast import Entity, RuneRequestError

__all__ = ["EntitySpec", "RouteRule", "RouteTable", "rule", "rule_of", "rule_table", "RULE_ATTR"]

#: The attribute :func:`rule` sets on a responder or view function.
RULE_ATTR = "__rune_rule__"

_TYPE = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"
_TEMPLATE_RE = re.compile(rf'^({_TYPE})::"(.*)"$', re.S)
_TYPE_RE = re.compile(rf"^{_TYPE}$")

F = TypeVar("F", bound=Callable[..., Any])

#: What a rule accepts for ``action`` / ``resource``: a literal or template
#: (``'Document::"{doc_id}"'``), a ``(type, id_template)`` pair, an Entity, or a
#: resolver ``fn(req)`` (sync, or async under ASGI).
EntityLike = Union[str, tuple, Entity, Callable[[Any], Any]]


class EntitySpec:
    """A parsed entity template: constant, filled from route params, or a callable.

    ``resolve(req, params)`` returns the Entity (or, for a callable, whatever
    it returns, possibly an awaitable). Missing parameters raise
    ``RuneRequestError`` naming the parameter, which the guard turns into a
    deny.
    """

    __slots__ = ("kind", "type", "id", "fields", "fn", "is_async", "text", "entity")

    def __init__(self, spec: EntityLike, what: str) -> None:
        self.text = repr(spec)
        self.fn: Optional[Callable[[Any], Any]] = None
        self.is_async = False
        self.fields: tuple[str, ...] = ()
        self.type = ""
        self.id = ""
        if isinstance(spec, Entity):
            self.kind = "const"
            self.type, self.id = spec.type, spec.id
            self._check_type(what)
        elif isinstance(spec, str):
            m = _TEMPLATE_RE.match(spec)
            if m is None:
                raise ValueError(f"{what}: {spec!r} is not an entity template such as 'Document::\"{{doc_id}}\"'")
            self.type, body = m.group(1), m.group(2)
            self.id = body.replace('\\"', '"').replace("\\\\", "\\")
            self._parse_fields(what)
        elif isinstance(spec, tuple):
            if len(spec) != 2 or not all(isinstance(x, str) for x in spec):
                raise ValueError(f"{what}: a tuple must be (type, id_template) of strings; got {spec!r}")
            self.type, self.id = spec
            self._check_type(what)
            self._parse_fields(what)
        elif callable(spec):
            self.kind = "call"
            self.fn = spec
            self.is_async = _is_async(spec)
        else:
            raise TypeError(f"{what}: expected an entity template, (type, id), Entity or callable; got {spec!r}")
        #: The entity itself when it does not depend on the request.
        self.entity: Optional[Entity] = Entity(self.type, self.id) if self.kind == "const" else None

    def _check_type(self, what: str) -> None:
        if not _TYPE_RE.match(self.type):
            raise ValueError(f"{what}: {self.type!r} is not an entity type name such as Document or App::Doc")

    def _parse_fields(self, what: str) -> None:
        fields = []
        try:
            for _, name, spec, conv in string.Formatter().parse(self.id):
                if name is None:
                    continue
                if not name.isidentifier() or spec or conv:
                    raise ValueError(f"{what}: placeholder {{{name}}} must be a plain parameter name")
                fields.append(name)
        except ValueError as e:
            raise ValueError(f"{what}: bad template {self.id!r}: {e}") from None
        self.fields = tuple(fields)
        self.kind = "template" if fields else "const"

    def fill(self, params: Optional[Mapping[str, Any]]) -> Entity:
        """The entity for these route parameters (template kind only)."""
        try:
            ident = self.id.format_map(params or {})
        except KeyError as e:
            raise RuneRequestError(f"route parameter {e.args[0]!r} needed by {self.text} is missing", field="route") from None
        return Entity(self.type, ident)

    def __repr__(self) -> str:
        return f"EntitySpec({self.text})"


def _is_async(fn: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


class RouteRule:
    """How the guard treats one route (or one responder/view). Immutable.

    - ``exempt``: skip authorization entirely (health checks, login pages).
    - ``action`` / ``resource``: override the defaults (``Action::"<METHOD>"``
      and ``Route::"<route template>"``): a template such as
      ``'Document::"{doc_id}"'`` filled from the route parameters, a
      ``(type, id_template)`` pair, an Entity, or a resolver ``fn(req)``.
    - ``hide``: answer a deny with the framework's plain 404 instead of 403,
      without the decision headers, so a caller cannot tell that the resource
      exists.

    A plain slotted class rather than a dataclass: the guard reads these
    attributes on every request. ``defaults`` is true when the rule leaves
    both the action and the resource to the guard (then they are functions
    of the method and route, and the guard's memo can key on those).
    """

    __slots__ = ("exempt", "hide", "action", "resource", "action_spec", "resource_spec", "is_async", "defaults")

    exempt: bool
    hide: bool
    action: Optional[EntityLike]
    resource: Optional[EntityLike]
    action_spec: Optional[EntitySpec]
    resource_spec: Optional[EntitySpec]
    is_async: bool
    defaults: bool

    def __init__(
        self,
        exempt: bool = False,
        action: Optional[EntityLike] = None,
        resource: Optional[EntityLike] = None,
        hide: bool = False,
    ) -> None:
        if not isinstance(exempt, bool) or not isinstance(hide, bool):
            raise TypeError("RouteRule: exempt and hide must be booleans")
        a = None if action is None else EntitySpec(action, "action")
        r = None if resource is None else EntitySpec(resource, "resource")
        for name, value in (
            ("exempt", exempt), ("hide", hide), ("action", action), ("resource", resource),
            ("action_spec", a), ("resource_spec", r),
            ("is_async", any(s is not None and s.is_async for s in (a, r))),
            ("defaults", a is None and r is None),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("RouteRule is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouteRule):
            return NotImplemented
        return (self.exempt, self.hide, self.action, self.resource) == (other.exempt, other.hide, other.action, other.resource)

    def __hash__(self) -> int:
        return hash((self.exempt, self.hide, repr(self.action), repr(self.resource)))

    def __repr__(self) -> str:
        return f"RouteRule(exempt={self.exempt}, action={self.action!r}, resource={self.resource!r}, hide={self.hide})"


def rule(
    *,
    exempt: bool = False,
    action: Optional[EntityLike] = None,
    resource: Optional[EntityLike] = None,
    hide: bool = False,
    methods: Optional[Iterable[str]] = None,
) -> Callable[[F], F]:
    """Decorator declaring a :class:`RouteRule` on a responder or view function.

    ``@rule(resource='Document::"{doc_id}"', action='Action::"read"')`` on a
    Falcon ``on_get``, a Flask view or a Django view. ``methods=("DELETE",)``
    limits the rule to those methods, so one view serving several methods
    can carry one rule per method (stack the decorators). The rule is
    validated when the decorator runs (at import) and stored on the function
    as ``__rune_rule__``; the adapters read it with :func:`rule_of`.
    """
    r = RouteRule(exempt=exempt, action=action, resource=resource, hide=hide)
    keys = ["*"] if methods is None else [m.upper() for m in methods]
    if isinstance(methods, str) or not all(isinstance(k, str) for k in keys):
        raise TypeError("rule: methods must be a collection of method names such as ('GET', 'HEAD')")

    def mark(fn: F) -> F:
        table = dict(rule_table(getattr(fn, RULE_ATTR, None)))
        for k in keys:
            table[k] = r
        setattr(fn, RULE_ATTR, table)
        return fn

    return mark


def rule_table(declared: Any) -> dict:
    """A declared rule (RouteRule, or a dict of method -> RouteRule) as a dict."""
    if declared is None:
        return {}
    if isinstance(declared, RouteRule):
        return {"*": declared}
    if isinstance(declared, Mapping) and all(isinstance(v, RouteRule) for v in declared.values()):
        return {str(k).upper(): v for k, v in declared.items()}
    raise TypeError(f"a rune rule must be a RouteRule or a dict of method -> RouteRule; got {declared!r}")


def rule_of(obj: Any, method: str) -> Optional[RouteRule]:
    """The rule ``obj`` (a function or class) declares for ``method``, if any.

    Looks at ``__rune_rule__`` (set by :func:`rule`) and ``rune_rule`` (a
    class attribute); a method-specific entry wins over ``"*"``.
    """
    for attr in (RULE_ATTR, "rune_rule"):
        declared = getattr(obj, attr, None)
        if declared is None:
            continue
        table = rule_table(declared)
        r = table.get(method) or table.get("*")
        if r is not None:
            return r  # type: ignore[no-any-return]
    return None


_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RouteTable:
    """Route templates and their rules for the generic WSGI/ASGI middleware.

    Those wrap an app whose router they cannot see, so the app declares the
    routes it wants to treat specially: ``{"/docs/{doc_id}": RouteRule(...),
    "/health": RouteRule(exempt=True)}``. A ``{name}`` matches one path
    segment; the first template that matches (in the given order) gives the
    route template, its parameters and its rule; an unmatched path is decided
    with the default rule, the path as its route and no parameters.
    """

    __slots__ = ("exact", "patterns")

    def __init__(self, routes: Optional[Mapping[str, RouteRule]] = None) -> None:
        self.exact: dict[str, RouteRule] = {}
        self.patterns: list[tuple[re.Pattern[str], str, RouteRule]] = []
        for template, r in (routes or {}).items():
            if not isinstance(template, str) or not template.startswith("/"):
                raise ValueError(f"routes: {template!r} is not a path template such as '/docs/{{doc_id}}'")
            if not isinstance(r, RouteRule):
                raise TypeError(f"routes[{template!r}] must be a RouteRule; got {r!r}")
            names = _PARAM_RE.findall(template)
            if len(set(names)) != len(names):
                raise ValueError(f"routes: {template!r} repeats a parameter name")
            for spec in (r.action_spec, r.resource_spec):
                if spec is not None and spec.kind == "template" and not set(spec.fields) <= set(names):
                    raise ValueError(f"routes[{template!r}]: {spec.text} uses a parameter the template does not define")
            if not names:
                self.exact[template] = r
                continue
            parts = _PARAM_RE.split(template)
            rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
            self.patterns.append((re.compile(rx + r"\Z"), template, r))

    def match(self, path: str) -> tuple[Optional[str], Optional[dict], Optional[RouteRule]]:
        r = self.exact.get(path)
        if r is not None:
            return path, None, r
        for rx, template, r in self.patterns:
            m = rx.match(path)
            if m is not None:
                return template, m.groupdict(), r
        return None, None, None
