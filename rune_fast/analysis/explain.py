"""Explanations: why a request was permitted, forbidden or denied.

``Engine.explain(principal, action, resource, context, entities)`` returns an
``Explanation``: the decision, and for each policy that matters a report:

- **permit / forbid:** the determining policies (the satisfied permits, or
  the satisfied forbids), each with its scope matches (for ``in``, the chain
  of ``parent`` facts, each with its proof), every condition clause with its
  value, and for every relation fact the clause consulted, a proof tree down
  to the ``[data]``/``[sources]``/request facts that stated it
  (``proofs.py``); a fact that was absent is shown as absent.
- **deny ("why not"):** every permit policy whose action scope admits the
  action, with the first scope constraint or condition clause that failed
  and the values it compared (``resource.level > principal.level`` shows
  both levels; a relation call shows the fact and that it is absent, or,
  under ``unless`` or ``!``, its proof).
- Policies that raised an error are always listed with the error.

Why it is shaped like this:

- **No third evaluator.** Clauses and their sub-expressions are evaluated
  by the policy layer's own closure compiler (the reference backend) against
  the same ``PolicyData`` the decision used, wrapped to record the relation
  lookups a clause makes; scopes are read from the policy AST.
- **Built on demand.** Nothing is recorded while authorizing; an
  explanation re-runs the request once (building its Datalog model eagerly)
  and then walks only the policies it reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..errors import RuneError, RuneEvalError
from ..lang import ast as A
from ..policy.decision import Decision
from ..policy.policies import MISSING, OverlayData, kind_name
from ..values import Entity
from ..values import from_key as from_row_key
from . import render
from .expressions import compiled
from .proofs import ProofNode, Prover

__all__ = ["ClauseCheck", "Explanation", "FactUse", "PolicyReport", "ScopeCheck", "explain"]

#: At most this many ancestors are listed when an ``in`` fails.
MAX_LISTED = 20



@dataclass(frozen=True, slots=True)
class FactUse:
    """A relation fact a clause consulted: present (with its proof) or absent."""

    fact: str
    present: bool
    proof: ProofNode | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"fact": self.fact, "present": self.present}
        if self.proof is not None:
            d["proof"] = self.proof.to_dict()
        return d

    def render(self, indent: str) -> list[str]:
        if not self.present:
            return [f"{indent}{self.fact}: absent (no such fact)"]
        if self.proof is None:
            return [f"{indent}{self.fact}: present"]
        return self.proof.render(indent)


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """One scope slot: its constraint, whether it matched, and how."""

    slot: str
    text: str
    matched: bool
    detail: str = ""
    path: tuple[ProofNode, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"slot": self.slot, "constraint": self.text, "matched": self.matched}
        if self.detail:
            d["detail"] = self.detail
        if self.path:
            d["path"] = [p.to_dict() for p in self.path]
        return d

    def render(self, indent: str) -> list[str]:
        lines = [f"{indent}{self.text}: {'matches' if self.matched else 'DOES NOT MATCH'}"
                 + (f" ({self.detail})" if self.detail else "")]
        for p in self.path:
            lines.extend(p.render(indent + "    "))
        return lines


@dataclass(frozen=True, slots=True)
class ClauseCheck:
    """One ``when``/``unless`` clause: its value, whether it let the policy
    through, the sub-expression to blame when it did not, the facts used."""

    kind: str
    text: str
    loc: A.Loc
    holds: bool
    value: Any = None
    error: str = ""
    blame: dict | None = None
    facts: tuple[FactUse, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "text": self.text, "file": self.loc.file, "line": self.loc.line,
                             "holds": self.holds}
        if self.error:
            d["error"] = self.error
        else:
            d["value"] = render.json_value(self.value)
        if self.blame is not None:
            d["failed"] = dict(self.blame)
        d["facts"] = [f.to_dict() for f in self.facts]
        return d

    def render(self, indent: str) -> list[str]:
        got = f"error: {self.error}" if self.error else render.value(self.value)
        status = "holds" if self.holds else "FAILS"
        lines = [f"{indent}{self.kind} {{ {self.text} }} ({render.where(self.loc)}): {got}, {status}"]
        if self.blame is not None:
            lines.append(f"{indent}    because {self.blame['text']}: {self.blame['detail']}")
        for f in self.facts:
            lines.extend(f.render(indent + "    "))
        return lines


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """What one policy did for this request.

    ``status``: ``"satisfied"``, ``"scope"`` (a scope constraint failed),
    ``"condition"`` (a clause failed) or ``"error"``. ``determining`` is true
    for the policies named in ``Decision.reasons``.
    """

    id: str
    effect: str
    loc: A.Loc
    status: str
    determining: bool
    scope: tuple[ScopeCheck, ...] = ()
    conditions: tuple[ClauseCheck, ...] = ()
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "effect": self.effect,
            "file": self.loc.file,
            "line": self.loc.line,
            "status": self.status,
            "determining": self.determining,
            "scope": [s.to_dict() for s in self.scope],
            "conditions": [c.to_dict() for c in self.conditions],
        }
        if self.error:
            d["error"] = self.error
        return d

    def render(self, indent: str = "") -> list[str]:
        what = {"satisfied": "satisfied", "scope": "scope does not match", "condition": "condition fails",
                "error": f"error: {self.error}"}[self.status]
        lines = [f"{indent}{self.effect} {self.id} ({render.where(self.loc)}): {what}"]
        for s in self.scope:
            lines.extend(s.render(indent + "    "))
        for c in self.conditions:
            lines.extend(c.render(indent + "    "))
        return lines


@dataclass(frozen=True)
class Explanation:
    """A decision with the reasons behind it (see the module docstring).

    ``decision`` is the ``Decision`` ``authorize`` gives for the request;
    ``policies`` the reports, in bundle order; ``why_not`` is true for a deny
    (the reports are then the permits that could have applied).
    """

    decision: Decision
    principal: Entity
    action: Entity
    resource: Entity
    policies: tuple[PolicyReport, ...] = ()
    why_not: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (PDP responses, logs)."""
        return {
            "decision": self.decision.to_dict(),
            "request": {
                "principal": render.json_value(self.principal),
                "action": render.json_value(self.action),
                "resource": render.json_value(self.resource),
            },
            "why_not": self.why_not,
            "policies": [p.to_dict() for p in self.policies],
        }

    def render(self) -> str:
        """An indented, human-readable tree (``rune eval --explain``)."""
        d = self.decision
        req = f"{self.principal} / {self.action} / {self.resource}"
        lines = [f"{d.decision}: {req}"]
        for pid, msg in d.errors:
            if pid == "<engine>":
                lines.append(f"    engine error: {msg}")
        if self.why_not:
            if self.policies:
                lines.append("why not: no permit policy is satisfied; the permits for this action:")
            else:
                lines.append("why not: no permit policy applies to this action")
        for p in self.policies:
            lines.extend(p.render("    " if self.why_not else ""))
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Building an explanation


