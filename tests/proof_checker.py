"""An independent checker for proof trees (``rune_fast.analysis.proofs``).

It trusts only the front end (to read the program's rules and data) and the
engine's model (to know which facts hold); it re-does every step itself:

- a rule step's head, instantiated with its bindings, is the fact it proves;
- it has one child per body literal: a positive atom's child proves the
  instantiated atom (wildcards match anything) and that fact is in the model;
  a negation's child says "absent" and no fact of the model matches it; a
  comparison or method holds under the bindings (own evaluator below);
- leaves are base facts: rows stated in the program's data, or request facts;
- no fact repeats on any root-to-leaf path (well-founded, finite).
"""

from __future__ import annotations

from rune_fast.lang import ast as A
from rune_fast.lang import parser
from rune_fast.values import value_key


class ProofError(AssertionError):
    pass


def _k(row) -> tuple:
    return tuple(value_key(v) for v in row)


class Checker:
    def __init__(self, engine, text: str, principal, action, resource, context=None, entities=None):
        bundle = parser.bundle_from_text(text, "<string>")
        self.rules = bundle.rules
        self.data: set = set()
        for fs in bundle.facts:
            for row in fs.rows:
                self.data.add((fs.relation, _k(row)))
        p, a, r, ctx, ents = engine._parse_request(principal, action, resource, context, entities)
        self.request: set = {("principal", _k((p,))), ("action", _k((a,))), ("resource", _k((r,)))}
        for k, v in (ctx or {}).items():
            try:
                self.request.add(("context", _k((k, v))))
            except TypeError:
                pass
        if ents is not None:
            self.request.update(("parent", _k(row)) for row in ents.parent_rows)
            self.request.update(("attr", _k(row)) for row in ents.attr_rows)
        # the model: every relation of the request's model plus the static one
        self.model: dict[str, set] = {}
        arities = engine.info.arities
        for rel, n in arities.items():
            if rel in ("principal", "action", "resource", "context"):
                continue
            vars_ = ", ".join(f"X{i}" for i in range(n))
            atom = f"{rel}({vars_})" if n else rel
            rows = set()
            if rel in engine.model.compiled.slot_of:
                for b in engine.query(atom, principal=principal, action=action, resource=resource,
                                      context=context, entities=entities):
                    rows.add(tuple(value_key(b[f"X{i}"]) for i in range(n)))
                for row in engine.model.relation(rel):
                    rows.add(_k(row))
            self.model[rel] = rows
        for rel, row in self.request:
            self.model.setdefault(rel, set()).add(row)
        self.steps = 0

    def holds(self, rel: str, row_key: tuple) -> bool:
        return row_key in self.model.get(rel, ())

    def check(self, node, path: frozenset = frozenset()) -> None:
        self.steps += 1
        kind = node.kind
        if kind in ("absent", "check"):
            raise ProofError(f"{kind} node outside a rule step: {node}")
        key = (node.relation, _k(node.row))
        if key in path:
            raise ProofError(f"cycle: {node.fact} is its own ancestor")
        if not self.holds(*key):
            raise ProofError(f"{node.fact} is not in the model")
        if kind in ("data", "source"):
            if key not in self.data:
                raise ProofError(f"leaf {node.fact} is not a stated fact")
            return
        if kind == "request":
            if key not in self.request and key not in self.data:
                raise ProofError(f"leaf {node.fact} is not a request fact")
            return
        if kind != "rule":
            raise ProofError(f"unexpected node kind {kind} for {node.fact}")
        rule = node.rule
        if rule not in self.rules:
            raise ProofError(f"{node.fact}: the rule is not in the program")
        b = dict(node.bindings)
        head = tuple(self.term(t, b) for t in rule.head.args)
        if rule.head.name != node.relation or _k(head) != _k(node.row):
            raise ProofError(f"{node.fact}: the rule head does not instantiate to it")
        if len(node.children) != len(rule.body):
            raise ProofError(f"{node.fact}: {len(node.children)} children for {len(rule.body)} body literals")
        inner = path | {key}
        for lit, child in zip(rule.body, node.children):
            self.literal(lit, child, b, inner)

    def term(self, t, b):
        if type(t) is A.Var:
            if t.name not in b:
                raise ProofError(f"unbound variable {t.name}")
            return b[t.name]
        if type(t) is A.Const:
            return t.value
        return None  # wildcard

    def expr(self, e, b):
        if type(e) is A.BinOp:
            x, y = self.expr(e.left, b), self.expr(e.right, b)
            if e.op == "+":
                return x + y
            if e.op == "-":
                return x - y
            if e.op == "*":
                return x * y
            q = abs(x) // abs(y)
            q = q if (x >= 0) == (y >= 0) else -q
            return q if e.op == "/" else x - q * y
        return self.term(e, b)

    def literal(self, lit, child, b, path) -> None:
        t = type(lit)
        if t is A.Atom:
            want = tuple(self.term(x, b) for x in lit.args)
            if child.relation != lit.name or len(child.row) != len(want):
                raise ProofError(f"child {child.fact} does not match {lit.name}")
            for w, v in zip(want, child.row):
                if w is not None and value_key(w) != value_key(v):
                    raise ProofError(f"child {child.fact} does not instantiate {lit.name}")
            self.check(child, path)
        elif t is A.Negation:
            if child.kind != "absent":
                raise ProofError("a negation needs an 'absent' child")
            want = tuple(self.term(x, b) for x in lit.atom.args)
            for row in self.model.get(lit.atom.name, ()):
                if all(w is None or value_key(w) == v for w, v in zip(want, row)):
                    raise ProofError(f"negated atom {lit.atom.name}{want} matches a fact of the model")
        elif t is A.Comparison:
            if child.kind != "check":
                raise ProofError("a comparison needs a 'check' child")
            x, y = self.expr(lit.left, b), self.expr(lit.right, b)
            nums = all(type(v) in (int, float) for v in (x, y))
            ok = {
                "=": (x == y) if nums else value_key(x) == value_key(y),
                "!=": (x != y) if nums else value_key(x) != value_key(y),
                "<": nums and x < y, "<=": nums and x <= y, ">": nums and x > y, ">=": nums and x >= y,
            }[lit.op]
            if not ok:
                raise ProofError(f"comparison {lit.op} fails for {x!r}, {y!r}")
        elif t is A.MethodCall:
            v = b[lit.var.name]
            if not isinstance(v, str):
                raise ProofError("method on a non-string")
        else:
            if child.kind != "check":
                raise ProofError("an aggregate needs a 'check' child")
