"""The authorizer: compiled policies, their index, and Cedar's decision rule.

Why it is shaped like this:

- **Compiled once, run many times.** Every policy is turned into one
  generated Python function when the engine is built (``codegen``). A
  request never walks the AST, never looks at node types and never parses
  anything.
- **Indexed by action and entity type.** A request only runs the policies
  whose scope can match: candidates are selected by the request's action
  (``==``, ``in`` and ``in [...]`` resolved against the action's ancestors),
  principal type and resource type, and that selection is memoized on
  everything it depends on (the action's ancestors included: rules and
  request entities may change them per request). Policies with
  ``principal == Entity`` are further keyed by that principal, so a bundle
  with thousands of per-user policies costs one dict lookup, not thousands
  of comparisons.
- **Errors are exceptions.** A condition that fails raises
  ``RuneEvalError``; the policy loop turns that into "not satisfied" plus an
  error entry (Cedar), or a deny with ``strict_forbid``. Any *other*
  exception is a bug and propagates, so that the engine fails closed (deny)
  instead of silently skipping a forbid.

The layer's modules: ``values`` (Cedar values), ``data`` (``PolicyData``:
hierarchy, attributes, relations), ``codegen`` (the evaluator), this module
(the authorizer). The names below are re-exported here for callers that
import them from ``rune_fast.policy.policies``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence

from ..errors import RuneEvalError, RuneSyntaxError
from ..lang import ast as A
from ..values import Entity, key_row, unkey_row
from ..values import value_key as row_key
from .codegen import PolicyTest, _loc, generate_test
from .data import FactData, OverlayData, PolicyData, ancestor_closure, context_rows, trie_probe
from .values import MISSING, CRecord, CSet, ValueBudget, cedar_eq, from_value, kind_name, to_value

__all__ = [
    "MISSING",
    "CSet",
    "CRecord",
    "ValueBudget",
    "PolicyData",
    "FactData",
    "OverlayData",
    "CompiledPolicy",
    "PolicySet",
    "PolicyGenerator",
    "compile_policies",
    "to_value",
    "from_value",
    "cedar_eq",
    "kind_name",
    "ancestor_closure",
    "context_rows",
    "row_key",
    "key_row",
    "unkey_row",
    "trie_probe",
]

#: Turns one policy (and its id) into its compiled test; production uses
#: ``codegen.generate_test``, tests also pass the reference evaluator.
PolicyGenerator = Callable[[A.Policy, str], PolicyTest]


class CompiledPolicy:
    """One policy ready to run: its index keys and its generated ``test``.

    ``test(p, a, r, c, d)`` (principal, action, resource, context record,
    ``PolicyData``) runs the parts of the scope the index does not guarantee,
    then the conditions in source order, and returns a bool or raises
    ``RuneEvalError``.
    """

    __slots__ = (
        "index",
        "id",
        "forbid",
        "policy",
        "principal_type",
        "resource_type",
        "principal_eq",
        "test",
        "relations",
        "patterns",
        "source",
    )

    def __init__(self, index: int, policy: A.Policy, generator: PolicyGenerator = generate_test) -> None:
        self.index = index
        self.id = policy.id or f"policy{index}"
        self.policy = policy
        # ``effect`` and condition kinds are typed (``ast.Effect``,
        # ``ast.ConditionKind``): the parser guarantees them.
        self.forbid = policy.effect == "forbid"
        p, r = policy.principal, policy.resource
        self.principal_eq: Optional[Entity] = p.entity if p.kind == "eq" else None
        self.principal_type = _scope_type(p)
        self.resource_type = _scope_type(r)
        if policy.action.kind != "in_set":
            _scope_type(policy.action)
        compiled = generator(policy, self.id)
        self.test = compiled.test
        self.relations = compiled.relations
        self.patterns = compiled.patterns
        self.source = compiled.source

    def action_matches(self, action: Entity, ancestors: frozenset) -> bool:
        """Whether the action scope admits ``action``, whose ancestors (under
        the request's hierarchy) are ``ancestors``: a pure function of both,
        so the candidate memo can key on them."""
        a = self.policy.action
        k = a.kind
        if k == "any":
            return True
        if k == "eq":
            return action == a.entity
        if k == "in":
            return action == a.entity or a.entity in ancestors
        if k == "in_set":
            return any(action == e or e in ancestors for e in a.entities)
        if k == "is":  # not in the action grammar, harmless to honour
            return action.type == a.type and (a.entity is None or action == a.entity or a.entity in ancestors)
        raise RuneSyntaxError(f"unknown action constraint {k!r}", **_loc(a))

    def __repr__(self) -> str:
        return f"CompiledPolicy({self.id!r}, {'forbid' if self.forbid else 'permit'})"


def _scope_type(c: A.ScopeConstraint) -> Optional[str]:
    if c.kind == "eq":
        return c.entity.type  # type: ignore[union-attr]
    if c.kind == "is":
        return c.type
    if c.kind in ("any", "in"):
        return None
    raise RuneSyntaxError(f"unknown scope constraint {c.kind!r}", **_loc(c))


#: Outcome of evaluating a policy set: (decision, reasons, errors).
Outcome = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]


class PolicySet:
    """All policies of a bundle, compiled and indexed.

    ``evaluate`` implements the decision: any satisfied forbid -> "forbid"
    (reasons = satisfied forbids), else any satisfied permit -> "permit"
    (reasons = satisfied permits), else "deny" (no reasons). Erroring
    policies are not satisfied and are reported, in policy order (Cedar's
    semantics); with ``strict_forbid`` an erroring forbid makes it "deny".

    The candidate memo is keyed on (action, the action's ancestors in the
    request's data, principal type, resource type): everything ``select``
    reads, so a request whose rules or entities give the action other parents
    can never reuse another request's selection. It is filled lazily; a dict
    store is atomic, and two threads computing the same entry store equal
    values, so no lock is needed.
    """

    MEMO_LIMIT = 16384
    MEMO_MAX_ANCESTORS = 64

    def __init__(self, policies: Sequence[CompiledPolicy], strict_forbid: bool = False) -> None:
        self.policies: tuple[CompiledPolicy, ...] = tuple(policies)
        self.strict_forbid = bool(strict_forbid)
        self._by_id = {p.id: p for p in self.policies}
        self._memo: dict = {}
        rels: set = set()
        pats: set = set()
        for p in self.policies:
            rels |= p.relations
            pats |= p.patterns
        self.relations: frozenset[str] = frozenset(rels)
        self.patterns: frozenset = frozenset(pats)

    def __len__(self) -> int:
        return len(self.policies)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.policies)

    def __getitem__(self, policy_id: str) -> CompiledPolicy:
        return self._by_id[policy_id]

    def select(self, action: Entity, ptype: str, rtype: str, ancestors: frozenset) -> tuple:
        """``(general, by_principal, relations)``: the policies that can apply
        to a request with this action (whose ancestors are ``ancestors``),
        principal type and resource type.

        ``general`` is a tuple of ``(index, id, forbid, test)``; ``by_principal``
        maps a principal entity to the tuple of its ``principal ==`` policies
        merged with ``general`` in bundle order (None when there are none); ``relations`` are the
        relations all of them call (to decide whether the request needs its
        own Datalog model). A pure function of its arguments.
        """
        general = []
        by_p: dict = {}
        rels: set = set()
        for pol in self.policies:
            if pol.principal_type is not None and pol.principal_type != ptype:
                continue
            if pol.resource_type is not None and pol.resource_type != rtype:
                continue
            if not pol.action_matches(action, ancestors):
                continue
            entry = (pol.index, pol.id, pol.forbid, pol.test)
            rels |= pol.relations
            if pol.principal_eq is not None:
                by_p.setdefault(pol.principal_eq, []).append(entry)
            else:
                general.append(entry)
        merged = {k: tuple(sorted(general + v)) for k, v in by_p.items()}
        return (tuple(general), merged or None, frozenset(rels))

    def candidates(self, principal: Entity, action: Entity, resource: Entity, data: PolicyData) -> tuple:
        """``select`` for a request, memoized.

        The memo is keyed on everything the selection depends on: the
        action, *its ancestors under this request's data* (rules or request
        entities may change them per request) and the two types. Ancestor
        sets above ``MEMO_MAX_ANCESTORS`` and action ids above 64 characters
        are not memoized (bounded memory).
        """
        anc = data.ancestors(action)
        key = (action, principal[0], resource[0], anc)
        memo = self._memo
        sel = memo.get(key)
        if sel is None:
            sel = self.select(action, principal[0], resource[0], anc)
            if len(memo) < self.MEMO_LIMIT and len(anc) <= self.MEMO_MAX_ANCESTORS and len(action.id) <= 64:
                memo[key] = sel
        return sel

    def evaluate(
        self,
        principal: Entity,
        action: Entity,
        resource: Entity,
        context: CRecord,
        data: PolicyData,
    ) -> Outcome:
        """Decide one request (see the class docstring)."""
        sel = self.candidates(principal, action, resource, data)
        return self.run(sel, principal, action, resource, context, data)

    def run(
        self,
        sel: tuple,
        principal: Entity,
        action: Entity,
        resource: Entity,
        context: CRecord,
        data: PolicyData,
    ) -> Outcome:
        """Run a selection (from ``candidates``) on one request.

        Only ``RuneEvalError`` is caught per policy; anything else is a bug
        and propagates so that the caller fails closed.
        """
        general, by_p, _rels = sel
        if by_p is not None:
            # principal == policies, pre-merged with the general ones in
            # bundle order when the selection was built
            general = by_p.get(principal, general)
        forbids: Any = None
        permits: Any = None
        errors: Any = None
        forbid_failed = False
        for _idx, pid, forbid, test in general:
            try:
                if not test(principal, action, resource, context, data):
                    continue
            except RuneEvalError as e:
                if errors is None:
                    errors = [(pid, e.message)]
                else:
                    errors.append((pid, e.message))
                forbid_failed = forbid_failed or forbid
                continue
            if forbid:
                forbids = (pid,) if forbids is None else forbids + (pid,)
            elif permits is None:
                permits = (pid,)
            else:
                permits = permits + (pid,)
        errs: tuple = () if errors is None else tuple(errors)
        if forbids is not None:
            return ("forbid", forbids, errs)
        if forbid_failed and self.strict_forbid:
            # Strict mode: a forbid that could not be evaluated might have
            # applied, so nothing is allowed (the error says which one).
            return ("deny", (), errs)
        if permits is not None:
            return ("permit", permits, errs)
        return ("deny", (), errs)


def compile_policies(
    policies: Sequence[A.Policy], strict_forbid: bool = False, generator: PolicyGenerator = generate_test
) -> PolicySet:
    """Compile AST policies (in bundle order) into an indexed ``PolicySet``.

    ``strict_forbid``: a ``forbid`` whose scope matches but whose condition
    errors makes the decision ``deny`` (instead of Cedar's "skip the erroring
    policy"), unless another forbid is satisfied (then ``forbid``).
    ``generator`` compiles one policy (tests pass the reference evaluator).
    Raises ``RuneSyntaxError`` (located) for constructs the evaluator does not
    know (the parser normally rejects those first) and ``RuneLimitError`` for
    a policy too deeply nested to compile.
    """
    return PolicySet([CompiledPolicy(i, p, generator) for i, p in enumerate(policies)], strict_forbid)
