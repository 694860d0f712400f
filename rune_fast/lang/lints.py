"""Lints: legal programs that are probably not what their author meant.

``rune check`` prints them as warnings after a bundle loads without errors
(``--strict`` turns them into a failing exit code); loading an engine never
runs them, so they cost nothing on the reload path. Each lint has a stable
code that ``rune check --json`` reports:

- ``broken-entity``: a ``[data]`` string that looks like a mistyped entity
  literal (``"User::dave"``, ``'User::'dave''``, ``' User::"dave"'``). Only a
  string whose *whole* text is an entity literal becomes an entity, so these
  silently stay strings and never match the entities of a request.
- ``unread-relation``: a relation that has facts but that no rule body,
  aggregate or policy reads (the reserved ``parent``/``attr`` are read by
  policies implicitly and are exempt). Often a misspelt name on one side.
- ``dead-policy``: a policy that can never apply: a ``when`` with a
  conjunct that is the constant ``false`` or a call to a relation that can
  never hold a fact, or an ``unless`` with a disjunct that is the constant
  ``true``.

"Can never hold a fact" is decided by a small fixpoint that over-approximates
what may be derived (a relation with facts, a request or reserved relation,
or the head of a rule whose positive atoms all may hold facts), so a
``dead-policy`` warning is never a false alarm about derivable data.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from . import ast as A
from .checks import REQUEST_RELATIONS, RESERVED_RELATIONS

__all__ = ["Lint", "lint_bundle", "LINT_CODES"]

LINT_CODES = ("broken-entity", "unread-relation", "dead-policy")


@dataclass(frozen=True)
class Lint:
    """One warning, located like an error."""

    code: str
    message: str
    file: str
    line: int
    column: int
    source_line: str = ""

    def render(self) -> str:
        """``file:line:col: warning[code]: message`` plus the line and a caret."""
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        head = f"{where}: warning[{self.code}]: {self.message}"
        if not self.source_line or not self.line:
            return head
        caret = " " * max(self.column - 1, 0) + "^"
        return f"{head}\n    {self.source_line.rstrip()}\n    {caret}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "file": self.file, "line": self.line,
                "column": self.column}


def _lint(code: str, message: str, loc: A.Loc) -> Lint:
    return Lint(code, message, loc.file, loc.line, loc.col, loc.text)


def lint_bundle(bundle: A.Bundle) -> list[Lint]:
    """Every lint of a bundle that loaded and passed its checks, in file order."""
    found = [*_broken_entities(bundle), *_unread_relations(bundle), *_dead_policies(bundle)]
    found.sort(key=lambda w: (w.file, w.line, w.column))
    return found


# --------------------------------------------------------------------------
# broken-entity

_TYPE_PATH = r"[A-Z][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"
#: Starts like an entity literal (a capitalised type path and ``::``).
_LOOKS_LIKE = re.compile(r"\s*(" + _TYPE_PATH + r")\s*::\s*(.*)", re.S)
#: A complete entity literal somewhere inside a longer string.
_INSIDE = re.compile(_TYPE_PATH + r'::"(?:[^"\\]|\\.)*"')


def _entity_suggestion(text: str) -> Optional[str]:
    """What the author probably meant, as a TOML literal string, or None."""
    m = _LOOKS_LIKE.fullmatch(text)
    if m is not None:
        ident = m.group(2).strip().strip("'\"")
        if ident and '"' not in ident and "\\" not in ident and "'" not in ident:
            return f"""'{m.group(1)}::"{ident}"'"""
        return None
    inner = _INSIDE.search(text)
    return f"'{inner.group(0)}'" if inner is not None and "'" not in inner.group(0) else None


def _looks_broken(text: str) -> bool:
    return _LOOKS_LIKE.match(text) is not None or _INSIDE.search(text) is not None


def _broken_entities(bundle: A.Bundle) -> Iterator[Lint]:
    for rf in bundle.files:
        for fs in rf.facts:  # [data] only: source files have their own typing rules
            seen: set[str] = set()
            for i, row in enumerate(fs.rows):
                for v in row:
                    if type(v) is not str or "::" not in v or v in seen:
                        continue
                    seen.add(v)
                    if not _looks_broken(v):
                        continue
                    hint = _entity_suggestion(v)
                    fix = f"; did you mean the entity {hint}?" if hint else ""
                    yield _lint(
                        "broken-entity",
                        f"{fs.relation}: fact {i + 1} has the string {v!r}, which is not an entity "
                        f"(only a string whose whole text is an entity literal is one){fix}",
                        fs.loc,
                    )


# --------------------------------------------------------------------------
# unread-relation


def _nodes(node: Any) -> Iterator[Any]:
    """Every AST node under ``node`` (itself included), whatever its class."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (tuple, list)):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, (A.Loc, type)):
            yield n
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n) if f.name != "loc")


