"""A reference policy evaluator: the oracle of the generated code.

The production engine compiles each policy to generated Python
(``rune_fast.policy.codegen``). This module is the former closure-tree
backend, kept out of the package on purpose: one closure per AST node, no
static kind analysis, no specialisation, written straight from the
semantics in docs/policies.md. Tests compile bundles with both and require
identical decisions, reasons and errors (``generate`` has the signature of
``codegen.generate_test``, so it can be passed to ``compile_policies`` or to
``Engine(policy_generator=...)``).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Optional

from rune_fast.errors import RuneLimitError, RuneSyntaxError
from rune_fast.lang import ast as A
from rune_fast.policy.codegen import NOCONST as _NOCONST
from rune_fast.policy.codegen import PolicyTest, _loc
from rune_fast.policy.data import PolicyData
from rune_fast.policy.values import MISSING, CRecord, CSet, cedar_eq
from rune_fast.policy.values import eval_error as _err
from rune_fast.policy.values import overflow_error as _overflow
from rune_fast.policy.values import type_error as _type_err
from rune_fast.values import INT_MAX, INT_MIN, Entity
from rune_fast.values import value_key as _vkey
from rune_fast.values import value_key as row_key

_VARS = ("principal", "action", "resource", "context")


def _like_matcher(pattern: tuple) -> Callable[[str], bool]:
    """Glob matching by dynamic programming over (pattern item, position):
    slow and obviously correct (``A.LIKE_WILDCARD`` matches any run)."""
    items: list = []
    for part in pattern:
        if part is A.LIKE_WILDCARD:
            items.append(None)
        else:
            items.extend(part)

    def match(s: str) -> bool:
        reach = {0}
        for it in items:
            if it is None:
                lo = min(reach) if reach else len(s) + 1
                reach = set(range(lo, len(s) + 1))
            else:
                reach = {i + 1 for i in reach if i < len(s) and s[i] == it}
        return len(s) in reach

    return match


def _ctx_rel(c: CRecord, key: Any, value: Any) -> bool:
    """``context(K, V)``: top-level scalar entries, matched by kind and value."""
    for k, v in c.items():
        if type(v) not in (str, int, float, bool, Entity):
            continue
        if key is not None and k != key:
            continue
        if value is None or (type(v) is type(value) and v == value):
            return True
    return False


class EvalRequest:
    """One request as the compiled closures see it (attribute access is cheap)."""

    __slots__ = ("principal", "action", "resource", "context", "data")

    def __init__(self, principal: Entity, action: Entity, resource: Entity, context: CRecord, data: PolicyData) -> None:
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
        self.data = data


Fn = Callable[[EvalRequest], Any]


class _Compiler:
    """Turns one policy's expressions into closures; collects what they use."""

    def __init__(self, policy_id: str) -> None:
        self.policy_id = policy_id
        self.relations: set[str] = set()
        self.patterns: set[tuple[str, tuple[bool, ...]]] = set()

    # -- constants ---------------------------------------------------------

    def const(self, node: Any) -> Any:
        """The value of a literal subtree, or ``_NOCONST``."""
        t = type(node)
        if t is A.Lit:
            v = node.value
            if type(v) is int and not (INT_MIN <= v <= INT_MAX):
                return _NOCONST
            if type(v) is float:
                return _NOCONST
            return v
        if t is A.Unary and node.op == "-" and type(node.operand) is A.Lit and type(node.operand.value) is int:
            v = -node.operand.value
            if INT_MIN <= v <= INT_MAX:
                return v
            return _NOCONST
        if t is A.SetLit:
            vals = [self.const(x) for x in node.items]
            if any(v is _NOCONST for v in vals):
                return _NOCONST
            return CSet(vals)
        if t is A.RecordLit:
            out = CRecord()
            for k, x in node.items:
                v = self.const(x)
                if v is _NOCONST:
                    return _NOCONST
                dict.__setitem__(out, k, v)
            return out
        return _NOCONST

    # -- dispatcher ----------------------------------------------------------

    def expr(self, node: Any) -> Fn:
        c = self.const(node)
        if c is not _NOCONST:
            return lambda q, c=c: c
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise RuneSyntaxError(f"unsupported expression {type(node).__name__}", **_loc(node))
        return method(node)

    # -- leaves --------------------------------------------------------------

    def _Lit(self, node: A.Lit) -> Fn:
        v = node.value
        if type(v) is int:
            raise RuneSyntaxError(f"integer literal {v} does not fit in 64 bits", **_loc(node))
        if type(v) is float:
            raise RuneSyntaxError("policies have no floating-point literals", **_loc(node))
        return lambda q: v

    def _VarRef(self, node: A.VarRef) -> Fn:
        if node.name not in _VARS:
            raise RuneSyntaxError(f"unknown variable {node.name!r}", **_loc(node))
        return attrgetter(node.name)

    def _SetLit(self, node: A.SetLit) -> Fn:
        items = tuple(self.expr(x) for x in node.items)

        def f(q):
            return CSet._from_keys(frozenset([_vkey(g(q)) for g in items]))

        return f

    def _RecordLit(self, node: A.RecordLit) -> Fn:
        items = tuple((k, self.expr(x)) for k, x in node.items)

        def f(q):
            out = CRecord()
            for k, g in items:
                dict.__setitem__(out, k, g(q))
            return out

        return f

    # -- member access -------------------------------------------------------

    def _GetAttr(self, node: A.GetAttr) -> Fn:
        name = node.name
        obj = self.expr(node.obj)

        def f(q):
            o = obj(q)
            t = type(o)
            if t is Entity:
                v = q.data.get_attr(o, name)
                if v is MISSING:
                    raise _err(f"`{o}` does not have the attribute `{name}`")
                return v
            if t is CRecord:
                v = o.get(name, MISSING)
                if v is MISSING:
                    raise _err(f"record does not have the attribute `{name}`")
                return v
            raise _type_err("one of [record, entity]", o)

        return f

    def _Has(self, node: A.Has) -> Fn:
        name = node.name
        obj = self.expr(node.obj)

        def f(q):
            o = obj(q)
            t = type(o)
            if t is Entity:
                return q.data.get_attr(o, name) is not MISSING
            if t is CRecord:
                return name in o
            raise _type_err("one of [record, entity]", o)

        return f

    # -- operators -------------------------------------------------------------

    def _Unary(self, node: A.Unary) -> Fn:
        g = self.expr(node.operand)
        if node.op == "!":

            def f_not(q):
                v = g(q)
                if v is True:
                    return False
                if v is False:
                    return True
                raise _type_err("bool", v)

            return f_not
        if node.op == "-":

            def f_neg(q):
                v = g(q)
                if type(v) is not int:
                    raise _type_err("long", v)
                if v == INT_MIN:
                    raise _overflow("negate", v)
                return -v

            return f_neg
        raise RuneSyntaxError(f"unknown unary operator {node.op!r}", **_loc(node))

    def _Binary(self, node: A.Binary) -> Fn:
        op = node.op
        if op == "&&":
            return self._and(node)
        if op == "||":
            return self._or(node)
        if op == "==":
            return self._eq(node)
        if op == "!=":
            eq = self._eq(node)
            return lambda q: not eq(q)
        if op == "in":
            return self._in(node)
        left = self.expr(node.left)
        right = self.expr(node.right)
        if op in ("<", "<=", ">", ">="):
            return self._cmp(op, left, right)
        if op in ("+", "-", "*"):
            return self._arith(op, left, right)
        raise RuneSyntaxError(f"unknown operator {op!r}", **_loc(node))

    def _and(self, node: A.Binary) -> Fn:
        return self._short_circuit(node, False)

    def _or(self, node: A.Binary) -> Fn:
        return self._short_circuit(node, True)

    def _short_circuit(self, node: A.Binary, decided: bool) -> Fn:
        """``&&`` (``decided=False``) or ``||`` (``decided=True``), one closure.

        The two differ only in which left value decides the result without
        evaluating the right operand; in both, each operand that is evaluated
        must be a boolean (Cedar type error otherwise).
        """
        # A long chain ``a || b || c ...`` parses as a left-leaning tree;
        # walk its spine iteratively and compile one flat loop, so that
        # neither compiling nor evaluating it recurses once per operand.
        operands = []
        n: Any = node
        while isinstance(n, A.Binary) and n.op == node.op:
            operands.append(n.right)
            n = n.left
        operands.append(n)
        fns = [self.expr(o) for o in reversed(operands)]
        undecided = not decided
        if len(fns) == 2:
            left, right = fns

            def f(q):
                a = left(q)
                if a is decided:
                    return decided
                if a is not undecided:
                    raise _type_err("bool", a)
                b = right(q)
                if b is True or b is False:
                    return b
                raise _type_err("bool", b)

            return f

        def chain(q):
            for g in fns:
                a = g(q)
                if a is decided:
                    return decided
                if a is not undecided:
                    raise _type_err("bool", a)
            return undecided

        return chain

    def _eq(self, node: A.Binary) -> Fn:
        lc = self.const(node.left)
        rc = self.const(node.right)
        if lc is not _NOCONST and rc is _NOCONST:
            other, c = node.right, lc
        elif rc is not _NOCONST:
            other, c = node.left, rc
        else:
            left = self.expr(node.left)
            right = self.expr(node.right)
            return lambda q: cedar_eq(left(q), right(q))
        g = self.expr(other)
        tc = type(c)
        if tc is str or tc is Entity:
            # Only a str (resp. Entity) can equal a str (resp. Entity) literal:
            # Python's == already has Cedar's meaning here.
            return lambda q: g(q) == c
        if tc is bool:
            return lambda q: g(q) is c

        return lambda q: cedar_eq(g(q), c)

    def _in(self, node: A.Binary) -> Fn:
        left = self.expr(node.left)
        rc = self.const(node.right)
        if type(rc) is Entity:
            target = rc

            def f_ent(q):
                a = left(q)
                if type(a) is not Entity:
                    raise _type_err("entity", a)
                return a == target or q.data.is_in(a, target)

            return f_ent
        if type(rc) is CSet and all(type(x) is Entity for x in rc):
            targets = tuple(rc)
            tset = frozenset(targets)

            def f_set(q):
                a = left(q)
                if type(a) is not Entity:
                    raise _type_err("entity", a)
                if a in tset:
                    return True
                is_in = q.data.is_in
                for t in targets:
                    if is_in(a, t):
                        return True
                return False

            return f_set
        right = self.expr(node.right)

        def f(q):
            a = left(q)
            b = right(q)
            if type(a) is not Entity:
                raise _type_err("entity", a)
            tb = type(b)
            if tb is Entity:
                return a == b or q.data.is_in(a, b)
            if tb is CSet:
                elems = list(b)
                for x in elems:
                    if type(x) is not Entity:
                        raise _type_err("entity", x)
                is_in = q.data.is_in
                for x in elems:
                    if a == x or is_in(a, x):
                        return True
                return False
            raise _type_err("one of [set, entity]", b)

        return f

    def _cmp(self, op: str, left: Fn, right: Fn) -> Fn:
        def check(a, b):
            ta = type(a)
            tb = type(b)
            if not (ta is int or ta is float):
                raise _type_err("long", a)
            if not (tb is int or tb is float):
                raise _type_err("long", b)

        if op == "<":

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a < b
                check(a, b)
                return a < b

        elif op == "<=":

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a <= b
                check(a, b)
                return a <= b

        elif op == ">":

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a > b
                check(a, b)
                return a > b

        else:

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a >= b
                check(a, b)
                return a >= b

        return f

    def _arith(self, op: str, left: Fn, right: Fn) -> Fn:
        verb = {"+": "add", "-": "subtract", "*": "multiply"}[op]
        if op == "+":
            def calc(a, b):
                return a + b
        elif op == "-":
            def calc(a, b):
                return a - b
        else:
            def calc(a, b):
                return a * b

        def f(q):
            a = left(q)
            b = right(q)
            if type(a) is not int:
                raise _type_err("long", a)
            if type(b) is not int:
                raise _type_err("long", b)
            r = calc(a, b)
            if r > INT_MAX or r < INT_MIN:
                raise _overflow(verb, a, b)
            return r

        return f

    def _Like(self, node: A.Like) -> Fn:
        g = self.expr(node.obj)
        m = _like_matcher(node.pattern)

        def f(q):
            s = g(q)
            if type(s) is not str:
                raise _type_err("string", s)
            return m(s)

        return f

    def _Is(self, node: A.Is) -> Fn:
        g = self.expr(node.obj)
        ty = node.type
        if node.in_expr is None:

            def f(q):
                v = g(q)
                if type(v) is not Entity:
                    raise _type_err("entity", v)
                return v.type == ty

            return f
        # ``e is T in x`` is ``e is T && e in x``: x is not evaluated when the
        # type does not match (as in Cedar, which desugars it that way).
        in_fn = self._in(A.Binary("in", node.obj, node.in_expr, node.loc))

        def f_in(q):
            v = g(q)
            if type(v) is not Entity:
                raise _type_err("entity", v)
            if v.type != ty:
                return False
            return in_fn(q)

        return f_in

    def _IfThenElse(self, node: A.IfThenElse) -> Fn:
        c = self.expr(node.cond)
        t = self.expr(node.then)
        e = self.expr(node.else_)

        def f(q):
            v = c(q)
            if v is True:
                return t(q)
            if v is False:
                return e(q)
            raise _type_err("bool", v)

        return f

    def _Method(self, node: A.Method) -> Fn:
        name = node.name
        obj = self.expr(node.obj)
        args = tuple(self.expr(a) for a in node.args)
        want = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}.get(name)
        if want is None:
            raise RuneSyntaxError(f"unknown method {name!r}", **_loc(node))
        if len(args) != want:
            raise RuneSyntaxError(f"{name} takes {want} argument(s), got {len(args)}", **_loc(node))
        if name == "isEmpty":

            def f_empty(q):
                s = obj(q)
                if type(s) is not CSet:
                    raise _type_err("set", s)
                return not s.keys

            return f_empty
        arg = args[0]
        if name == "contains":

            def f_contains(q):
                s = obj(q)
                x = arg(q)
                if type(s) is not CSet:
                    raise _type_err("set", s)
                return _vkey(x) in s.keys

            return f_contains
        if name == "containsAll":

            def f_all(q):
                s = obj(q)
                x = arg(q)
                if type(s) is not CSet:
                    raise _type_err("set", s)
                if type(x) is not CSet:
                    raise _type_err("set", x)
                return x.keys <= s.keys

            return f_all

        def f_any(q):
            s = obj(q)
            x = arg(q)
            if type(s) is not CSet:
                raise _type_err("set", s)
            if type(x) is not CSet:
                raise _type_err("set", x)
            return not s.keys.isdisjoint(x.keys)

        return f_any

    def _RelCall(self, node: A.RelCall) -> Fn:
        name = node.name
        mask = tuple(type(a) is not A.Wildcard for a in node.args)
        args = tuple(self.expr(a) if b else None for a, b in zip(node.args, mask))
        var = _REQUEST_VAR_RELATIONS.get(name)
        if var is not None and len(args) == 1:
            if not mask[0]:
                return lambda q: True
            get = attrgetter(_VAR_FULL[var])
            a0 = args[0]
            return lambda q: a0(q) == get(q)
        if name == "context" and len(args) == 2:
            k0, v0 = args
            return lambda q: _ctx_rel(q.context, None if k0 is None else k0(q), None if v0 is None else v0(q))
        self.relations.add(name)
        if all(mask):
            return lambda q: q.data.contains(name, tuple([row_key(g(q)) for g in args]))
        self.patterns.add((name, mask))
        return lambda q: q.data.matches(name, tuple([None if g is None else row_key(g(q)) for g in args]))


