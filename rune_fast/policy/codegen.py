"""Policies compiled to Python functions: the one policy evaluator.

Each policy becomes one function ``test(p, a, r, c, d)`` (principal,
action, resource, context record, ``PolicyData``) generated as source text
and compiled with ``compile()``. Why generated code:

- **Fast.** No Python call per AST node, and the generator drops the type
  checks whose outcome is known statically (``principal`` is always an
  entity, ``context`` always a record, ``==`` always a bool...).
- **Safe.** Only generated identifiers appear in the source: every string,
  entity, attribute name or pattern is passed in as a global constant, the
  globals hold only the whitelisted runtime helpers below, and there are no
  builtins, so no policy text can inject code.
- **One implementation of each operator.** Each Cedar operator has one
  template here (``_emit_*``), specialised only by what is statically known
  about its operands; the runtime helpers are the parts of those templates
  too long to inline. A test-only reference evaluator
  (``tests/reference_policies.py``) checks this generator differentially.
- **No silent fallback.** A policy Python refuses to compile (absurd
  nesting) is a located ``RuneLimitError`` at load time.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple, Optional

from ..errors import RuneEvalError, RuneLimitError, RuneSyntaxError
from ..lang import ast as A
from ..like import like_matcher as _like_matcher
from ..values import INT_MAX, INT_MIN, Entity, value_key
from .data import SCALARS
from .link import Link
from .values import MISSING, CRecord, CSet, cedar_eq, eval_error, overflow_error, type_error

__all__ = ["Link", "PolicyTest", "generate_test", "generate_expression", "const_value", "NOCONST"]

#: ``const_value``'s answer for a subtree that is not a constant.
NOCONST: Any = object()
_SCALARS = SCALARS


def _ctx_rel(c: CRecord, key: Any, value: Any) -> bool:
    """``context(K, V)``: a top-level scalar context entry (None = wildcard).

    A relation call, so it matches the way every relation does (and the way
    rules and ``query`` read ``context``): by value *and kind*. ``1`` does
    not match a context value ``1.0`` nor ``true``, unlike ``context.x == 1``
    (``==`` compares numbers numerically).
    """
    if key is not None:
        if type(key) is not str:
            return False
        v = c.get(key, MISSING)
        if v is MISSING or type(v) not in _SCALARS:
            return False
        return value is None or (type(v) is type(value) and v == value)
    for v in c.values():
        if type(v) in _SCALARS and (value is None or (type(v) is type(value) and v == value)):
            return True
    return False


def _chain(node: A.Binary, op: str) -> list:
    """The operands of the maximal ``op`` subtree at ``node``, left to right
    (``&&`` and ``||`` are associative, short-circuit included)."""
    out = []
    stack: list = [node]
    while stack:
        n = stack.pop()
        if type(n) is A.Binary and n.op == op:
            stack.append(n.right)
            stack.append(n.left)
        else:
            out.append(n)
    return out


def _in_entity(x: str, t: str, anc: Optional[str] = None) -> str:
    """The code of ``x in t`` for two entities (scopes and conditions alike);
    with ``anc`` (the global name of a linked ancestor map), read from it."""
    if anc is not None:
        return f"{x} == {t} or {t} in {anc}.get({x}, _E0)"
    return f"{x} == {t} or d.is_in({x}, {t})"


def const_value(node: Any) -> Any:
    """The value of a literal subtree (literals, negated integer literals,
    sets and records of constants), or ``NOCONST``. Integer literals outside
    64 bits and float literals are not constants (``_Lit`` reports them)."""
    t = type(node)
    if t is A.Lit:
        v = node.value
        if type(v) is int and not (INT_MIN <= v <= INT_MAX):
            return NOCONST
        if type(v) is float:
            return NOCONST
        return v
    if t is A.Unary and node.op == "-" and type(node.operand) is A.Lit and type(node.operand.value) is int:
        v = -node.operand.value
        if INT_MIN <= v <= INT_MAX:
            return v
        return NOCONST
    if t is A.SetLit:
        vals = [const_value(x) for x in node.items]
        if any(v is NOCONST for v in vals):
            return NOCONST
        return CSet(vals)
    if t is A.RecordLit:
        out = CRecord()
        for k, x in node.items:
            v = const_value(x)
            if v is NOCONST:
                return NOCONST
            dict.__setitem__(out, k, v)
        return out
    return NOCONST



def _loc(node: Any) -> dict:
    loc = getattr(node, "loc", None)
    if loc is None or not getattr(loc, "line", 0):
        return {"file": getattr(loc, "file", "<policy>") if loc else "<policy>"}
    return {"file": loc.file, "line": loc.line, "column": loc.col, "source_line": loc.text or None}



# ---------------------------------------------------------------------------
# Runtime helpers (the only names generated code can call)


def _h_no_attr(o: Any, name: str) -> RuneEvalError:
    return eval_error(f"`{o}` does not have the attribute `{name}`")


def _h_no_key(name: str) -> RuneEvalError:
    return eval_error(f"record does not have the attribute `{name}`")


def _h_in_any(d: Any, a: Entity, targets: Any) -> bool:
    """``a in t`` for some ``t`` (all entities; ``is_in`` includes equality)."""
    for t in targets:
        if d.is_in(a, t):
            return True
    return False


def _h_in_set(d: Any, a: Entity, s: CSet) -> bool:
    """``a in s`` for a set computed at run time: every element must be an
    entity (Cedar checks them all, even after a match)."""
    elems = list(s)
    for x in elems:
        if type(x) is not Entity:
            raise type_error("entity", x)
    return _h_in_any(d, a, elems)


def _h_num(a: Any) -> None:
    ta = type(a)
    if not (ta is int or ta is float):
        raise type_error("long", a)


def _h_long(a: Any) -> None:
    if type(a) is not int:
        raise type_error("long", a)


def _h_neg(v: Any) -> int:
    if type(v) is not int:
        raise type_error("long", v)
    if v == INT_MIN:
        raise overflow_error("negate", v)
    return -v


def _h_mkset(items: tuple) -> CSet:
    return CSet._from_keys(frozenset([value_key(v) for v in items]))


def _h_mkrec(items: tuple) -> CRecord:
    out = CRecord()
    for k, v in items:
        dict.__setitem__(out, k, v)
    return out


def _h_set(v: Any) -> CSet:
    if type(v) is not CSet:
        raise type_error("set", v)
    return v


_EMPTY_ANC: frozenset = frozenset()
_EMPTY_ATTRS = CRecord()

_HELPERS = {
    "Entity": Entity,
    "CRecord": CRecord,
    "CSet": CSet,
    "MISSING": MISSING,
    "_ceq": cedar_eq,
    "_vkey": value_key,
    "_te": type_error,
    "_ov": overflow_error,
    "_noattr": _h_no_attr,
    "_nokey": _h_no_key,
    "_in_any": _h_in_any,
    "_in_set": _h_in_set,
    "_num": _h_num,
    "_long": _h_long,
    "_neg": _h_neg,
    "_mkset": _h_mkset,
    "_mkrec": _h_mkrec,
    "_set": _h_set,
    "_ctxrel": _ctx_rel,
    "_rk": value_key,
    "type": type,
    "bool": bool,
    "int": int,
    "str": str,
    "_E0": _EMPTY_ANC,
    "_ER0": _EMPTY_ATTRS,
    "__builtins__": {},
}


_KIND_OF_VAR = {"p": "entity", "a": "entity", "r": "entity", "c": "record"}
_SAFE_KEY_KINDS = ("entity", "string", "long", "set", "record", "none")
_VAR_NAMES = {"principal": "p", "action": "a", "resource": "r", "context": "c"}
_REQUEST_VAR_RELATIONS = {"principal": "p", "action": "a", "resource": "r"}
_METHOD_ARITY = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}


class _CodeGen:
    """Generates ``def test(p, a, r, c, d)`` for one policy."""

    def __init__(self, policy_id: str, link: Optional[Link] = None, prefix: str = "", indent: int = 1) -> None:
        self.policy_id = policy_id
        self.lines: list[str] = []
        self.ind = indent
        #: names of constants and temporaries start with it (several policies in one function)
        self.prefix = prefix
        #: what a failed condition does: leave the test (or, in a block, the loop around it)
        self.reject = "return False" if not prefix else "break"
        self.ntmp = 0
        self.consts: dict[str, Any] = {}
        self._const_ids: dict[Any, str] = {}
        self.relations: set[str] = set()
        self.patterns: set[tuple[str, tuple[bool, ...]]] = set()
        self.link = link
        self.anc: Optional[str] = None
        self.attrs: Optional[str] = None
        if link is not None:
            if link.ancestors is not None:
                self.anc = self.k(link.ancestors)
            if link.attrs is not None:
                self.attrs = self.k(link.attrs)

    # -- emission helpers ------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.ind + line)

    def tmp(self) -> str:
        self.ntmp += 1
        return f"{self.prefix}t{self.ntmp}"

    def k(self, value: Any) -> str:
        """A global name bound to ``value`` (never its text in the source)."""
        key = (type(value), value) if type(value) in (str, int, bool, Entity) else id(value)
        name = self._const_ids.get(key)
        if name is None:
            name = f"{self.prefix}k{len(self.consts)}"
            self.consts[name] = value
            self._const_ids[key] = name
        return name

    def lit(self, value: Any) -> tuple[str, Optional[str]]:
        t = type(value)
        if t is bool:
            return ("True" if value else "False"), "bool"
        if t is int:
            return self.k(value), "long"
        if t is str:
            return self.k(value), "string"
        if t is Entity:
            return self.k(value), "entity"
        if t is CSet:
            return self.k(value), "set"
        if t is CRecord:
            return self.k(value), "record"
        return self.k(value), None

    # -- expressions: return (python expression, known kind or None) --------------

    def expr(self, node: Any) -> tuple[str, Optional[str]]:
        c = const_value(node)
        if c is not NOCONST:
            return self.lit(c)
        method: Optional[Callable[[Any], tuple[str, Optional[str]]]] = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise RuneSyntaxError(f"unsupported expression {type(node).__name__}", **_loc(node))
        return method(node)

    def _Lit(self, node: A.Lit) -> tuple[str, Optional[str]]:
        # Every other literal is a constant (``const_value``).
        v = node.value
        if type(v) is float:
            raise RuneSyntaxError("policies have no floating-point literals", **_loc(node))
        raise RuneSyntaxError(f"integer literal {v} does not fit in 64 bits", **_loc(node))

    def _VarRef(self, node: A.VarRef) -> tuple[str, Optional[str]]:
        v = _VAR_NAMES.get(node.name)
        if v is None:
            raise RuneSyntaxError(f"unknown variable {node.name!r}", **_loc(node))
        return v, _KIND_OF_VAR[v]

    def _SetLit(self, node: A.SetLit) -> tuple[str, Optional[str]]:
        items = [self.expr(x)[0] for x in node.items]
        v = self.tmp()
        self.emit(f"{v} = _mkset(({', '.join(items)}{',' if len(items) == 1 else ''}))")
        return v, "set"

    def _RecordLit(self, node: A.RecordLit) -> tuple[str, Optional[str]]:
        parts = []
        for key, x in node.items:
            parts.append(f"({self.k(key)}, {self.expr(x)[0]})")
        v = self.tmp()
        self.emit(f"{v} = _mkrec(({', '.join(parts)}{',' if len(parts) == 1 else ''}))")
        return v, "record"

    def _by_kind(self, o: str, kind: Optional[str], on_entity: Callable[[], None], on_record: Callable[[], None]) -> None:
        """Emit ``on_entity`` or ``on_record`` for an operand of one of those
        kinds: directly when the kind is known, else behind a type dispatch
        (Cedar's type error for anything else)."""
        if kind == "entity":
            on_entity()
            return
        if kind == "record":
            on_record()
            return
        self.emit(f"if type({o}) is Entity:")
        self.ind += 1
        on_entity()
        self.ind -= 1
        self.emit(f"elif type({o}) is CRecord:")
        self.ind += 1
        on_record()
        self.ind -= 1
        self.emit(f"else: raise _te('one of [record, entity]', {o})")

    def _GetAttr(self, node: A.GetAttr) -> tuple[str, Optional[str]]:
        o, kind = self.expr(node.obj)
        name = self.k(node.name)
        v = self.tmp()

        def entity() -> None:
            if self.attrs is not None:
                self.emit(f"{v} = {self.attrs}.get({o}, _ER0).get({name}, MISSING)")
            else:
                self.emit(f"{v} = d.get_attr({o}, {name})")
            self.emit(f"if {v} is MISSING: raise _noattr({o}, {name})")

        def record() -> None:
            self.emit(f"{v} = {o}.get({name}, MISSING)")
            self.emit(f"if {v} is MISSING: raise _nokey({name})")

        self._by_kind(o, kind, entity, record)
        return v, None

    def _Has(self, node: A.Has) -> tuple[str, Optional[str]]:
        o, kind = self.expr(node.obj)
        name = self.k(node.name)
        v = self.tmp()
        self._by_kind(
            o,
            kind,
            lambda: self.emit(
                f"{v} = {name} in {self.attrs}.get({o}, _ER0)" if self.attrs is not None
                else f"{v} = d.get_attr({o}, {name}) is not MISSING"
            ),
            lambda: self.emit(f"{v} = {name} in {o}"),
        )
        return v, "bool"

    def _check_bool(self, x: str, kind: Optional[str]) -> None:
        if kind != "bool":
            self.emit(f"if {x} is not True and {x} is not False: raise _te('bool', {x})")

    def _Unary(self, node: A.Unary) -> tuple[str, Optional[str]]:
        x, kind = self.expr(node.operand)
        v = self.tmp()
        if node.op == "!":
            self._check_bool(x, kind)
            self.emit(f"{v} = not {x}")
            return v, "bool"
        if node.op == "-":
            self.emit(f"{v} = _neg({x})")
            return v, "long"
        raise RuneSyntaxError(f"unknown unary operator {node.op!r}", **_loc(node))

    def _Binary(self, node: A.Binary) -> tuple[str, Optional[str]]:
        op = node.op
        if op in ("&&", "||"):
            return self._logic(node)
        if op in ("==", "!="):
            return self._eq(node, op == "!=")
        if op == "in":
            return self._in(node)
        x, kx = self.expr(node.left)
        y, ky = self.expr(node.right)
        v = self.tmp()
        if op in ("<", "<=", ">", ">="):
            if kx == "long" and ky == "long":
                self.emit(f"{v} = {x} {op} {y}")
            elif kx == "long" or ky == "long":
                other = y if kx == "long" else x
                self.emit(f"if type({other}) is int: {v} = {x} {op} {y}")
                self.emit("else:")
                self.ind += 1
                self.emit(f"_num({other}); {v} = {x} {op} {y}")
                self.ind -= 1
            else:
                self.emit(f"if type({x}) is int and type({y}) is int: {v} = {x} {op} {y}")
                self.emit("else:")
                self.ind += 1
                self.emit(f"_num({x}); _num({y}); {v} = {x} {op} {y}")
                self.ind -= 1
            return v, "bool"
        if op in ("+", "-", "*"):
            verb = {"+": "add", "-": "subtract", "*": "multiply"}[op]
            if kx != "long":
                self.emit(f"_long({x})")
            if ky != "long":
                self.emit(f"_long({y})")
            self.emit(f"{v} = {x} {op} {y}")
            self.emit(f"if {v} > {INT_MAX} or {v} < {INT_MIN}: raise _ov({self.k(verb)}, {x}, {y})")
            return v, "long"
        raise RuneSyntaxError(f"unknown operator {op!r}", **_loc(node))

    def _logic(self, node: A.Binary) -> tuple[str, Optional[str]]:
        """``&&`` / ``||``: the operands of the whole chain, left to right,
        each evaluated only while the result is undecided and each required
        to be a boolean. Emitted flat (one guard per operand, not one nested
        block per operator) and collected without recursion, so a chain of
        thousands of operands compiles."""
        op = node.op
        decided = "False" if op == "&&" else "True"
        undecided = "True" if op == "&&" else "False"
        v = self.tmp()
        self.emit(f"{v} = {undecided}")
        for i, operand in enumerate(_chain(node, op)):
            if i:
                self.emit(f"if {v} is {undecided}:")
                self.ind += 1
            x, kx = self.expr(operand)
            self.emit(f"if {x} is {decided}: {v} = {decided}")
            if kx != "bool":
                self.emit(f"elif {x} is not {undecided}: raise _te('bool', {x})")
            if i:
                self.ind -= 1
        return v, "bool"

    def _eq(self, node: A.Binary, negate: bool) -> tuple[str, Optional[str]]:
        lc = const_value(node.left)
        rc = const_value(node.right)
        v = self.tmp()
        neg = "not " if negate else ""
        if rc is not NOCONST or lc is not NOCONST:
            other, c = (node.left, rc) if rc is not NOCONST else (node.right, lc)
            x, kx = self.expr(other)
            tc = type(c)
            if tc is str or tc is Entity:
                # Only a str (an Entity) equals a str (an Entity) literal, so
                # Python's == already means Cedar's == here.
                self.emit(f"{v} = {x} {'!=' if negate else '=='} {self.k(c)}")
            elif tc is bool:
                self.emit(f"{v} = {x} {'is not' if negate else 'is'} {'True' if c else 'False'}")
            elif tc is int and kx == "long":
                self.emit(f"{v} = {x} {'!=' if negate else '=='} {self.k(c)}")
            elif tc is int:
                # Nothing but a number equals a number; only bool needs care.
                self.emit(f"{v} = {neg}({x} == {self.k(c)} and type({x}) is not bool)")
            else:
                self.emit(f"{v} = {neg}_ceq({x}, {self.k(c)})")
            return v, "bool"
        x, kx = self.expr(node.left)
        y, ky = self.expr(node.right)
        if (kx is not None and kx == ky and kx in ("entity", "string", "long", "bool")) or kx in (
            "entity",
            "string",
        ) or ky in ("entity", "string"):
            # An Entity (a str) is only ever equal to an Entity (a str), so
            # Python's == is Cedar's == as soon as one side is known to be one.
            self.emit(f"{v} = {x} {'!=' if negate else '=='} {y}")
        else:
            self.emit(f"{v} = {neg}_ceq({x}, {y})")
        return v, "bool"

    def _in(self, node: A.Binary) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.left)
        v = self.tmp()
        self._emit_in(v, x, kx, node.right)
        return v, "bool"

    def _emit_in(self, v: str, x: str, kx: Optional[str], right: Any) -> None:
        """``v = x in right``: the one template of Cedar's ``in``. The left
        operand must be an entity; the right an entity (``x == t`` or an
        ancestor) or a set of entities (any of them, every element checked)."""
        if kx != "entity":
            self.emit(f"if type({x}) is not Entity: raise _te('entity', {x})")
        rc = const_value(right)
        if type(rc) is Entity:
            t = self.k(rc)
            self.emit(f"{v} = {_in_entity(x, t, self.anc)}")
            return
        if type(rc) is CSet and all(type(e) is Entity for e in rc):
            targets = tuple(rc)  # checked now, so only the search is left
            self.emit(f"{v} = {x} in {self.k(frozenset(targets))} or _in_any(d, {x}, {self.k(targets)})")
            return
        y, _ky = self.expr(right)
        self.emit(f"if type({y}) is Entity: {v} = {_in_entity(x, y, self.anc)}")
        self.emit(f"elif type({y}) is CSet: {v} = _in_set(d, {x}, {y})")
        self.emit(f"else: raise _te('one of [set, entity]', {y})")

    def _Like(self, node: A.Like) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.obj)
        m = self.k(_like_matcher(node.pattern))
        v = self.tmp()
        if kx != "string":
            self.emit(f"if type({x}) is not str: raise _te('string', {x})")
        self.emit(f"{v} = {m}({x})")
        return v, "bool"

    def _Is(self, node: A.Is) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.obj)
        v = self.tmp()
        if kx != "entity":
            self.emit(f"if type({x}) is not Entity: raise _te('entity', {x})")
        ty = self.k(node.type)
        if node.in_expr is None:
            self.emit(f"{v} = {x}[0] == {ty}")
            return v, "bool"
        # ``e is T in x`` is ``e is T && e in x`` (Cedar desugars it so):
        # the ``in`` operand is not evaluated when the type does not match.
        self.emit(f"if {x}[0] != {ty}: {v} = False")
        self.emit("else:")
        self.ind += 1
        self._emit_in(v, x, "entity", node.in_expr)
        self.ind -= 1
        return v, "bool"

    def _IfThenElse(self, node: A.IfThenElse) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.cond)
        v = self.tmp()
        self._check_bool(x, kx)
        self.emit(f"if {x}:")
        self.ind += 1
        y, ky = self.expr(node.then)
        self.emit(f"{v} = {y}")
        self.ind -= 1
        self.emit("else:")
        self.ind += 1
        z, kz = self.expr(node.else_)
        self.emit(f"{v} = {z}")
        self.ind -= 1
        return v, (ky if ky == kz else None)

    def _Method(self, node: A.Method) -> tuple[str, Optional[str]]:
        name = node.name
        want = _METHOD_ARITY.get(name)
        if want is None:
            raise RuneSyntaxError(f"unknown method {name!r}", **_loc(node))
        if len(node.args) != want:
            raise RuneSyntaxError(f"{name} takes {want} argument(s), got {len(node.args)}", **_loc(node))
        s, ks = self.expr(node.obj)
        args = [self.expr(a) for a in node.args]
        v = self.tmp()
        if ks != "set":
            self.emit(f"_set({s})")
        if name == "isEmpty":
            self.emit(f"{v} = not {s}.keys")
            return v, "bool"
        x, kx = args[0]
        if name == "contains":
            if kx in ("entity", "string", "long", "set", "record"):
                self.emit(f"{v} = {x} in {s}.keys")
            else:
                self.emit(f"{v} = _vkey({x}) in {s}.keys")
            return v, "bool"
        if kx != "set":
            self.emit(f"_set({x})")
        if name == "containsAll":
            self.emit(f"{v} = {x}.keys <= {s}.keys")
        else:
            self.emit(f"{v} = not {s}.keys.isdisjoint({x}.keys)")
        return v, "bool"

    def _RelCall(self, node: A.RelCall) -> tuple[str, Optional[str]]:
        rel = self.k(node.name)
        mask = tuple(type(a) is not A.Wildcard for a in node.args)
        exprs = [self.expr(a) if b else ("None", "none") for a, b in zip(node.args, mask)]
        args = [x for x, _ in exprs]
        # Probes use key form (``row_key``): only values that may be
        # booleans or floats need converting.
        keyed = [x if k in _SAFE_KEY_KINDS else f"_rk({x})" for x, k in exprs]
        row = f"({', '.join(keyed)}{',' if len(keyed) == 1 else ''})"
        v = self.tmp()
        var = _REQUEST_VAR_RELATIONS.get(node.name)
        if var is not None and len(args) == 1:
            # principal(X), action(X), resource(X): answered from the request.
            self.emit(f"{v} = True" if not mask[0] else f"{v} = {args[0]} == {var}")
            return v, "bool"
        if node.name == "context" and len(args) == 2:
            self.emit(f"{v} = _ctxrel(c, {args[0]}, {args[1]})")
            return v, "bool"
        self.relations.add(node.name)
        if not all(mask):
            self.patterns.add((node.name, mask))
        how = self.link.relation(node.name, mask) if self.link is not None else None
        if how is None:
            self.emit(f"{v} = d.{'contains' if all(mask) else 'matches'}({rel}, {row})")
        elif how[0] == "rows":
            self.emit(f"{v} = {row} in {self.k(how[1])}")
        elif how[0] == "probe":
            self.emit(f"{v} = {self.k(how[1])}({row})")
        elif how[0] == "proj":
            bound = [x for x, b in zip(keyed, mask) if b]
            self.emit(f"{v} = ({', '.join(bound)}{',' if len(bound) == 1 else ''}) in {self.k(how[1])}")
        elif how[0] == "plan" and len(how) > 3 and how[3] is not None:
            # a straight-line plan pasted in (request_plans/paste.py): its body in a one-pass loop
            args = [f"{v}_a{j}" for j in range(sum(mask))]
            self.emit("; ".join(f"{a} = {x}" for a, x in zip(args, (x for x, b in zip(keyed, mask) if b))) or "pass")
            local = self.link.context_local if self.link is not None else None
            pasted = how[3](f"{v}_", args, v, self.k, local) if local is not None else None
            if pasted is not None:  # without the per-request state (see Link)
                self.emit("while True:")
                self.lines += ["    " * (self.ind + 1) + line for line in pasted]
                return v, "bool"
            self.emit("if d.budget >= 0:")
            self.emit("    while True:")
            self.lines += ["    " * (self.ind + 2) + line for line in how[3](f"{v}_", args, v, self.k)]
            self.emit(f"else: {v} = d.general({rel}, {row})")
        elif how[0] == "plan":
            call_args = "".join(f", {x}" for x, b in zip(keyed, mask) if b)
            self.emit("if d.budget >= 0:")
            self.emit(f"    try: {v} = {self.k(how[1])}(d{call_args})")
            self.emit(f"    except {self.k(how[2])}: d.budget = -1; {v} = d.general({rel}, {row})")
            self.emit(f"else: {v} = d.general({rel}, {row})")
        else:  # pragma: no cover - the engine's link answers one of the above
            raise ValueError(f"unknown link {how[0]!r}")
        return v, "bool"

    # -- conditions and the whole policy ---------------------------------------

    def cond(self, node: Any, when: bool) -> None:
        """Emit ``return False`` unless the condition holds.

        ``when {A && B}`` is ``when {A} when {B}``, ``unless {A || B}`` is
        ``unless {A} unless {B}`` and ``when {!X}`` is ``unless {X}``, with
        the same errors in the same order; splitting them (with a work list,
        not recursion) keeps the generated code flat.
        """
        todo: list[tuple[Any, bool]] = [(node, when)]
        while todo:
            n, w = todo.pop()
            t = type(n)
            if t is A.Binary and ((w and n.op == "&&") or (not w and n.op == "||")):
                todo.append((n.right, w))
                todo.append((n.left, w))
                continue
            if t is A.Unary and n.op == "!":
                todo.append((n.operand, not w))
                continue
            x, kx = self.expr(n)
            if kx == "bool":
                self.emit(f"if {'not ' if w else ''}{x}: {self.reject}")
                continue
            good, bad = ("True", "False") if w else ("False", "True")
            self.emit(f"if {x} is not {good}:")
            self.ind += 1
            self.emit(f"if {x} is {bad}: {self.reject}")
            self.emit(f"raise _te('bool', {x})")
            self.ind -= 1

    def scope_in(self, var: str, target: Entity) -> None:
        t = self.k(target)
        self.emit(f"if not ({_in_entity(var, t, self.anc)}): {self.reject}")

    def build(self, result: str = "True", name: str = "test") -> Callable:
        """Compile the emitted lines as ``def <name>(p, a, r, c, d)`` returning ``result``."""
        src = f"def {name}(p, a, r, c, d):\n" + "\n".join(self.lines + ["    return " + result]) + "\n"
        glb = dict(_HELPERS)
        glb.update(self.consts)
        with warnings.catch_warnings():
            # The generated text is ours; never let a warnings filter (-W
            # error) turn a harmless compile warning into a load failure.
            warnings.simplefilter("ignore")
            code = compile(src, f"<policy {self.policy_id}>", "exec")
        exec(code, glb)
        fn: Callable = glb.pop(name)  # not kept in its own globals: no cycle, freed by reference counting
        fn.__rune_source__ = src  # type: ignore[attr-defined]  # the generated function carries its source
        return fn


