"""Proof trees: why a fact is in the model, down to the facts that stated it.

A proof of ``rel(v1..vn)`` is either a **leaf** (a base fact: a ``[data]``
row, a ``[sources]`` row, or a fact the request supplied) or a **step**: a
rule, the variable bindings that make its head equal to the fact, and one
child per body literal: a proof for each positive atom, an "absent" node for
each negation (the instantiated atom is not in the model), a "check" node
for each comparison, method call or aggregate (with the values it compared).

Why it is shaped like this:

- **From the model that decided, on demand.** The prover reads the request's
  Datalog model (the same one ``authorize`` builds) and nothing else; the
  decision path records nothing, so proofs cost nothing until asked for.
- **Top-down, well-founded, finite.** The prover searches rule instances
  top-down, joining each body over the model's indexes (the model is
  complete, so every instance it finds is real). A fact already on the
  current proof path is never used again, so no path repeats a fact; a
  proved fact is memoized and reused (a memoized proof was finished before
  the current path started, so reusing it cannot close a cycle). Every fact
  in the model has such a proof (its first derivation in a bottom-up
  evaluation), so the search always succeeds; it is bounded by
  ``MAX_STEPS`` instance tries, after which the fact is shown as
  ``omitted`` instead of hanging.
- **Base facts are leaves.** A fact of a relation without rules is a leaf;
  for a relation that has both rules and ``[data]`` facts, a data row is a
  leaf too (the engine remembers which rows came from data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..lang import ast as A
from ..lang.safety import ROLE_AGGREGATE, ROLE_ASSIGN, ROLE_ATOM, ROLE_FILTER, ROLE_METHOD, ROLE_NEGATION
from ..like import glob_matcher
from ..values import INT_MAX, INT_MIN, value_key
from . import render

__all__ = ["MAX_STEPS", "ProofNode", "Prover"]

#: Rule instances the prover may try for one explanation before it gives up
#: on a fact (shown as ``omitted``); generous: real proofs need a few dozen.
MAX_STEPS = 200_000


@dataclass(frozen=True, slots=True)
class ProofNode:
    """One node of a proof tree.

    ``kind``: ``"rule"`` (a step: ``rule`` instantiated with ``bindings``,
    ``children`` one per body literal), ``"data"``/``"source"``/``"request"``
    (a base fact; ``origin`` says where it was stated), ``"absent"`` (a
    negated atom that is not in the model; ``row`` may hold ``None`` for
    ``_``), ``"check"`` (a comparison, method or aggregate that held;
    ``text`` shows it with its values) or ``"omitted"`` (the search bound
    was reached).
    """

    kind: str
    relation: str = ""
    row: tuple = ()
    rule: A.Rule | None = None
    bindings: tuple[tuple[str, Any], ...] = ()
    children: tuple[ProofNode, ...] = ()
    origin: dict | None = None
    text: str = ""

    @property
    def fact(self) -> str:
        if self.kind == "absent":
            return render.fact(self.relation, tuple("_" if v is None else v for v in self.row)).replace('"_"', "_")
        return render.fact(self.relation, self.row) if self.relation else self.text

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.relation:
            d["fact"] = self.fact
            d["relation"] = self.relation
            d["args"] = [None if v is None else render.json_value(v) for v in self.row]
        if self.kind == "rule" and self.rule is not None:
            d["rule"] = {"text": render.rule(self.rule), "file": self.rule.loc.file, "line": self.rule.loc.line}
            d["bindings"] = {k: render.json_value(v) for k, v in self.bindings}
            d["body"] = [c.to_dict() for c in self.children]
        if self.origin is not None:
            d["origin"] = dict(self.origin)
        if self.text:
            d["text"] = self.text
        return d

    def render(self, indent: str = "") -> list[str]:
        """Indented lines: the fact, how it holds, then the body, one level deeper."""
        if self.kind == "rule" and self.rule is not None:
            binds = ", ".join(f"{k}={render.value(v)}" for k, v in self.bindings)
            head = f"{indent}{self.fact}  <- rule {render.where(self.rule.loc)}: {render.rule(self.rule)}"
            lines = [head]
            if binds:
                lines.append(f"{indent}    with {binds}")
            for c in self.children:
                lines.extend(c.render(indent + "    "))
            return lines
        if self.kind in ("data", "source", "request"):
            return [f"{indent}{self.fact}  <- {origin_text(self.origin)}"]
        if self.kind == "absent":
            return [f"{indent}not {self.fact}  <- no such fact"]
        if self.kind == "check":
            return [f"{indent}{self.text}  <- holds"]
        return [f"{indent}{self.fact}  <- in the model (proof omitted: {self.text})"]


def origin_text(origin: dict | None) -> str:
    """``[data] file:line``, ``[sources] file row N``, ``request: ...``."""
    if not origin:
        return "base fact"
    kind = origin.get("kind")
    if kind == "request":
        return f"request {origin.get('field', '')}".rstrip()
    loc = origin.get("file", "?")
    if origin.get("line"):
        loc += f":{origin['line']}"
    if kind == "source":
        row = f" row {origin['row']}" if origin.get("row") else ""
        return f"[sources] {loc}{row}"
    return f"[data] {loc}"


# ---------------------------------------------------------------------------
# Values in rule bodies (the core's semantics, docs/language.md "Semantics")


class _Fail(Exception):
    """Arithmetic that derives nothing (overflow, division by zero, non-numbers)."""


def _num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def _arith(op: str, x: Any, y: Any) -> Any:
    if not (_num(x) and _num(y)):
        raise _Fail()
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    else:
        if y == 0:
            raise _Fail()
        if type(x) is int and type(y) is int:
            q = abs(x) // abs(y)
            q = q if (x >= 0) == (y >= 0) else -q
            r = q if op == "/" else x - q * y
        else:
            r = x / y if op == "/" else math.fmod(x, y)
    if type(r) is int and not INT_MIN <= r <= INT_MAX:
        raise _Fail()
    if type(r) is float and (math.isnan(r) or math.isinf(r)):
        raise _Fail()
    return r


def eval_rexpr(e: Any, b: dict) -> Any:
    t = type(e)
    if t is A.Var:
        return b[e.name]
    if t is A.Const:
        return e.value
    if t is A.BinOp:
        return _arith(e.op, eval_rexpr(e.left, b), eval_rexpr(e.right, b))
    raise _Fail()


def compare(op: str, x: Any, y: Any) -> bool:
    if _num(x) and _num(y):
        return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if op == "=":
        return value_key(x) == value_key(y)
    if op == "!=":
        return value_key(x) != value_key(y)
    return False


def method_holds(name: str, arg: str, v: Any) -> bool:
    if type(v) is not str:
        return False
    if name == "starts_with":
        return v.startswith(arg)
    if name == "ends_with":
        return v.endswith(arg)
    if name == "contains":
        return arg in v
    return glob_matcher(arg)(v)


def _same(a: Any, b: Any) -> bool:
    """Equality of two values of the language (``1``, ``1.0`` and ``true`` differ)."""
    return a is b or value_key(a) == value_key(b)


# ---------------------------------------------------------------------------
# The prover


class Prover:
    """Builds proofs over one model.

    ``model`` answers ``contains(rel, row)`` (``None`` = any) and
    ``match(rel, prefix)``; ``side`` holds relations kept outside the core
    (rel -> frozenset of rows); ``base(rel, row)`` returns the origin dict of
    a base fact or ``None``; ``rules``/``rule_info`` are the engine's.
    """

    def __init__(
        self,
        model: Any,
        side: dict,
        rules: tuple,
        rule_info: tuple,
        base: Callable[[str, tuple], dict | None],
        max_steps: int = MAX_STEPS,
    ) -> None:
        self.model = model
        self.side = side
        self.base = base
        self.by_head = rules_by_head(rules, rule_info)
        self.memo: dict = {}
        self.steps = 0
        self.max_steps = max_steps
        self._slots = model.compiled.slot_of

    # -- model access --------------------------------------------------------

    def contains(self, rel: str, row: tuple) -> bool:
        if rel in self.side:
            return any(all(v is None or _same(v, x) for v, x in zip(row, r)) for r in self.side[rel] if len(r) == len(row))
        if rel not in self._slots:
            return False
        return self.model.contains(rel, row)

    def match(self, rel: str, pattern: tuple) -> list[tuple]:
        """Full rows of ``rel`` agreeing with ``pattern`` (``None`` = any)."""
        if rel in self.side:
            return [r for r in self.side[rel] if len(r) == len(pattern)
                    and all(v is None or _same(v, x) for v, x in zip(pattern, r))]
        if rel not in self._slots:
            return []
        if None not in pattern:
            return [pattern] if self.model.contains(rel, pattern) else []
        k = 0
        while k < len(pattern) and pattern[k] is not None:
            k += 1
        if k:
            rows = [pattern[:k] + rest for rest in self.model.match(rel, pattern[:k])]
        else:
            rows = list(self.model.rows(rel))
        if any(v is not None for v in pattern[k:]):
            rows = [r for r in rows if all(v is None or _same(v, x) for v, x in zip(pattern, r))]
        return rows

    # -- proofs --------------------------------------------------------------

    def prove(self, rel: str, row: tuple, path: frozenset = frozenset()) -> ProofNode | None:
        """A proof of a fact in the model avoiding facts on ``path``; None if none exists."""
        key = (rel, tuple(value_key(v) for v in row))
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        origin = self.base(rel, row)
        if origin is not None:
            node = ProofNode(origin.get("kind", "data"), rel, row, origin=origin)
            self.memo[key] = node
            return node
        if self.steps > self.max_steps:
            return ProofNode("omitted", rel, row, text=f"search bound of {self.max_steps} steps reached")
        path = path | {key}
        for rule, info in self.by_head.get(rel, ()):
            b = self._unify_head(rule.head, row)
            if b is None:
                continue
            for binding, items in self._solve(info, list(range(len(rule.body))), b):
                self.steps += 1
                if self.steps > self.max_steps:
                    break
                children: list | None = []
                for item in items:
                    assert children is not None
                    if item[0] == "fact":
                        ik = (item[1], tuple(value_key(v) for v in item[2]))
                        if ik in path:
                            children = None
                            break
                        c = self.prove(item[1], item[2], path)
                        if c is None:
                            children = None
                            break
                        children.append(c)
                    else:
                        children.append(item[1])
                if children is None:
                    continue
                names = _rule_vars(rule)
                node = ProofNode("rule", rel, row, rule, tuple((n, binding[n]) for n in names if n in binding),
                                 tuple(children))
                self.memo[key] = node
                return node
        return None

    @staticmethod
    def _unify_head(head: A.Atom, row: tuple) -> dict | None:
        if len(head.args) != len(row):
            return None
        b: dict = {}
        for t, v in zip(head.args, row):
            if type(t) is A.Var:
                if t.name in b:
                    if not _same(b[t.name], v):
                        return None
                else:
                    b[t.name] = v
            elif type(t) is A.Const and not _same(t.value, v):
                return None
        return b

    def _pattern(self, atom: A.Atom, b: dict) -> tuple:
        out: list = []
        for t in atom.args:
            if type(t) is A.Const:
                out.append(t.value)
            elif type(t) is A.Var and t.name in b:
                out.append(b[t.name])
            else:
                out.append(None)
        return tuple(out)

    def _bind_row(self, atom: A.Atom, row: tuple, b: dict) -> dict | None:
        nb = dict(b)
        for t, v in zip(atom.args, row):
            if type(t) is A.Var:
                if t.name in nb:
                    if not _same(nb[t.name], v):
                        return None
                else:
                    nb[t.name] = v
        return nb

    def _solve(self, info: Any, todo: list, b: dict) -> Iterator[tuple[dict, list]]:
        """Every binding of the remaining literals (indexes into ``info.literals``)
        extending ``b``, each with its body items in source order."""
        yield from self._solve_rec(info, todo, b, {})

    def _solve_rec(self, info: Any, todo: list, b: dict, items: dict) -> Iterator[tuple[dict, list]]:
        if not todo:
            yield b, [items[i] for i in sorted(items)]
            return
        lits = info.literals
        # cheap tests whose variables are bound go first
        for i in todo:
            li = lits[i]
            if li.role != ROLE_ATOM and all(v in b for v in li.needs):
                rest = [j for j in todo if j != i]
                for nb, item in self._non_atom(li, b):
                    items2 = dict(items)
                    items2[i] = item
                    yield from self._solve_rec(info, rest, nb, items2)
                return
        best, score = -1, -1.0
        for i in todo:
            li = lits[i]
            if li.role == ROLE_ATOM:
                args = li.literal.args
                s = sum(1 for t in args if type(t) is A.Const or (type(t) is A.Var and t.name in b))
                sc = s + (0.5 if args and (type(args[0]) is A.Const or (type(args[0]) is A.Var and args[0].name in b)) else 0)
                if sc > score:
                    best, score = i, sc
        if best < 0:
            return  # nothing can run (cannot happen for a checked rule)
        atom = lits[best].literal
        rest = [j for j in todo if j != best]
        for row in self.match(atom.name, self._pattern(atom, b)):
            nb2 = self._bind_row(atom, row, b)
            if nb2 is None:
                continue
            nb = nb2
            items2 = dict(items)
            items2[best] = ("fact", atom.name, tuple(row))
            yield from self._solve_rec(info, rest, nb, items2)

    def _non_atom(self, li: Any, b: dict) -> Iterator[tuple[dict, tuple]]:
        lit = li.literal
        role = li.role
        if role == ROLE_NEGATION:
            pat = self._pattern(lit.atom, b)
            if not self.contains(lit.atom.name, pat):
                yield b, ("node", ProofNode("absent", lit.atom.name, pat))
            return
        if role == ROLE_METHOD:
            v = b.get(lit.var.name)
            if method_holds(lit.method, lit.arg, v):
                yield b, ("node", ProofNode("check", text=f"{render.literal(lit)} with {lit.var.name}={render.value(v)}"))
            return
        if role in (ROLE_FILTER, ROLE_ASSIGN):
            try:
                if role == ROLE_ASSIGN and li.target not in b:
                    v = eval_rexpr(li.expr, b)
                    nb = dict(b)
                    nb[li.target] = v
                    yield nb, ("node", ProofNode("check", text=f"{render.literal(lit)} gives {li.target}={render.value(v)}"))
                    return
                x = eval_rexpr(lit.left, b)
                y = eval_rexpr(lit.right, b)
            except (_Fail, KeyError):
                return
            if compare(lit.op, x, y):
                yield b, ("node", ProofNode("check", text=f"{render.literal(lit)}: {render.value(x)} {lit.op} {render.value(y)}"))
            return
        if role == ROLE_AGGREGATE:
            got = self._aggregate(li, b)
            if got is _NOTHING:
                return
            r = lit.result.name
            if r in b:
                if not compare("=", b[r], got):
                    return
                nb = b
            else:
                nb = dict(b)
                nb[r] = got
            yield nb, ("node", ProofNode("check", text=f"{render.literal(lit)} = {render.value(got)}"))
            return

    def _aggregate(self, li: Any, b: dict) -> Any:
        lit = li.literal
        sub = li.body
        keys = {k: b[k] for k in li.keys if k in b}
        seen: set = set()
        vals: list = []
        for nb, items in self._solve_rec(sub, list(range(len(sub.literals))), keys, {}):
            ident = tuple((it[1], tuple(value_key(v) for v in it[2])) for it in items if it[0] == "fact")
            ident += tuple(sorted((k, value_key(v)) for k, v in nb.items()))
            if ident in seen:
                continue
            seen.add(ident)
            if lit.target is not None:
                vals.append(nb.get(lit.target.name))
            if len(seen) > self.max_steps:
                return _NOTHING
        f = lit.func
        if f == "count":
            return len(seen)
        if not vals or not all(_num(v) and type(v) is not bool for v in vals):
            return _NOTHING
        if f == "sum":
            if any(type(v) is float for v in vals):
                return math.fsum(vals)
            s = sum(vals)
            return s if INT_MIN <= s <= INT_MAX else _NOTHING
        if f == "min":
            return min(vals)
        if f == "max":
            return max(vals)
        return math.fsum(vals) / len(vals)


_NOTHING = object()
_BY_HEAD: dict = {}


def rules_by_head(rules: tuple, rule_info: tuple) -> dict[str, list[tuple[A.Rule, Any]]]:
    """Rules grouped by head relation, in source order (memoized per rule tuple)."""
    key = id(rules)
    hit = _BY_HEAD.get(key)
    if hit is not None and hit[0] is rules:
        return hit[1]
    out: dict[str, list[tuple[A.Rule, Any]]] = {}
    for r, info in zip(rules, rule_info):
        out.setdefault(r.head.name, []).append((r, info))
    if len(_BY_HEAD) > 64:
        _BY_HEAD.clear()
    _BY_HEAD[key] = (rules, out)
    return out


def _rule_vars(rule: A.Rule) -> list[str]:
    """Variables of a rule in first-occurrence order (head first)."""
    out: list[str] = []

    def visit(x: Any) -> None:
        t = type(x)
        if t is A.Var:
            if x.name not in out:
                out.append(x.name)
        elif t is A.Atom:
            for a in x.args:
                visit(a)
        elif t is A.Negation:
            visit(x.atom)
        elif t is A.Comparison or t is A.BinOp:
            visit(x.left)
            visit(x.right)
        elif t is A.MethodCall:
            visit(x.var)
        elif t is A.Aggregate:
            visit(x.result)
            if x.target is not None:
                visit(x.target)

    visit(rule.head)
    for lit in rule.body:
        visit(lit)
    return out