_REQUEST_VAR_RELATIONS = {"principal": "p", "action": "a", "resource": "r"}
_VAR_FULL = {"p": "principal", "a": "action", "r": "resource"}
_SCALARS = (str, int, float, bool, Entity)


def _scope_in_check(var: str, c: A.ScopeConstraint) -> Optional[Fn]:
    if c.kind not in ("in", "is") or c.entity is None:
        return None
    target = c.entity
    get = attrgetter(var)

    def check(q):
        e = get(q)
        return e == target or q.data.is_in(e, target)

    return check


def _make_test(checks: tuple, conds: tuple) -> Fn:
    """The closure backend's per-policy test: scope residue, then conditions."""

    def test(q):
        for c in checks:
            if not c(q):
                return False
        for fn, when in conds:
            v = fn(q)
            if v is True:
                if not when:
                    return False
            elif v is False:
                if when:
                    return False
            else:
                raise _type_err("bool", v)
        return True

    return test



def generate(policy: A.Policy, policy_id: str) -> PolicyTest:
    """The reference counterpart of ``codegen.generate_test``."""
    comp = _Compiler(policy_id)
    p, r = policy.principal, policy.resource
    checks: list[Fn] = []
    pin = _scope_in_check("principal", p)
    if pin is not None:
        checks.append(pin)
    if r.kind == "eq":
        ent = r.entity
        checks.append(lambda q: q.resource == ent)
    rin = _scope_in_check("resource", r)
    if rin is not None:
        checks.append(rin)
    try:
        conds = tuple((comp.expr(c.expr), c.kind == "when") for c in policy.conditions)
    except RecursionError:
        raise RuneLimitError(
            f"policy {policy_id!r}: expression nested too deeply to compile", "max_nesting", **_loc(policy)
        ) from None
    inner = _make_test(tuple(checks), conds)

    def test(p, a, r, c, d):
        return inner(EvalRequest(p, a, r, c, d))

    return PolicyTest(test, frozenset(comp.relations), frozenset(comp.patterns), "")