class PolicyTest(NamedTuple):
    """One policy compiled: its test function and what it reads.

    ``test(p, a, r, c, d)`` runs the parts of the scope the index does not
    guarantee, then the conditions in source order; it returns a bool or
    raises ``RuneEvalError``. ``relations`` are the relations it calls,
    ``patterns`` the (relation, bound-columns mask) of calls with ``_``.
    """

    test: Callable[..., bool]
    relations: frozenset
    patterns: frozenset
    source: str


def _emit_policy(g: _CodeGen, policy: A.Policy) -> None:
    """The body of a policy's test: the scope checks the index leaves, then
    the conditions (each failing one runs ``g.reject``)."""
    p, r = policy.principal, policy.resource
    # principal ``==`` and the type of ``is`` are guaranteed by the index.
    if p.kind in ("in", "is") and p.entity is not None:
        g.scope_in("p", p.entity)
    if r.kind == "eq":
        g.emit(f"if r != {g.k(r.entity)}: {g.reject}")
    elif r.kind in ("in", "is") and r.entity is not None:
        g.scope_in("r", r.entity)
    for c in policy.conditions:
        g.cond(c.expr, c.kind == "when")


def policy_block(policy: A.Policy, policy_id: str, link: Optional[Link], prefix: str, indent: int) -> tuple[list[str], dict]:
    """A policy's test as lines of code to paste into a larger function
    (``policy/fused.py``): the same code as ``generate_test``'s, at
    ``indent``, names starting with ``prefix``, a failing condition running
    ``break`` (the caller wraps the block in a one-pass loop). Returns the
    lines and the constants they name."""
    g = _CodeGen(policy_id, link, prefix, indent)
    _emit_policy(g, policy)
    return g.lines, g.consts


