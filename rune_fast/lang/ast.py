"""The abstract syntax tree of ``.rune`` files: data types only, no behaviour.

Every node is a frozen dataclass carrying a ``Loc`` so that any later stage
(checks, compiler, evaluator) can report errors at the exact source position.
The parser builds these; nothing downstream mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import typing
from typing import Any, Mapping, Optional, Union

from ..values import Entity, Value

# --------------------------------------------------------------------------
# Locations


# The closed sets of words the parsers produce (typed, so that later stages
# need not re-validate them and mypy checks hand-built ASTs).
Effect = typing.Literal["permit", "forbid"]
ScopeKind = typing.Literal["any", "eq", "in", "is", "in_set"]
ConditionKind = typing.Literal["when", "unless"]
UnaryOp = typing.Literal["!", "-"]
BinaryOp = typing.Literal["||", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*"]
ArithOp = typing.Literal["+", "-", "*", "/", "%"]
CompareOp = typing.Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Loc:
    """A 1-based source position; ``text`` is the whole source line (for carets)."""

    file: str
    line: int
    col: int
    text: str = field(default="", compare=False, repr=False)


NO_LOC = Loc("<none>", 0, 0)

# --------------------------------------------------------------------------
# Datalog rules (docs/language.md §4)


@dataclass(frozen=True, slots=True)
class Var:
    """A variable. ``_X`` is a named variable, only ``_`` is anonymous (``Wildcard``)."""

    name: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Wildcard:
    """``_``: matches anything, binds nothing; each occurrence is distinct."""

    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Const:
    value: Value
    loc: Loc = field(default=NO_LOC, compare=False)


Term = Union[Var, Wildcard, Const]


@dataclass(frozen=True, slots=True)
class BinOp:
    """Arithmetic in a rule body: ``op`` is one of ``+ - * / %``."""

    op: ArithOp
    left: "RuleExpr"
    right: "RuleExpr"
    loc: Loc = field(default=NO_LOC, compare=False)


RuleExpr = Union[Var, Const, BinOp]


@dataclass(frozen=True, slots=True)
class Atom:
    """``name(t1, ..., tn)``; a bare ``name`` is an atom of arity 0."""

    name: str
    args: tuple[Term, ...]
    loc: Loc = field(default=NO_LOC, compare=False)

    @property
    def arity(self) -> int:
        return len(self.args)


@dataclass(frozen=True, slots=True)
class Negation:
    """``not atom``."""

    atom: Atom
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``left op right`` with ``op`` in ``= != < <= > >=``.

    ``X = expr`` with ``X`` not bound elsewhere in the body is an assignment;
    the checks decide which (``checks.classify_body``), not the parser.
    """

    op: CompareOp
    left: RuleExpr
    right: RuleExpr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class MethodCall:
    """``Var.method("arg")`` with method in starts_with/ends_with/contains/like."""

    var: Var
    method: str
    arg: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``Result = func [Target] : { body }``; ``target`` is None for ``count``."""

    result: Var
    func: str
    target: Optional[Var]
    body: tuple["Literal", ...]
    loc: Loc = field(default=NO_LOC, compare=False)


Literal = Union[Atom, Negation, Comparison, MethodCall, Aggregate]


@dataclass(frozen=True, slots=True)
class Rule:
    """``head :- body.``; a fact written in ``[rules]`` has an empty body."""

    head: Atom
    body: tuple[Literal, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


# --------------------------------------------------------------------------
# Policies (docs/language.md §5)


@dataclass(frozen=True, slots=True)
class ScopeConstraint:
    """One of the three scope slots.

    ``kind``: ``"any"`` (no constraint), ``"eq"`` (``== entity``), ``"in"``
    (``in entity``), ``"is"`` (``is Type``, optionally ``in entity`` when
    ``entity`` is set), ``"in_set"`` (action only: ``in [e1, e2]``).
    """

    kind: ScopeKind
    entity: Optional[Entity] = None
    entities: tuple[Entity, ...] = ()
    type: Optional[str] = None
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal boolean, integer, string or entity."""

    value: Value
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class VarRef:
    """``principal``, ``action``, ``resource`` or ``context``."""

    name: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class SetLit:
    items: tuple["Expr", ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class RecordLit:
    items: tuple[tuple[str, "Expr"], ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class GetAttr:
    """``obj.name`` or ``obj["name"]``."""

    obj: "Expr"
    name: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Has:
    """``obj has name`` (or ``obj has "name"``)."""

    obj: "Expr"
    name: str
    loc: Loc = field(default=NO_LOC, compare=False)


#: In a ``Like`` pattern, this marker stands for an unescaped ``*``.
LIKE_WILDCARD = None


@dataclass(frozen=True, slots=True)
class Like:
    """``obj like "pat"``; ``pattern`` alternates literal strings and ``LIKE_WILDCARD``."""

    obj: "Expr"
    pattern: tuple[Optional[str], ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Is:
    """``obj is Type`` or ``obj is Type in expr``."""

    obj: "Expr"
    type: str
    in_expr: Optional["Expr"] = None
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Unary:
    """``!x`` or ``-x``."""

    op: UnaryOp
    operand: "Expr"
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Binary:
    """``|| && == != < <= > >= in + - *``."""

    op: BinaryOp
    left: "Expr"
    right: "Expr"
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class IfThenElse:
    cond: "Expr"
    then: "Expr"
    else_: "Expr"
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Method:
    """``obj.contains(x)``, ``.containsAll(s)``, ``.containsAny(s)``, ``.isEmpty()``."""

    obj: "Expr"
    name: str
    args: tuple["Expr", ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class RelCall:
    """``name(arg, ...)``: true iff the tuple is in the model; ``Wildcard`` args mean "exists"."""

    name: str
    args: tuple[Union["Expr", Wildcard], ...]
    loc: Loc = field(default=NO_LOC, compare=False)


Expr = Union[Lit, VarRef, SetLit, RecordLit, GetAttr, Has, Like, Is, Unary, Binary, IfThenElse, Method, RelCall]


@dataclass(frozen=True, slots=True)
class Condition:
    """``when { expr }`` (``kind="when"``) or ``unless { expr }``."""

    kind: ConditionKind
    expr: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Policy:
    """One ``permit``/``forbid`` statement.

    ``id`` is the ``@id("...")`` annotation or ``policyN`` (N = position in
    the bundle); ``annotations`` keeps every annotation as (name, value).
    """

    effect: Effect
    id: str
    principal: ScopeConstraint
    action: ScopeConstraint
    resource: ScopeConstraint
    conditions: tuple[Condition, ...]
    annotations: tuple[tuple[str, str], ...] = ()
    loc: Loc = field(default=NO_LOC, compare=False)


# --------------------------------------------------------------------------
# Files and bundles (docs/language.md §1, §3, §7)


@dataclass(frozen=True, slots=True)
class FactSet:
    """All facts of one relation from one place (a ``[data]`` key or a source file).

    ``rows`` are plain tuples of Python values (no per-row objects, so that
    10^6 facts stay cheap).
    """

    relation: str
    arity: int
    rows: tuple[tuple[Value, ...], ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A ``[sources]`` entry: relation -> file (resolved to an absolute path)."""

    relation: str
    path: str
    header: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class RequestEntity:
    """A request entity in Cedar-JSON style: uid, attrs and parents."""

    uid: Entity
    attrs: Mapping[str, Any]
    parents: tuple[Entity, ...]


@dataclass(frozen=True, slots=True)
class EmbeddedTest:
    """A ``[tests.NAME]`` table."""

    name: str
    principal: Entity
    action: Entity
    resource: Entity
    context: Mapping[str, Any]
    entities: tuple[RequestEntity, ...]
    expect: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class RuneFile:
    """One parsed ``.rune`` file."""

    path: str
    version: str
    metadata: Mapping[str, Any]
    facts: tuple[FactSet, ...]
    sources: tuple[SourceSpec, ...]
    rules: tuple[Rule, ...]
    policies: tuple[Policy, ...]
    tests: tuple[EmbeddedTest, ...]
    content_hash: str = ""


@dataclass(frozen=True, slots=True)
class Bundle:
    """Several files merged (docs/language.md §1): facts unioned, the rest concatenated.

    ``files`` lists every file the bundle was built from, sources included, so
    that a watcher knows what to watch and a hash can name the version.
    """

    files: tuple[RuneFile, ...]
    facts: tuple[FactSet, ...]
    rules: tuple[Rule, ...]
    policies: tuple[Policy, ...]
    tests: tuple[EmbeddedTest, ...]
    metadata: Mapping[str, Any]
    watched_paths: tuple[str, ...]
    content_hash: str
    #: ``(absolute path, sha256)`` of every file read from disk, so that a
    #: reader can check later that the files are still what was compiled.
    file_digests: tuple[tuple[str, str], ...] = ()
