"""Code generation of the per-request plans: one Python function per
(relation, bound positions, mode), see the package docstring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from ..lang import ast as A
from ..lang.safety import (
    ROLE_AGGREGATE,
    ROLE_ASSIGN,
    ROLE_ATOM,
    ROLE_FILTER,
    ROLE_METHOD,
    ROLE_NEGATION,
    BodyInfo,
    LiteralInfo,
)
from ..datalog.compiler import string_test
from ..like import WILDCARD, glob_matcher, pattern_from_glob
from ..values import INT_MAX, INT_MIN
from ..values import FloatKey as _FloatKey
from ..values import value_key as row_key
from .ops import Fallback, Unsupported, _agg, _ar, _cmp

if TYPE_CHECKING:  # pragma: no cover
    from . import RequestPlans

__all__ = ["FunctionGen", "Names", "Snapshot", "Unsupported"]

_REQUEST_ENTITY = {"principal": "p", "action": "a", "resource": "r"}
_CMP_OPS = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CMP_CODES = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}
_ARITH_CODES = {"+": 1, "-": 2, "*": 3, "/": 4, "%": 5}
_AGG_CODES = {"sum": 1, "min": 2, "max": 3, "mean": 4}
_MEMO = "#memo#"  # marks the generated lines that exist only when a plan memoizes
#: A rule with at most this many literals, alone in its relation, is copied
#: into the plans that read it instead of being called.
INLINE_LITERALS = 6
#: A relation of 2 to this many such rules is copied too (``path_zone(P, Z)``
#: with one rule per zone), at most ``INLINE_NESTING`` copies deep: a copied
#: call of several rules repeats the rest of the caller's body once per rule.
INLINE_RULES = 4
INLINE_NESTING = 2


class Names:
    """Module-level names of one generated source (constants, indexes, functions)."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "_cmp": _cmp, "_ar": _ar, "_agg": _agg, "_st": string_test, "_FB": Fallback,
        }
        self._consts: dict[tuple, str] = {}

    def const(self, value: Any) -> str:
        k = row_key(value)
        tag = (type(k), k if type(k) is not _FloatKey else k[0], type(value))
        name = self._consts.get(tag)
        if name is None:
            name = self._consts[tag] = f"K{len(self._consts)}"
            self.ns[name] = k
        return name


class Snapshot:
    """A request-independent relation as Python indexes over key-form rows."""

    def __init__(self, rows: list[tuple], arity: int) -> None:
        self.rows = rows
        self.arity = arity
        self.full: Optional[frozenset] = None
        self.indexes: dict[tuple, tuple[dict, bool]] = {}

    def full_set(self) -> frozenset:
        if self.full is None:
            if self.arity == 1:
                self.full = frozenset(r[0] for r in self.rows)
            else:
                self.full = frozenset(self.rows)
        return self.full

    def index(self, cols: tuple) -> tuple[dict, bool]:
        """key -> rows (or -> the row when every key has one: ``unique``)."""
        got = self.indexes.get(cols)
        if got is None:
            ix: dict = {}
            if len(cols) == 1:
                c = cols[0]
                for row in self.rows:
                    ix.setdefault(row[c], []).append(row)
            else:
                for row in self.rows:
                    ix.setdefault(tuple([row[c] for c in cols]), []).append(row)
            unique = all(len(v) == 1 for v in ix.values())
            if unique:
                ix = {k: v[0] for k, v in ix.items()}
            got = self.indexes[cols] = (ix, unique)
        return got