def generate_test(policy: A.Policy, policy_id: str, link: Optional[Link] = None) -> PolicyTest:
    """Generate and compile the test function of one policy (``link``: read
    an engine's data directly, see ``Link``).

    Raises ``RuneSyntaxError`` (located) for constructs it does not know and
    ``RuneLimitError`` (``max_nesting``) when the policy is nested too deeply
    for Python to compile; never falls back to anything else.
    """
    g = _CodeGen(policy_id, link)
    try:
        _emit_policy(g, policy)
        fn = g.build()
    except (SyntaxError, RecursionError, MemoryError):
        raise RuneLimitError(
            f"policy {policy_id!r}: expression nested too deeply to compile", "max_nesting", **_loc(policy)
        ) from None
    return PolicyTest(fn, frozenset(g.relations), frozenset(g.patterns), fn.__rune_source__)  # type: ignore[attr-defined]


def generate_expression(node: Any, policy_id: str) -> Callable[..., Any]:
    """``f(p, a, r, c, d)`` computing the value of one expression of a policy
    (or raising ``RuneEvalError``), with the same generated code as the
    policy's test; explanations use it to show the values a policy compared."""
    g = _CodeGen(policy_id)
    try:
        x, _kind = g.expr(node)
        return g.build(x, "expression")
    except (SyntaxError, RecursionError, MemoryError):
        raise RuneLimitError(
            f"policy {policy_id!r}: expression nested too deeply to compile", "max_nesting", **_loc(node)
        ) from None