class _Recorder:
    """``PolicyData`` that records the relation lookups made through it."""

    __slots__ = ("data", "log")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.log: list[tuple[str, tuple, bool]] = []

    def is_in(self, entity: Entity, target: Entity) -> bool:
        return self.data.is_in(entity, target)

    def get_attr(self, entity: Entity, name: str) -> Any:
        return self.data.get_attr(entity, name)

    def contains(self, relation: str, row: tuple) -> bool:
        got = self.data.contains(relation, row)
        self.log.append((relation, tuple(from_row_key(x) for x in row), got))
        return got

    def matches(self, relation: str, row: tuple) -> bool:
        got = self.data.matches(relation, row)
        self.log.append((relation, tuple(None if x is None else from_row_key(x) for x in row), got))
        return got


class _Context:
    """Everything one explanation needs: the request, its data, the prover."""

    def __init__(self, engine: Any, p: Entity, a: Entity, r: Entity, ctx: Any, ents: Any) -> None:
        self.engine = engine
        self.p, self.a, self.r, self.ctx, self.ents = p, a, r, ctx, ents
        has_ents = ents is not None and bool(ents.parents or ents.attrs)
        if engine._core_dep or has_ents:
            model = engine._with_request([(p,)], [(a,)], [(r,)], ctx, ents)
        else:  # no rule reads the request: its model is the engine's own
            model = engine._model
        data = OverlayData(engine._static, ents.parents if ents else None, ents.attrs if ents else None)
        if engine._dynamic_hierarchy or (has_ents and engine._entity_hierarchy):
            data.hierarchy = model
        dep = engine._core_dep | engine._entity_dep if has_ents else engine._core_dep
        for n in engine.policies.relations & dep:
            data.rels[n] = model
        self.data = data
        self.model = model
        req_rows: set = set()
        if ents is not None:
            req_rows.update(("parent", tuple(r)) for r in ents.parent_rows)
            req_rows.update(("attr", tuple(r)) for r in ents.attr_rows)
        self.req_rows = req_rows
        # parent/attr rows the engine keeps out of the core are read by no
        # rule, so a proof only ever meets them as leaves (``base``)
        self.prover = Prover(model, {}, engine.rules, engine.info.rule_info, self.base)

    def base(self, rel: str, row: tuple) -> dict | None:
        """The origin of a base fact, ``None`` for a derived one."""
        if rel in ("principal", "action", "resource"):
            return {"kind": "request", "field": rel}
        if rel == "context":
            return {"kind": "request", "field": f"context.{row[0]}" if row else "context"}
        if rel in ("parent", "attr") and (rel, row) in self.req_rows:
            return {"kind": "request", "field": "entities"}
        engine = self.engine
        prov = engine._provenance
        if rel not in engine.info.idb or prov.is_stated(rel, row):
            return prov.origin(rel, row)
        return None

    # -- evaluation ------------------------------------------------------------

    def evaluate(self, pid: str, node: Any, data: Any) -> tuple[bool, Any]:
        """``(True, value)`` or ``(False, error message)`` for one expression."""
        try:
            fn = compiled(node, pid)
            return True, fn(self.p, self.a, self.r, self.ctx, data)
        except RuneEvalError as e:
            return False, e.message
        except RuneError as e:  # cannot compile on its own (should not happen)
            return False, e.message

    def proof_of(self, rel: str, row: tuple) -> ProofNode | None:
        """A proof of a fact; ``row`` may hold ``None`` (``_``): the first witness is proved."""
        if None in row:
            rows = self.prover.match(rel, row)
            if not rows:
                return None
            row = min(rows, key=lambda r: tuple(render.value(v) for v in r))
        return self.prover.prove(rel, tuple(row))

    # -- scopes ----------------------------------------------------------------

    def parents_of(self, n: Entity) -> list:
        data = self.data
        if data.hierarchy is not None:
            return [p for (p,) in data.hierarchy.match("parent", (n,))]
        out = list(self.engine._static.parents.get(n, ()))
        out.extend(data.req_parents.get(n, ()))
        return out

    def path(self, e: Entity, target: Entity) -> list[Entity]:
        """A shortest ``parent`` chain from ``e`` to ``target`` (breadth first, bounded)."""
        prev: dict = {e: None}
        todo = [e]
        i = 0
        while i < len(todo) and i < 100_000:
            n = todo[i]
            i += 1
            for p in sorted(self.parents_of(n)):
                if p in prev:
                    continue
                prev[p] = n
                if p == target:
                    chain = [p]
                    while prev[chain[-1]] is not None:
                        chain.append(prev[chain[-1]])
                    return chain[::-1]
                todo.append(p)
        return []

    def in_check(self, slot: str, text: str, e: Entity, target: Entity) -> ScopeCheck:
        if e == target:
            return ScopeCheck(slot, text, True, f"{e} is {target}")
        if not self.data.is_in(e, target):
            anc = self.ancestors(e)
            listed = ", ".join(str(x) for x in anc[:MAX_LISTED]) + (", ..." if len(anc) > MAX_LISTED else "")
            return ScopeCheck(slot, text, False, f"{e} is not in {target}; its ancestors: {listed or 'none'}")
        chain = self.path(e, target)
        proofs = []
        for child, par in pairwise(chain):
            node = self.proof_of("parent", (child, par))
            proofs.append(node if node is not None else ProofNode("request", "parent", (child, par),
                                                                  origin={"kind": "request", "field": "entities"}))
        return ScopeCheck(slot, text, True, " in ".join(str(x) for x in chain) if chain else f"{e} in {target}",
                          tuple(proofs))

    def ancestors(self, e: Entity) -> list[Entity]:
        seen: set = set()
        todo = [e]
        while todo and len(seen) < 10_000:
            for p in self.parents_of(todo.pop()):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return sorted(seen)

    def scope(self, slot: str, c: A.ScopeConstraint, e: Entity) -> ScopeCheck:
        text = render.scope(slot, c)
        k = c.kind
        if k == "any":
            return ScopeCheck(slot, text, True, f"any {slot}: {e}")
        if k == "eq":
            ok = e == c.entity
            return ScopeCheck(slot, text, ok, f"{slot} is {e}")
        if k == "is":
            if e.type != c.type:
                return ScopeCheck(slot, text, False, f"{e} has type {e.type}, not {c.type}")
            if c.entity is None:
                return ScopeCheck(slot, text, True, f"{e} has type {c.type}")
            return self.in_check(slot, text, e, c.entity)
        if k == "in":
            assert c.entity is not None
            return self.in_check(slot, text, e, c.entity)
        if k == "in_set":
            for t in c.entities:
                if e == t or self.data.is_in(e, t):
                    return self.in_check(slot, text, e, t)
            return ScopeCheck(slot, text, False, f"{e} is in none of them")
        return ScopeCheck(slot, text, False, f"unknown constraint {k}")

    # -- clauses ----------------------------------------------------------------

    def facts_used(self, log: list) -> tuple[FactUse, ...]:
        out = []
        seen = set()
        for rel, row, present in log:
            key = (rel, row)
            if key in seen:
                continue
            seen.add(key)
            text = render.fact(rel, tuple("_" if v is None else v for v in row)).replace('"_"', "_")
            if present:
                out.append(FactUse(text, True, self.proof_of(rel, row)))
            else:
                out.append(FactUse(text, False))
        return tuple(out)

    def blame(self, pid: str, node: Any, want: bool) -> dict:
        """The innermost sub-expression that made ``node`` not evaluate to ``want``."""
        t = type(node)
        if t is A.Binary and node.op in ("&&", "||"):
            parts = _flatten(node, node.op)
            # && wanted true: the first part that is not true; || wanted false: the first that is not false
            if (node.op == "&&") == want:
                for part in parts:
                    ok, v = self.evaluate(pid, part, self.data)
                    if not ok or v is not want:
                        return self.blame(pid, part, want)
        if t is A.Unary and node.op == "!":
            ok, v = self.evaluate(pid, node.operand, self.data)
            if ok and type(v) is bool:
                return self.blame(pid, node.operand, not want)
        return self.leaf_detail(pid, node, want)

    def leaf_detail(self, pid: str, node: Any, want: bool) -> dict:
        text = render.expr(node)
        ok, v = self.evaluate(pid, node, self.data)
        out: dict[str, Any] = {"text": text, "line": getattr(getattr(node, "loc", None), "line", 0)}
        if not ok:
            out["error"] = v
            out["detail"] = f"error: {v}"
            return out
        out["value"] = render.json_value(v)
        t = type(node)
        if t is A.RelCall:
            args: list = []
            for a in node.args:
                if type(a) is A.Wildcard:
                    args.append(None)
                else:
                    ok2, av = self.evaluate(pid, a, self.data)
                    args.append(av if ok2 else None)
            fact = render.fact(node.name, tuple("_" if x is None else x for x in args)).replace('"_"', "_")
            out["fact"] = fact
            out["detail"] = f"{fact} is {'present' if v is True else 'absent'}"
            return out
        if t is A.Binary or t is A.Like or t is A.Is or t is A.Has or t is A.Method:
            parts = []
            for name, sub in _operands(node):
                ok2, sv = self.evaluate(pid, sub, self.data)
                shown = render.value(sv) if ok2 else f"error: {sv}"
                parts.append(f"{name} {render.expr(sub)} = {shown}")
                if type(node) is A.Has and ok2 and type(sv) is Entity:
                    has = self.data.get_attr(sv, node.name) is not MISSING
                    parts.append(f"{sv} {'has' if has else 'has no'} attribute {node.name!r}")
            out["detail"] = f"is {render.value(v)}, wanted {render.value(want)}; " + "; ".join(parts)
            return out
        out["detail"] = f"is {render.value(v)} ({kind_name(v)}), wanted {render.value(want)}"
        return out

    def clause(self, pid: str, c: A.Condition, with_blame: bool) -> ClauseCheck:
        rec = _Recorder(self.data)
        ok, v = self.evaluate(pid, c.expr, rec)
        facts = self.facts_used(rec.log)
        text = render.expr(c.expr)
        if not ok:
            return ClauseCheck(c.kind, text, c.loc, False, error=v, facts=facts)
        if type(v) is not bool:
            return ClauseCheck(c.kind, text, c.loc, False, error=f"type error: expected bool, got {kind_name(v)}",
                               facts=facts)
        holds = v if c.kind == "when" else not v
        blame = None
        if not holds and with_blame:
            blame = self.blame(pid, c.expr, c.kind == "when")
        return ClauseCheck(c.kind, text, c.loc, holds, v, blame=blame, facts=facts)

    def report(self, pol: Any, determining: bool) -> PolicyReport:
        ast: A.Policy = pol.policy
        effect = "forbid" if pol.forbid else "permit"
        scopes = []
        for slot, c, e in (("principal", ast.principal, self.p), ("action", ast.action, self.a),
                           ("resource", ast.resource, self.r)):
            s = self.scope(slot, c, e)
            scopes.append(s)
            if not s.matched:
                return PolicyReport(pol.id, effect, ast.loc, "scope", determining, tuple(scopes))
        conds = []
        for cond in ast.conditions:
            cc = self.clause(pol.id, cond, True)
            conds.append(cc)
            if cc.error:
                return PolicyReport(pol.id, effect, ast.loc, "error", determining, tuple(scopes), tuple(conds), cc.error)
            if not cc.holds:
                return PolicyReport(pol.id, effect, ast.loc, "condition", determining, tuple(scopes), tuple(conds))
        return PolicyReport(pol.id, effect, ast.loc, "satisfied", determining, tuple(scopes), tuple(conds))


