"""A small, obviously-correct Datalog evaluator: the oracle of the differential tests.

Naive fixpoint, stratum by stratum, over Python values; no ids, no indexes,
no join ordering, no semi-naive deltas. Slow on purpose: every rule body is
evaluated by trying literals in an order where their variables are bound,
against whole relations. Semantics (docs/language.md §4):

* values unify only when equal and of the same kind (1, 1.0 and True differ);
* comparisons: numbers (int/float, not bool) compare numerically; = and != on
  other values compare kind and value; ordering non-numbers is false;
* integer arithmetic is 64-bit: overflow or division by zero makes that
  binding derive nothing; / truncates toward zero and % takes the dividend's sign;
* aggregates range over the distinct matches of their body, where each `_`
  is a distinct hidden variable; count of nothing is 0; sum/min/max/mean of
  nothing derive nothing.
"""

from __future__ import annotations

import math
import re
from itertools import count as _counter

from rune_fast.lang import ast as A

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


class Fail(Exception):
    pass


def key(v):
    return (type(v).__name__, v)


def is_num(v):
    return type(v) in (int, float)


def eval_expr(e, b):
    if isinstance(e, A.Const):
        return e.value
    if isinstance(e, A.Var):
        return b[e.name]
    x, y = eval_expr(e.left, b), eval_expr(e.right, b)
    if not (is_num(x) and is_num(y)):
        raise Fail("type")
    if e.op in "/%" and y == 0:
        raise Fail("div0")
    if type(x) is int and type(y) is int:
        if e.op == "+":
            r = x + y
        elif e.op == "-":
            r = x - y
        elif e.op == "*":
            r = x * y
        else:
            q = abs(x) // abs(y)
            q = q if (x >= 0) == (y >= 0) else -q
            r = q if e.op == "/" else x - q * y
        if not INT_MIN <= r <= INT_MAX:
            raise Fail("overflow")
        return r
    r = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
         "%": lambda: math.fmod(x, y)}[e.op]()
    if math.isinf(r) or math.isnan(r):
        raise Fail("float")
    return r


def compare(op, x, y):
    if is_num(x) and is_num(y):
        return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if op == "=":
        return key(x) == key(y)
    if op == "!=":
        return key(x) != key(y)
    return False


def like(s, glob):
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), s, re.S) is not None


def method(name, arg, v):
    if type(v) is not str:
        return False
    return {"starts_with": lambda: v.startswith(arg), "ends_with": lambda: v.endswith(arg),
            "contains": lambda: arg in v, "like": lambda: like(v, arg)}[name]()


def expr_vars(e):
    if isinstance(e, A.Var):
        return {e.name}
    if isinstance(e, A.BinOp):
        return expr_vars(e.left) | expr_vars(e.right)
    return set()


def is_wild(t):
    return isinstance(t, A.Wildcard) or (isinstance(t, A.Var) and t.name == "_")