class FunctionGen:
    """Generates one function: every rule of ``rel`` for one binding mask."""

    def __init__(self, plans: RequestPlans, rel: str, mask: tuple, mode: str, name: str) -> None:
        self.plans = plans
        self.names = plans._names
        self.rel = rel
        self.mask = mask
        self.mode = mode
        self.name = name
        self.lines: list[str] = []
        self.vars: dict[str, str] = {}
        self.tmp = 0
        self.uses_cx = False
        self.cx_reads: dict[str, str] = {}  # constant context key -> local read once at the top
        self.costly = False   # a loop or a call of a costly plan: memoize per request
        self.scope = ""       # prefix of the variables of an inlined rule
        self.deps: set = set()  # plans this one calls (passed as keyword-only defaults)
        self.nesting = 0      # copies of several-rule relations (or negations) being emitted

    # -- helpers
    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def var(self, name: str) -> str:
        name = self.scope + name
        v = self.vars.get(name)
        if v is None:
            v = self.vars[name] = f"v{len(self.vars)}"
        return v

    def fresh(self, prefix: str) -> str:
        self.tmp += 1
        return f"{prefix}{self.tmp}"

    def term(self, t: Any) -> str:
        if isinstance(t, A.Const):
            return self.names.const(t.value)
        return self.var(t.name)

    def expr(self, e: Any) -> str:
        if isinstance(e, A.BinOp):
            return f"_ar({_ARITH_CODES[e.op]}, {self.expr(e.left)}, {self.expr(e.right)})"
        return self.term(e)

    def static(self, name: str) -> Snapshot:
        if name.startswith("\0given:"):
            if name not in self.plans._snapshots:
                rows = self.plans.static_rows_for(name) or []
                keyed = list({tuple([row_key(v) for v in row]): None for row in rows})
                self.plans._snapshots[name] = Snapshot(keyed, len(keyed[0]) if keyed else 0)
            snap = self.plans._snapshots[name]
            assert snap is not None
            return snap
        return self.plans._snapshot(name)

    def context_value(self, kexpr: str) -> str:
        """The code of ``cx.get(kexpr)``: for a constant key, a local read
        once at the top of the function (rules of one relation often read the
        same context entry: ``req_path(P)`` copied into each of them)."""
        if kexpr in self.names.ns and kexpr[:1] == "K" and kexpr[1:].isdigit():  # a Names.const
            local = self.cx_reads.get(kexpr)
            if local is None:
                local = self.cx_reads[kexpr] = f"c{kexpr}"
            return local
        return f"cx.get({kexpr})"

    def like_test(self, v: str, glob: str) -> str:
        """The code of ``string_test("like", glob, v)``: one string method
        for the common shapes (``*lit*``, ``lit*``, ``*lit``, ``lit``), the
        glob's matcher, compiled once, otherwise (``rune_fast/like.py``)."""
        pat = pattern_from_glob(glob)
        if pat == (WILDCARD,):
            return f"type({v}) is str"
        if len(pat) == 1:
            return f"type({v}) is str and {v} == {pat[0]!r}"
        if len(pat) == 2 and pat[0] is WILDCARD:
            return f"type({v}) is str and {v}.endswith({pat[1]!r})"
        if len(pat) == 2 and pat[1] is WILDCARD:
            return f"type({v}) is str and {v}.startswith({pat[0]!r})"
        if len(pat) == 3 and pat[0] is WILDCARD and pat[2] is WILDCARD:
            return f"type({v}) is str and {pat[1]!r} in {v}"
        return f"type({v}) is str and {self.bind_name(glob_matcher(glob), 'L')}({v})"

    def bind_name(self, obj: Any, prefix: str) -> str:
        n = f"{prefix}{len(self.names.ns)}"
        self.names.ns[n] = obj
        return n

    # -- the function
    def source(self) -> str:
        bound_args = [f"a{i}" for i, b in enumerate(self.mask) if b]
        self.emit(0, "")  # the def line, once the callees are known
        if self.mode == "rows":
            self.emit(1, "out = set()")
        for rule, info in self.plans.rules_of(self.rel):
            self.rule(rule, info)
        if self.mode == "rows":
            self.emit(1, _MEMO + "memo[key] = out")
            self.emit(1, "return out")
        else:
            self.emit(1, _MEMO + "memo[key] = False")
            self.emit(1, "return False")
        # Answers are memoized for the request only when computing them
        # again could cost more than the memo (a loop or a costly call).
        memoize = self.costly
        if not memoize:
            self.plans._cheap.add(self.name)
        head = []
        if memoize:
            memo_key = f"({self.name!r}, {', '.join(bound_args)},)" if bound_args else repr(self.name)
            head += ["    memo = ev.memo", "    if memo is None:", "        memo = ev.memo = {}",
                     f"    key = {memo_key}", "    hit = memo.get(key)",
                     "    if hit is not None:", "        return hit"]
        if self.uses_cx:
            head += ["    cx = ev.cx", "    if cx is None:", "        cx = ev.load_cx()"]
            head += [f"    {local} = cx.get({key})" for key, local in self.cx_reads.items()]
        kw = "".join(f", {d}=None" for d in sorted(self.deps))
        params = "".join(", " + a for a in bound_args) + (", *" + kw if kw else "")
        lines = [f"def {self.name}(ev{params}):"] + head
        for line in self.lines[1:]:
            if _MEMO in line:
                if not memoize:
                    continue
                line = line.replace(_MEMO, "")
            lines.append(line)
        return "\n".join(lines) + "\n"

    def rule(self, rule: A.Rule, info: BodyInfo) -> None:
        _check_single_binders(info)
        self.vars = {}
        head = rule.head.args
        depth = 1
        bound: set[str] = set()
        post: list[tuple[str, str]] = []  # (var, arg): strict equality checked at the head
        for i, t in enumerate(head):
            if not self.mask[i]:
                continue
            arg = f"a{i}"
            if isinstance(t, A.Const):
                self.emit(depth, f"if {arg} == {self.term(t)}:")
                depth += 1
            elif isinstance(t, A.Var):
                if t.name in bound:
                    self.emit(depth, f"if {arg} == {self.var(t.name)}:")
                    depth += 1
                elif t.name in info.positive:
                    self.emit(depth, f"{self.var(t.name)} = {arg}")
                    bound.add(t.name)
                else:
                    post.append((t.name, arg))
            else:
                raise Unsupported("wildcard in a head")

        def terminal(d: int, bound_now: set) -> None:
            for v, arg in post:
                self.emit(d, f"if {self.var(v)} == {arg}:")
                d += 1
            if self.mode == "exists":
                self.emit(d, _MEMO + "memo[key] = True")
                self.emit(d, "return True")
            else:
                self._budget(d, "1")  # a derived row counts against the budget too
                cols = ", ".join(self.term(t) for t in head)
                self.emit(d, f"out.add(({cols}{',' if len(head) == 1 else ''}))")

        self.body(info, bound, depth, terminal, counting=False)

    def body(self, info: BodyInfo, bound: set, depth: int, terminal: Callable[[int, set], None], counting: bool) -> None:
        steps = _schedule(info, set(bound), self.plans.few)
        self.steps(steps, 0, set(bound), depth, terminal, counting)
        self.emit(depth, "pass")

    def steps(self, steps: list, i: int, bound: set, depth: int, terminal: Callable, counting: bool) -> None:
        if i == len(steps):
            terminal(depth, bound)
            return
        li = steps[i]
        role = li.role
        if role == ROLE_ATOM:
            callee = self._inlinable(li.literal, counting)
            if callee is not None:
                self.inline(li.literal, callee, bound, depth, None,
                            lambda d, b: self.steps(steps, i + 1, b, d, terminal, counting))
                return
            several = self._inlinable_rules(li.literal, counting)
            if several is not None:
                # one copy of the rest of the body per rule, each from the
                # variables bound so far (what calling the union would give)
                self.nesting += 1
                for callee in several:
                    self.inline(li.literal, callee, set(bound), depth, None,
                                lambda d, b: self.steps(steps, i + 1, b, d, terminal, counting))
                self.nesting -= 1
                return
            depth = self.atom(li.literal, bound, depth, counting)
        elif role == ROLE_NEGATION:
            atom = li.literal.atom
            several = self._inlinable_rules(atom, counting, negated=bound)
            if several is not None:
                depth = self.inline_negation(atom, several, bound, depth)
            else:
                depth = self.negation(atom, bound, depth)
        elif role == ROLE_FILTER:
            lit = li.literal
            lhs = self.operand(lit.left, depth)
            rhs = self.operand(lit.right, depth)
            code = _CMP_CODES[lit.op]
            # integers inline, anything else (None: failed arithmetic) through _cmp
            self.emit(depth, f"if ({lhs} {_CMP_OPS[lit.op]} {rhs} if type({lhs}) is int and type({rhs}) is int "
                             f"else _cmp({code}, {lhs}, {rhs})):")
            depth += 1
        elif role == ROLE_METHOD:
            lit = li.literal
            v = self.var(lit.var.name)
            arg = repr(lit.arg)
            if lit.method == "starts_with":
                cond = f"type({v}) is str and {v}.startswith({arg})"
            elif lit.method == "ends_with":
                cond = f"type({v}) is str and {v}.endswith({arg})"
            elif lit.method == "contains":
                cond = f"type({v}) is str and {arg} in {v}"
            else:
                cond = self.like_test(v, lit.arg) if lit.method == "like" else f"_st({lit.method!r}, {arg}, {v})"
            self.emit(depth, f"if {cond}:")
            depth += 1
        elif role == ROLE_ASSIGN:
            target = li.target
            if target in bound:
                self.emit(depth, f"if _cmp(0, {self.var(target)}, {self.expr(li.expr)}):")
                depth += 1
            else:
                v = self.var(target)
                self.emit(depth, f"{v} = {self.expr(li.expr)}")
                self.emit(depth, f"if {v} is not None:")
                depth += 1
                bound.add(target)
        elif role == ROLE_AGGREGATE:
            depth = self.aggregate(li, bound, depth)
        else:
            raise Unsupported(f"literal role {role}")
        self.steps(steps, i + 1, bound, depth, terminal, counting)

    # -- inlining
    def _inlinable(self, atom: A.Atom, counting: bool) -> Optional[tuple[A.Rule, BodyInfo]]:
        """The one short rule of a request-dependent relation, to be copied
        into the caller; None to call its plan instead. Never inside an
        aggregate body: there a call yields each distinct row once, and a
        copied body could yield one row several times."""
        if counting or atom.name not in self.plans.dependent or atom.name in self.plans._recursive:
            return None
        rules = self.plans.rules_of(atom.name)
        if len(rules) != 1:
            return None
        return rules[0] if _copyable(rules[0][1]) else None

    def _inlinable_rules(self, atom: A.Atom, counting: bool,
                         negated: Optional[set] = None) -> Optional[list[tuple[A.Rule, BodyInfo]]]:
        """The rules of a request-dependent relation to be copied into the
        caller: 2 to ``INLINE_RULES`` short ones for a positive call, 1 to
        ``INLINE_RULES`` for a negated call whose arguments are all bound
        (``negated``: the variables bound at that point); None to call its
        plan instead. Not inside an aggregate body (see ``_inlinable``),
        and at most ``INLINE_NESTING`` such copies deep."""
        if counting or self.nesting >= INLINE_NESTING:
            return None
        if atom.name not in self.plans.dependent or atom.name in self.plans._recursive:
            return None
        if negated is not None and not all(
                isinstance(t, A.Const) or (isinstance(t, A.Var) and t.name != "_" and t.name in negated)
                for t in atom.args):
            return None
        rules = self.plans.rules_of(atom.name)
        if not (1 if negated is not None else 2) <= len(rules) <= INLINE_RULES:
            return None
        return rules if all(_copyable(info) for _rule, info in rules) else None

    def inline_negation(self, atom: A.Atom, rules: list[tuple[A.Rule, BodyInfo]], bound: set, depth: int) -> int:
        """``not atom`` with the bodies of its rules copied in: a flag set by
        the first rule that derives the (fully bound) row; the rest of the
        caller's body goes under ``if not flag``."""
        flag = self.fresh("ng")
        self.emit(depth, f"{flag} = False")
        self.nesting += 1
        for n, callee in enumerate(rules):
            d = depth
            if n:
                self.emit(d, f"if not {flag}:")
                d += 1
            self.inline(atom, callee, set(bound), d, lambda d2: self.emit(d2, f"{flag} = True"))
        self.nesting -= 1
        self.emit(depth, f"if not {flag}:")
        return depth + 1

    def inline(self, atom: A.Atom, callee: tuple[A.Rule, BodyInfo], bound: set, depth: int,
               cont: Optional[Callable[[int], None]],
               cont_bound: Optional[Callable[[int, set], None]] = None) -> None:
        """Emit the callee's body in place of a call, with its variables
        renamed apart; the head is unified with the call's arguments exactly
        as a call would (``rule``): bound arguments pre-bind variables that a
        positive atom binds, and are compared at the end otherwise."""
        rule, info = callee
        caller_scope = self.scope
        calls: list[tuple[str, Any]] = []
        for s in atom.args:
            if isinstance(s, A.Wildcard) or (isinstance(s, A.Var) and s.name == "_"):
                calls.append(("wild", None))
            elif isinstance(s, A.Const) or s.name in bound:
                calls.append(("val", self.term(s)))
            else:
                calls.append(("var", s.name))
        tag = self.fresh("i") + "/"
        self.scope = tag
        head = rule.head.args
        cbound: set = set()
        post: list[tuple[str, str]] = []
        for (kind, x), t in zip(calls, head):
            if kind != "val":
                continue
            if isinstance(t, A.Const):
                self.emit(depth, f"if {x} == {self.term(t)}:")
                depth += 1
                continue
            assert isinstance(t, A.Var)  # the checks refuse `_` in a head
            if t.name in cbound:
                self.emit(depth, f"if {x} == {self.var(t.name)}:")
                depth += 1
            elif t.name in info.positive:
                self.emit(depth, f"{self.var(t.name)} = {x}")
                cbound.add(t.name)
            else:
                post.append((t.name, x))

        def finish(d: int, _b: set) -> None:
            for v, x in post:
                self.emit(d, f"if {self.var(v)} == {x}:")
                d += 1
            vals = [(x, self.term(t)) for (kind, x), t in zip(calls, head) if kind == "var"]
            self.scope = caller_scope
            newly: set = set()
            for name, val in vals:
                if name in newly:
                    self.emit(d, f"if {self.var(name)} == {val}:")
                    d += 1
                else:
                    self.emit(d, f"{self.var(name)} = {val}")
                    newly.add(name)
            if cont is not None:
                cont(d)
            else:
                # a fresh set per path: a copied body with its own several-rule call ends here once per rule
                assert cont_bound is not None
                cont_bound(d, bound | newly)
            self.scope = tag

        self.steps(_schedule(info, set(cbound), self.plans.few), 0, set(cbound), depth, finish, counting=False)
        self.scope = caller_scope

    def operand(self, e: Any, depth: int) -> str:
        """A name holding the value of a comparison operand: a term as
        itself, arithmetic computed into a local first (``_ar``'s value;
        ``+``, ``-`` and ``*`` of two integers inline, with its 64-bit
        check), so the comparison reads each side once."""
        if not isinstance(e, A.BinOp):
            return self.term(e)
        t = self.fresh("ar")
        code = _ARITH_CODES[e.op]
        if e.op in ("+", "-", "*") and not isinstance(e.left, A.BinOp) and not isinstance(e.right, A.BinOp):
            x, y = self.term(e.left), self.term(e.right)
            self.emit(depth, f"{t} = {x} {e.op} {y} if type({x}) is int and type({y}) is int else _ar({code}, {x}, {y})")
            self.emit(depth, f"if type({t}) is int and not ({INT_MIN} <= {t} <= {INT_MAX}):")
            self.emit(depth + 1, f"{t} = None")
        else:
            self.emit(depth, f"{t} = {self.expr(e)}")
        return t

    def aggregate(self, li: LiteralInfo, bound: set, depth: int) -> int:
        agg = li.literal
        assert isinstance(agg, A.Aggregate)
        inner = li.body
        assert inner is not None
        if agg.func == "count":
            acc = self.fresh("n")
            self.emit(depth, f"{acc} = 0")

            def collect(d: int, _b: set) -> None:
                self.emit(d, f"{acc} += 1")
        else:
            acc = self.fresh("acc")
            self.emit(depth, f"{acc} = []")
            assert isinstance(agg.target, A.Var)  # checked: sum/min/max/mean have a target
            target = self.var(agg.target.name)

            def collect(d: int, _b: set) -> None:
                self.emit(d, f"{acc}.append({target})")

        keys = set(li.keys)
        steps = _schedule(inner, set(keys), self.plans.few)
        self.steps(steps, 0, set(keys), depth, collect, counting=True)
        res = self.fresh("res")
        if agg.func == "count":
            self.emit(depth, f"{res} = {acc}")
        else:
            self.emit(depth, f"{res} = _agg({_AGG_CODES[agg.func]}, {acc})")
            self.emit(depth, f"if {res} is not None:")
            depth += 1
        name = agg.result.name
        if name in bound:
            self.emit(depth, f"if _cmp(0, {self.var(name)}, {res}):")
            depth += 1
        else:
            self.emit(depth, f"{self.var(name)} = {res}")
            bound.add(name)
        return depth

    # -- atoms
    def _classify_args(self, atom: A.Atom, bound: set) -> tuple[list, list, list]:
        """(bound positions with their source, positions that bind a new
        variable, positions that repeat a variable bound earlier in this atom)."""
        keys: list[tuple[int, str]] = []
        binds: list[tuple[int, str]] = []
        checks: list[tuple[int, str]] = []
        newly: set = set()
        for j, t in enumerate(atom.args):
            if isinstance(t, A.Wildcard) or (isinstance(t, A.Var) and t.name == "_"):
                continue
            if isinstance(t, A.Const) or t.name in bound:
                keys.append((j, self.term(t)))
            elif t.name in newly:
                checks.append((j, self.var(t.name)))
            else:
                newly.add(t.name)
                binds.append((j, self.var(t.name)))
        return keys, binds, checks

    def _unpack(self, depth: int, row: str, binds: list, checks: list, offset: Optional[dict] = None) -> int:
        for j, v in binds:
            self.emit(depth, f"{v} = {row}[{j if offset is None else offset[j]}]")
        for j, v in checks:
            self.emit(depth, f"if {row}[{j if offset is None else offset[j]}] == {v}:")
            depth += 1
        return depth

    def _budget(self, depth: int, n: str) -> None:
        if n != "1":  # before a loop
            self.costly = True
        self.emit(depth, f"ev.budget -= {n}")
        self.emit(depth, "if ev.budget < 0:")
        self.emit(depth + 1, "raise _FB('step budget')")

    def atom(self, atom: A.Atom, bound: set, depth: int, counting: bool) -> int:
        name = atom.name
        keys, binds, checks = self._classify_args(atom, bound)
        newly = {t.name for t in atom.args if isinstance(t, A.Var) and t.name != "_"}
        if name in _REQUEST_ENTITY:
            src = f"ev.{_REQUEST_ENTITY[name]}"
            if keys:
                self.emit(depth, f"if {keys[0][1]} == {src}:")
                depth += 1
            for _j, v in binds:
                self.emit(depth, f"{v} = {src}")
        elif name == "context":
            self.uses_cx = True
            kpos = dict(keys)
            bpos = dict(binds)
            if 0 in kpos:
                kexpr = kpos[0]
                if 1 in kpos:
                    self.emit(depth, f"if {self.context_value(kexpr)} == {kpos[1]}:")
                    depth += 1
                elif 1 in bpos:
                    self.emit(depth, f"{bpos[1]} = {self.context_value(kexpr)}")
                    self.emit(depth, f"if {bpos[1]} is not None:")
                    depth += 1
                else:
                    self.emit(depth, f"if {kexpr} in cx:")
                    depth += 1
            else:
                kv = bpos.get(0, self.fresh("ck"))
                vv = bpos.get(1) or self.fresh("cv")
                chk = dict(checks)
                if 1 in chk:  # context(K, K)
                    vv = self.fresh("cv")
                self.costly = True
                self.emit(depth, f"for {kv}, {vv} in cx.items():")
                depth += 1
                if 1 in kpos:
                    self.emit(depth, f"if {vv} == {kpos[1]}:")
                    depth += 1
                if 1 in chk:
                    self.emit(depth, f"if {vv} == {kv}:")
                    depth += 1
        elif name in self.plans.dependent:
            mask = tuple(j in dict(keys) for j in range(len(atom.args)))
            args = "".join(", " + src for _j, src in keys)
            if not binds and not checks and not counting:
                fn = self.plans._plan(name, mask, "exists")
                self.deps.add(fn)
                self.costly |= fn not in self.plans._cheap
                self.emit(depth, f"if {fn}(ev{args}):")
                depth += 1
            else:
                fn = self.plans._plan(name, mask, "rows")
                self.deps.add(fn)
                rows = self.fresh("rows")
                row = self.fresh("row")
                self.emit(depth, f"{rows} = {fn}(ev{args})")
                self.emit(depth, f"if {rows}:")
                depth += 1
                was = self.costly
                self._budget(depth, f"len({rows})")
                if name in self.plans.few and fn in self.plans._cheap:
                    # a handful of rows from a cheap plan: computing them
                    # again costs less than memoizing (no memo dict per request)
                    self.costly = was
                self.emit(depth, f"for {row} in {rows}:")
                depth = self._unpack(depth + 1, row, binds, checks)
        else:
            snap = self.static(name)
            arity = len(atom.args)
            if len(keys) == arity:
                self.emit(depth, f"if {self._is_fact(snap, keys, '')}:")
                depth += 1
            elif keys:
                cols = tuple(j for j, _s in keys)
                ix, unique = snap.index(cols)
                ixn = self.bind_name(ix, "X")
                k = _key(keys)
                if not binds and not checks and not counting:
                    self.emit(depth, f"if {k} in {ixn}:")
                    depth += 1
                elif unique:
                    row = self.fresh("row")
                    self.emit(depth, f"{row} = {ixn}.get({k})")
                    self.emit(depth, f"if {row} is not None:")
                    depth = self._unpack(depth + 1, row, binds, checks)
                else:
                    rows = self.fresh("rows")
                    row = self.fresh("row")
                    self.emit(depth, f"{rows} = {ixn}.get({k})")
                    self.emit(depth, f"if {rows} is not None:")
                    depth += 1
                    self._budget(depth, f"len({rows})")
                    self.emit(depth, f"for {row} in {rows}:")
                    depth = self._unpack(depth + 1, row, binds, checks)
            else:
                rows_name = self.bind_name(snap.rows, "R")
                if not binds and not checks and not counting:
                    self.emit(depth, f"if {rows_name}:")
                    depth += 1
                else:
                    row = self.fresh("row")
                    self._budget(depth, f"len({rows_name})")
                    self.emit(depth, f"for {row} in {rows_name}:")
                    depth = self._unpack(depth + 1, row, binds, checks)
        bound.update(newly)
        return depth

    def negation(self, atom: A.Atom, bound: set, depth: int) -> int:
        name = atom.name
        keys, binds, checks = self._classify_args(atom, bound)
        if binds or checks:
            raise Unsupported("unbound variable under negation")
        if name in _REQUEST_ENTITY:
            if keys:
                self.emit(depth, f"if {keys[0][1]} != ev.{_REQUEST_ENTITY[name]}:")
            else:
                self.emit(depth, "if False:")
        elif name == "context":
            self.uses_cx = True
            kpos = dict(keys)
            if 0 in kpos and 1 in kpos:
                self.emit(depth, f"if {self.context_value(kpos[0])} != {kpos[1]}:")
            elif 0 in kpos:
                self.emit(depth, f"if {kpos[0]} not in cx:")
            elif 1 in kpos:
                self.emit(depth, f"if {kpos[1]} not in cx.values():")
            else:
                self.emit(depth, "if not cx:")
        elif name in self.plans.dependent:
            mask = tuple(j in dict(keys) for j in range(len(atom.args)))
            fn = self.plans._plan(name, mask, "exists")
            self.deps.add(fn)
            self.costly |= fn not in self.plans._cheap
            args = "".join(", " + src for _j, src in keys)
            self.emit(depth, f"if not {fn}(ev{args}):")
        else:
            snap = self.static(name)
            arity = len(atom.args)
            if len(keys) == arity:
                self.emit(depth, f"if {self._is_fact(snap, keys, 'not ')}:")
            elif keys:
                ix, _u = snap.index(tuple(j for j, _s in keys))
                self.emit(depth, f"if {_key(keys)} not in {self.bind_name(ix, 'X')}:")
            else:
                self.emit(depth, f"if not {self.bind_name(snap.rows, 'R')}:")
        return depth + 1

    def _is_fact(self, snap: Any, keys: list, negate: str) -> str:
        """The condition that the fully bound row ``keys`` is (``negate``:
        ``"not "``, is not) one of the static relation's facts."""
        if not keys:
            return f"{negate}{self.bind_name(bool(snap.rows), 'E')}"
        return f"{_key(keys)} {negate}in {self.bind_name(snap.full_set(), 'S')}"