def _read_relations(bundle: A.Bundle) -> set[str]:
    read: set[str] = set()
    for rule in bundle.rules:
        read.update(n.name for n in _nodes(rule.body) if isinstance(n, A.Atom))
    for policy in bundle.policies:
        read.update(n.name for n in _nodes(policy.conditions) if isinstance(n, A.RelCall))
    return read


def _unread_relations(bundle: A.Bundle) -> Iterator[Lint]:
    read = _read_relations(bundle)
    for fs in bundle.facts:
        if fs.rows and fs.relation not in read and fs.relation not in RESERVED_RELATIONS:
            yield _lint(
                "unread-relation",
                f"relation {fs.relation} has facts but no rule or policy reads it",
                fs.loc,
            )


# --------------------------------------------------------------------------
# dead-policy


def _name(x: Any) -> str:
    """An operator or kind as text, whether the AST stores a str or an enum."""
    return str(getattr(x, "value", x))


def _may_hold_facts(bundle: A.Bundle) -> set[str]:
    """Relations that may hold a fact (an over-approximation, see the module doc)."""
    live = {fs.relation for fs in bundle.facts if fs.rows}
    live.update(REQUEST_RELATIONS, RESERVED_RELATIONS)
    changed = True
    while changed:
        changed = False
        for rule in bundle.rules:
            head = rule.head.name
            if head in live:
                continue
            if all(lit.name in live for lit in rule.body if isinstance(lit, A.Atom)):
                live.add(head)
                changed = True
    return live


def _split(expr: Any, op: str) -> Iterator[Any]:
    if isinstance(expr, A.Binary) and _name(expr.op) == op:
        yield from _split(expr.left, op)
        yield from _split(expr.right, op)
    else:
        yield expr


def _constant(expr: Any) -> Optional[bool]:
    if isinstance(expr, A.Lit) and type(expr.value) is bool:
        return expr.value
    if isinstance(expr, A.Unary) and _name(expr.op) == "!":
        inner = _constant(expr.operand)
        return None if inner is None else not inner
    return None


def _never_true(expr: Any, live: set[str]) -> Optional[str]:
    """Why a ``when`` expression can never be true, or None."""
    for part in _split(expr, "&&"):
        if _constant(part) is False:
            return "its when condition is always false"
        if isinstance(part, A.RelCall) and part.name not in live:
            return f"its when condition calls {part.name}, which has no facts and no rule that can derive one"
    return None


def _dead_policies(bundle: A.Bundle) -> Iterator[Lint]:
    live = _may_hold_facts(bundle)
    for policy in bundle.policies:
        why = None
        for cond in policy.conditions:
            if _name(cond.kind) == "when":
                why = _never_true(cond.expr, live)
            elif any(_constant(part) is True for part in _split(cond.expr, "||")):
                why = "its unless condition is always true"
            if why:
                break
        if why:
            yield _lint("dead-policy", f"policy {policy.id} can never apply: {why}", policy.loc)