class Reference:
    def __init__(self, rules, strata, facts):
        self.rules = rules
        self.strata = strata
        self.db = {}
        for name, rows in facts.items():
            self.db.setdefault(name, set()).update(tuple(key(v) for v in r) for r in rows)
        self.fresh = _counter()

    def rel(self, name):
        return self.db.setdefault(name, set())

    def match_atom(self, atom, b):
        for row in list(self.rel(atom.name)):
            nb = dict(b)
            ok = True
            for t, k in zip(atom.args, row):
                if is_wild(t):
                    nb[f"#w{next(self.fresh)}"] = k[1]
                    continue
                if isinstance(t, A.Const):
                    if key(t.value) != k:
                        ok = False
                        break
                elif t.name in nb:
                    if key(nb[t.name]) != k:
                        ok = False
                        break
                else:
                    nb[t.name] = k[1]
            if ok:
                yield nb

    def exists(self, atom, b):
        for row in self.rel(atom.name):
            if all(is_wild(t) or key(t.value if isinstance(t, A.Const) else b[t.name]) == k
                   for t, k in zip(atom.args, row)):
                return True
        return False

    def ready(self, lit, b):
        if isinstance(lit, A.Atom):
            return True
        if isinstance(lit, A.Negation):
            return all(t.name in b for t in lit.atom.args if isinstance(t, A.Var) and not is_wild(t))
        if isinstance(lit, A.MethodCall):
            return lit.var.name in b
        if isinstance(lit, A.Comparison):
            lv, rv = expr_vars(lit.left), expr_vars(lit.right)
            if all(v in b for v in lv | rv):
                return True
            if lit.op == "=":
                if isinstance(lit.left, A.Var) and lit.left.name not in b and all(v in b for v in rv):
                    return True
                if isinstance(lit.right, A.Var) and lit.right.name not in b and all(v in b for v in lv):
                    return True
            return False
        if isinstance(lit, A.Aggregate):
            return True  # keys are decided by the caller
        raise AssertionError(lit)

    def solve(self, body, b, outside):
        """Every binding (a dict) satisfying ``body`` extending ``b``."""
        if not body:
            yield b
            return
        # positive atoms before everything else keeps "bound by a positive atom" semantics
        order = sorted(range(len(body)), key=lambda i: 0 if isinstance(body[i], A.Atom) else 1)
        for i in order:
            lit = body[i]
            if isinstance(lit, A.Aggregate):
                keys = self.keys[id(lit)]
                if not all(k in b for k in keys):
                    continue
            elif not self.ready(lit, b):
                continue
            rest = body[:i] + body[i + 1:]
            for nb in self.apply(lit, b, body, i, outside):
                yield from self.solve(rest, nb, outside)
            return
        raise AssertionError("unsafe body reached the reference evaluator")

    def agg_keys(self, agg, body, i, outside):
        inner = set()
        for l in agg.body:
            inner |= lit_vars(l)
        others = set(outside)
        for j, l in enumerate(body):
            if j != i:
                others |= lit_vars(l)
        return {v for v in inner if v in others and v != agg.result.name}

    def apply(self, lit, b, body, i, outside):
        if isinstance(lit, A.Atom):
            yield from self.match_atom(lit, b)
        elif isinstance(lit, A.Negation):
            if not self.exists(lit.atom, b):
                yield b
        elif isinstance(lit, A.MethodCall):
            if method(lit.method, lit.arg, b[lit.var.name]):
                yield b
        elif isinstance(lit, A.Comparison):
            try:
                if lit.op == "=" and isinstance(lit.left, A.Var) and lit.left.name not in b:
                    yield {**b, lit.left.name: eval_expr(lit.right, b)}
                elif lit.op == "=" and isinstance(lit.right, A.Var) and lit.right.name not in b:
                    yield {**b, lit.right.name: eval_expr(lit.left, b)}
                elif compare(lit.op, eval_expr(lit.left, b), eval_expr(lit.right, b)):
                    yield b
            except Fail:
                return
        elif isinstance(lit, A.Aggregate):
            keys = self.keys[id(lit)]
            start = {k: b[k] for k in keys}
            seen = set()
            vals = []
            for m in self.solve(self.renamed[id(lit)], start, ()):
                # a match is identified by all its variables, wildcards included
                ident = tuple(sorted((k, key(v)) for k, v in m.items() if not k.startswith("#w")))
                if ident in seen:
                    continue
                seen.add(ident)
                vals.append(m[lit.target.name] if lit.target is not None else 1)
            try:
                res = aggregate(lit.func, vals)
            except Fail:
                return
            if res is None:
                return
            name = lit.result.name
            if name in b:
                if compare("=", b[name], res):
                    yield b
            else:
                yield {**b, name: res}

    def prepare(self, body, outside):
        """Group-by keys of every aggregate: its variables that occur elsewhere in the body."""
        for i, lit in enumerate(body):
            if isinstance(lit, A.Aggregate):
                keys = self.agg_keys(lit, body, i, outside)
                self.keys[id(lit)] = keys
                renamed = name_wildcards(lit.body)
                self.renamed[id(lit)] = renamed
                inner_outside = set(outside) | set(keys)
                for j, l in enumerate(body):
                    if j != i:
                        inner_outside |= lit_vars(l)
                self.prepare(renamed, inner_outside)

    def run(self):
        self.keys, self.renamed = {}, {}
        for r in self.rules:
            self.prepare(list(r.body), {t.name for t in r.head.args if isinstance(t, A.Var)})
        for stratum in self.strata:
            rules = [r for r in self.rules if r.head.name in stratum]
            while True:
                new = set()
                for r in rules:
                    outside = {t.name for t in r.head.args if isinstance(t, A.Var)}
                    for b in self.solve(list(r.body), {}, outside):
                        row = tuple(key(t.value) if isinstance(t, A.Const) else key(b[t.name]) for t in r.head.args)
                        if row not in self.rel(r.head.name):
                            new.add((r.head.name, row))
                if not new:
                    break
                for name, row in new:
                    self.rel(name).add(row)
        # rows of (kind, value) pairs: Python would merge 1, 1.0 and True
        return {name: frozenset(rows) for name, rows in self.db.items()}


def name_wildcards(body):
    """Give every ``_`` of a positive atom its own hidden variable ``#h<lit>_<col>``."""
    out = []
    for i, l in enumerate(body):
        if isinstance(l, A.Atom):
            args = tuple(A.Var(f"#h{i}_{c}") if is_wild(t) else t for c, t in enumerate(l.args))
            l = A.Atom(l.name, args, l.loc)
        out.append(l)
    return out


def lit_vars(l):
    if isinstance(l, A.Atom):
        return {t.name for t in l.args if isinstance(t, A.Var) and not is_wild(t)}
    if isinstance(l, A.Negation):
        return lit_vars(l.atom)
    if isinstance(l, A.Comparison):
        return expr_vars(l.left) | expr_vars(l.right)
    if isinstance(l, A.MethodCall):
        return {l.var.name}
    if isinstance(l, A.Aggregate):
        out = {l.result.name}
        for x in l.body:
            out |= lit_vars(x)
        return out
    return set()


def aggregate(func, vals):
    if func == "count":
        return len(vals)
    if not vals:
        return None
    if not all(is_num(v) for v in vals):
        raise Fail("type")
    if func == "sum":
        if all(type(v) is int for v in vals):
            s = 0
            for v in vals:
                s += v
                if not INT_MIN <= s <= INT_MAX:
                    raise Fail("overflow")
            return s
        return math.fsum(vals)
    if func == "min":
        return min(vals)
    if func == "max":
        return max(vals)
    return math.fsum(vals) / len(vals)


def evaluate(rules, strata, facts):
    """The model of ``rules`` over ``facts``: name -> frozenset of rows of (kind, value)."""
    return Reference(list(rules), [set(s) for s in strata], facts).run()