def _flatten(node: Any, op: str) -> list:
    out = []
    todo = [node]
    while todo:
        n = todo.pop()
        if type(n) is A.Binary and n.op == op:
            todo.append(n.right)
            todo.append(n.left)
        else:
            out.append(n)
    return out


def _operands(node: Any) -> list[tuple[str, Any]]:
    t = type(node)
    if t is A.Binary:
        return [("left", node.left), ("right", node.right)]
    if t is A.Method:
        return [("object", node.obj)] + [("argument", a) for a in node.args]
    if t is A.Is and node.in_expr is not None:
        return [("object", node.obj), ("in", node.in_expr)]
    return [("object", node.obj)]


def explain(engine: Any, principal: Any, action: Any, resource: Any, context: Any = None,
            entities: Any = None) -> Explanation:
    """See ``Engine.explain``."""
    p, a, r, ctx, ents = engine._parse_request(principal, action, resource, context, entities)
    kind, reasons, errors = engine._decide(p, a, r, ctx, ents)
    decision = Decision(kind, kind == "permit", reasons, errors, False, engine.version)
    if any(pid == "<engine>" for pid, _ in errors):
        return Explanation(decision, p, a, r, (), kind == "deny")
    try:
        cx = _Context(engine, p, a, r, ctx, ents)
    except Exception as e:
        msg = e.message if isinstance(e, RuneError) else f"internal error: {type(e).__name__}: {e}"
        failed = Decision("deny", False, (), (("<engine>", msg),), False, engine.version)
        return Explanation(failed, p, a, r, (), True)
    erroring = {pid for pid, _ in errors}
    chosen = set(reasons) | erroring
    why_not = kind == "deny"
    reports = []
    for pol in engine.policies:
        determining = pol.id in reasons
        if pol.id in chosen:
            reports.append(cx.report(pol, determining))
        elif why_not and not pol.forbid and pol.action_matches(a, cx.data.ancestors(a)):
            reports.append(cx.report(pol, False))
    return Explanation(decision, p, a, r, tuple(reports), why_not)
