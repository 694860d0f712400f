"""Source text of rules, policy expressions and values, rebuilt from the AST.

Explanations quote what they used (a rule, a condition clause, a scope
constraint) in the language's own spelling, so that a reader can find it in
the file; the location (file:line) is given next to it. The AST keeps no
source text beyond one line, hence these printers. They are only called
while building an explanation, never on the decision path.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..lang import ast as A
from ..policy.policies import CRecord, CSet
from ..values import Entity, format_value

__all__ = ["expr", "fact", "json_value", "literal", "rule", "scope", "value", "where"]


def value(v: Any) -> str:
    """A value as the language spells it (sets and records in Cedar syntax)."""
    if type(v) is CSet:
        return "[" + ", ".join(sorted(value(x) for x in v)) + "]"
    if type(v) is CRecord or isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {value(x)}" for k, x in sorted(v.items())) + "}"
    return format_value(v)


def json_value(v: Any) -> Any:
    """A JSON-ready value: entities as ``{"type", "id"}``, sets as sorted lists."""
    t = type(v)
    if t is Entity:
        return {"type": v.type, "id": v.id}
    if t is CSet:
        return sorted((json_value(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if t is CRecord or isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if t is float and math.isnan(v):  # NaN is not JSON
        return str(v)
    return v


def fact(relation: str, row: tuple) -> str:
    """``rel(v1, v2)``; an arity-0 fact is the bare name."""
    if not row:
        return relation
    return f"{relation}({', '.join(value(v) for v in row)})"


def where(loc: A.Loc) -> str:
    """``file:line`` of a location (``file`` alone when the line is unknown)."""
    if loc.line:
        return f"{loc.file}:{loc.line}"
    return loc.file


# -- rules ------------------------------------------------------------------------------


def _term(t: Any) -> str:
    if type(t) is A.Var:
        return t.name
    if type(t) is A.Wildcard:
        return "_"
    if type(t) is A.Const:
        return format_value(t.value)
    if type(t) is A.BinOp:
        return f"({_term(t.left)} {t.op} {_term(t.right)})"
    return str(t)


def _rexpr(e: Any) -> str:
    if type(e) is A.BinOp:
        return f"{_term(e.left)} {e.op} {_term(e.right)}"
    return _term(e)


def atom(a: A.Atom) -> str:
    if not a.args:
        return a.name
    return f"{a.name}({', '.join(_term(t) for t in a.args)})"


def literal(lit: Any) -> str:
    t = type(lit)
    if t is A.Atom:
        return atom(lit)
    if t is A.Negation:
        return "not " + atom(lit.atom)
    if t is A.Comparison:
        return f"{_rexpr(lit.left)} {lit.op} {_rexpr(lit.right)}"
    if t is A.MethodCall:
        return f"{lit.var.name}.{lit.method}({json.dumps(lit.arg, ensure_ascii=False)})"
    if t is A.Aggregate:
        target = f" {lit.target.name}" if lit.target is not None else ""
        body = ", ".join(literal(x) for x in lit.body)
        return f"{lit.result.name} = {lit.func}{target} : {{ {body} }}"
    return str(lit)


def rule(r: A.Rule) -> str:
    if not r.body:
        return atom(r.head) + "."
    return f"{atom(r.head)} :- {', '.join(literal(x) for x in r.body)}."


# -- policies ---------------------------------------------------------------------------

_SIMPLE = (A.Lit, A.VarRef, A.SetLit, A.RecordLit, A.GetAttr, A.Method, A.RelCall)


def _sub(e: Any) -> str:
    s = expr(e)
    return s if isinstance(e, _SIMPLE) else f"({s})"


def _like(pattern: tuple) -> str:
    out = []
    for part in pattern:
        if part is A.LIKE_WILDCARD:
            out.append("*")
        else:
            out.append(json.dumps(part, ensure_ascii=False)[1:-1].replace("*", "\\*"))
    return '"' + "".join(out) + '"'


def expr(e: Any) -> str:
    """A policy expression in Cedar syntax (nested operators parenthesized)."""
    t = type(e)
    if t is A.Lit:
        return value(e.value)
    if t is A.VarRef:
        return e.name
    if t is A.SetLit:
        return "[" + ", ".join(expr(x) for x in e.items) + "]"
    if t is A.RecordLit:
        return "{" + ", ".join(f"{k}: {expr(x)}" for k, x in e.items) + "}"
    if t is A.GetAttr:
        if e.name.isidentifier():
            return f"{_sub(e.obj)}.{e.name}"
        return f"{_sub(e.obj)}[{json.dumps(e.name, ensure_ascii=False)}]"
    if t is A.Has:
        name = e.name if e.name.isidentifier() else json.dumps(e.name, ensure_ascii=False)
        return f"{_sub(e.obj)} has {name}"
    if t is A.Like:
        return f"{_sub(e.obj)} like {_like(e.pattern)}"
    if t is A.Is:
        s = f"{_sub(e.obj)} is {e.type}"
        return s + (f" in {_sub(e.in_expr)}" if e.in_expr is not None else "")
    if t is A.Unary:
        return f"{e.op}{_sub(e.operand)}"
    if t is A.Binary:
        return f"{_sub(e.left)} {e.op} {_sub(e.right)}"
    if t is A.IfThenElse:
        return f"if {expr(e.cond)} then {expr(e.then)} else {expr(e.else_)}"
    if t is A.Method:
        return f"{_sub(e.obj)}.{e.name}({', '.join(expr(x) for x in e.args)})"
    if t is A.RelCall:
        return f"{e.name}({', '.join('_' if type(x) is A.Wildcard else expr(x) for x in e.args)})"
    if t is A.Wildcard:
        return "_"
    return str(e)


def scope(var: str, c: A.ScopeConstraint) -> str:
    """One scope slot as written: ``principal in Group::"x"``, ``resource is Doc``..."""
    k = c.kind
    if k == "any":
        return var
    if k == "eq":
        return f"{var} == {c.entity}"
    if k == "in":
        return f"{var} in {c.entity}"
    if k == "is":
        return f"{var} is {c.type}" + (f" in {c.entity}" if c.entity is not None else "")
    if k == "in_set":
        return f"{var} in [{', '.join(str(x) for x in c.entities)}]"
    return f"{var} {k}"