def _key(keys: list) -> str:
    """The lookup key of bound ``(column, source)`` pairs: the one value, or a tuple of them."""
    return keys[0][1] if len(keys) == 1 else "(" + ", ".join(src for _j, src in keys) + ")"


def _copyable(info: BodyInfo) -> bool:
    """Whether a rule body is short and simple enough to copy into a caller:
    at most ``INLINE_LITERALS`` literals, no aggregate, one binder per variable."""
    if len(info.literals) > INLINE_LITERALS or any(li.role == ROLE_AGGREGATE for li in info.literals):
        return False
    try:
        _check_single_binders(info)
    except Unsupported:
        return False
    return True


def _check_single_binders(info: BodyInfo) -> None:
    """Refuse bodies where a variable could be bound by more than one
    assignment or aggregate: which one binds first (and so the kind of its
    value) depends on the join order, which differs between the plans."""
    seen: set = set()
    for li in info.literals:
        names: list[str] = []
        if li.role == ROLE_ASSIGN and li.target is not None:
            names.append(li.target)
        elif li.role == ROLE_AGGREGATE:
            assert isinstance(li.literal, A.Aggregate) and li.body is not None
            names.append(li.literal.result.name)
            _check_single_binders(li.body)
        for n in names:
            if n in seen or n in info.positive:
                raise Unsupported(f"variable {n} has several binders")
            seen.add(n)


def _is_request_atom(atom: A.Atom) -> int:
    if atom.name in _REQUEST_ENTITY:
        return 2
    if atom.name == "context":
        return 1
    return 0


def _schedule(info: BodyInfo, bound: set, few: frozenset = frozenset()) -> list[LiteralInfo]:
    """Literal order for a body whose variables ``bound`` are known: tests
    as soon as their variables are bound (in source order, as the executor's
    planner does), then the atom with the most bound arguments (request atoms
    and the relations in ``few`` first: they have at most a handful of rows,
    see ``RequestPlans.few``). The order changes how many rows are visited,
    never the answer."""
    order: list[LiteralInfo] = []
    pending = list(info.literals)
    while pending:
        progressed = True
        while progressed:
            progressed = False
            for li in list(pending):
                if li.role == ROLE_ATOM or not all(v in bound for v in li.needs):
                    continue
                pending.remove(li)
                order.append(li)
                if li.role == ROLE_ASSIGN and li.target is not None:
                    bound.add(li.target)
                elif li.role == ROLE_AGGREGATE:
                    assert isinstance(li.literal, A.Aggregate)
                    bound.add(li.literal.result.name)
                progressed = True
        atoms = [li for li in pending if li.role == ROLE_ATOM]
        if not atoms:
            if pending:
                raise Unsupported("cannot schedule the body")
            break

        def score(li: LiteralInfo) -> tuple:
            atom = li.literal
            assert isinstance(atom, A.Atom)
            args = atom.args
            nb = sum(1 for t in args if isinstance(t, A.Const) or (isinstance(t, A.Var) and t.name in bound))
            full = nb == len(args)
            request = _is_request_atom(atom) or (1 if atom.name in few else 0)
            return (full, request, nb / len(args) if args else 1.0, -li.index)

        best = max(atoms, key=score)
        pending.remove(best)
        order.append(best)
        best_atom = best.literal
        assert isinstance(best_atom, A.Atom)
        bound.update(t.name for t in best_atom.args if isinstance(t, A.Var) and t.name != "_")
    return order
