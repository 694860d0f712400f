"""Parser of the ``[policies]`` section: Cedar-style text -> ``tuple[Policy, ...]`` (docs/language.md §5).

Recursive descent over ``lexer.tokenize(..., dialect="policies")`` tokens,
one function per Cedar precedence level, lowest first:

    ||   &&   relations (== != < <= > >= in has like is)   + -   *   unary ! -   member access

``if c then a else b`` is parsed as a primary (so it may appear anywhere an
operand may; its branches are full expressions). Relations do not chain
(``a == b == c`` is an error, as in Cedar). ``-`` directly before an integer
literal is folded into the literal so that ``-9223372036854775808`` is valid.

Why hand-written: messages say what was expected and what was found at the
exact file position, and after an error the parser skips to the end of that
policy and continues, so one load reports every broken policy.

Extensions and choices beyond Cedar (they belong in the user docs too):

- relation calls ``name(arg, ...)`` / ``agent.name(...)``; an argument may be
  ``_`` (``Wildcard``: "any value"). ``principal(...)`` etc. are also calls,
  to the request relations;
- trailing commas are accepted in set and record literals and in
  ``action in [...]``;
- no floats (a float literal is an error), no templates, no extension
  functions;
- node locations: a literal, variable, call or policy points at its first
  token; an operator node (``Binary``, ``Unary``, ``Has``, ``Like``, ``Is``)
  at its operator; ``GetAttr``/``Method`` at the attribute/method name.
"""

from __future__ import annotations

from typing import Optional, Union, cast

from .ast import (
    BinaryOp,
    ConditionKind,
    Effect,
    UnaryOp,
    Binary,
    Condition,
    Expr,
    GetAttr,
    Has,
    IfThenElse,
    Is,
    Like,
    Lit,
    Method,
    Policy,
    RecordLit,
    RelCall,
    ScopeConstraint,
    SetLit,
    Unary,
    VarRef,
    Wildcard,
)
from ..errors import RuneError
from .lexer import EOF, FLOAT, IDENT, INT, STRING, ParserBase, Token, describe, like_pattern, tokenize
from ..limits import DEFAULT_LIMITS
from ..values import INT_MAX, INT_MIN, Entity

__all__ = ["parse_policies", "VARIABLES", "METHODS"]

VARIABLES = ("principal", "action", "resource", "context")
#: Method name -> number of arguments.
METHODS = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}

_RELOPS = frozenset(("==", "!=", "<", "<=", ">", ">="))
_REL_WORDS = frozenset(("in", "has", "like", "is"))
_KEYWORDS = frozenset(
    ("true", "false", "if", "then", "else", "in", "has", "like", "is", "when", "unless", "permit", "forbid")
)


class _PolicyParser(ParserBase):
    """State of one parse: tokens, cursor, nesting depth."""

    # ------------------------------------------------------------------
    # policies

    def policy(self) -> Policy:
        c = self.c
        self.depth = 0
        start = c.tok
        annotations: list[tuple[str, str]] = []
        seen: dict[str, Token] = {}
        while c.at("@"):
            c.advance()
            name_tok = c.expect(IDENT, "expected an annotation name after '@'")
            if name_tok.text in seen:
                first = seen[name_tok.text]
                c.fail(f"duplicate annotation '@{name_tok.text}' (first at line {first.line})", name_tok)
            seen[name_tok.text] = name_tok
            value = ""
            if c.at("("):
                c.advance()
                vt = c.tok
                if vt.kind != STRING:
                    c.fail(f"expected a string value in '@{name_tok.text}(...)', found {describe(vt)}")
                value = self.plain_string(vt)
                c.expect(")", f"expected ')' after the value of '@{name_tok.text}'")
            annotations.append((name_tok.text, value))
        et = c.tok
        if et.kind != IDENT or et.text not in ("permit", "forbid"):
            what = "'permit' or 'forbid'" if annotations else "'permit', 'forbid' or an annotation '@name(\"...\")'"
            c.fail(f"expected {what}, found {describe(et)}")
        c.advance()
        c.expect("(", f"expected '(' after '{et.text}'")
        principal = self.scope_var("principal", "first")
        c.expect(",", "expected ',' after the principal constraint")
        action = self.scope_action()
        c.expect(",", "expected ',' after the action constraint")
        resource = self.scope_var("resource", "third")
        c.expect(")", "expected ')' after the resource constraint")
        conditions: list[Condition] = []
        while c.tok.kind == IDENT and c.tok.text in ("when", "unless"):
            kw = c.advance()
            c.expect("{", f"expected '{{' after '{kw.text}'")
            if c.at("}"):
                c.fail(f"empty '{kw.text}' condition: expected an expression")
            expr = self.expr()
            if not c.at("}"):
                c.fail(f"expected '}}' to close the '{kw.text}' condition, found {c.found()}")
            c.advance()
            conditions.append(Condition(cast(ConditionKind, kw.text), expr, self.loc(kw)))
        if not c.at(";"):
            t = c.tok
            hint = ""
            if t.kind == "@" or (t.kind == IDENT and t.text in ("permit", "forbid")):
                hint = " (missing ';' at the end of the previous policy?)"
            c.fail(f"expected 'when', 'unless' or ';' after the policy {'condition' if conditions else 'scope'}, found {describe(t)}{hint}")
        c.advance()
        pid = dict(annotations).get("id", "")
        return Policy(
            cast(Effect, et.text),
            pid,
            principal,
            action,
            resource,
            tuple(conditions),
            tuple(annotations),
            self.loc(start),
        )

    def scope_var(self, var: str, position: str) -> ScopeConstraint:
        c = self.c
        vt = c.tok
        if vt.kind != IDENT or vt.text != var:
            c.fail(f"expected '{var}' as the {position} element of the scope, found {describe(vt)}")
        c.advance()
        t = c.tok
        loc = self.loc(vt)
        if t.kind == "==":
            c.advance()
            return ScopeConstraint("eq", entity=self.scope_entity(var, "=="), loc=loc)
        if t.kind == IDENT and t.text == "in":
            c.advance()
            if c.at("["):
                c.fail(f"'in [...]' is only allowed for action; {var} takes 'in' with one entity")
            return ScopeConstraint("in", entity=self.scope_entity(var, "in"), loc=loc)
        if t.kind == IDENT and t.text == "is":
            c.advance()
            type_name = self.type_path(f"after '{var} is'")
            entity: Optional[Entity] = None
            if c.at_word("in"):
                c.advance()
                entity = self.scope_entity(var, "in")
            return ScopeConstraint("is", entity=entity, type=type_name, loc=loc)
        if t.kind == "=":
            c.fail(f"expected '==' to compare {var}, found '='")
        return ScopeConstraint("any", loc=loc)

    def scope_action(self) -> ScopeConstraint:
        c = self.c
        vt = c.tok
        if vt.kind != IDENT or vt.text != "action":
            c.fail(f"expected 'action' as the second element of the scope, found {describe(vt)}")
        c.advance()
        t = c.tok
        loc = self.loc(vt)
        if t.kind == "==":
            c.advance()
            return ScopeConstraint("eq", entity=self.scope_entity("action", "=="), loc=loc)
        if t.kind == IDENT and t.text == "in":
            c.advance()
            if c.at("["):
                c.advance()
                ents: list[Entity] = []
                while not c.at("]"):
                    ents.append(self.scope_entity("action", "in [...]"))
                    if c.at(","):
                        c.advance()
                    elif not c.at("]"):
                        c.fail(f"expected ',' or ']' in the action list, found {c.found()}")
                c.advance()
                return ScopeConstraint("in_set", entities=tuple(ents), loc=loc)
            return ScopeConstraint("in", entity=self.scope_entity("action", "in"), loc=loc)
        if t.kind == IDENT and t.text == "is":
            c.fail("'is' is not allowed in the action constraint; use '== Action::\"...\"' or 'in'")
        if t.kind == "=":
            c.fail("expected '==' to compare action, found '='")
        return ScopeConstraint("any", loc=loc)

    def scope_entity(self, var: str, op: str) -> Entity:
        c = self.c
        t = c.tok
        if t.kind != IDENT or c.peek().kind != "::":
            c.fail(f"expected an entity literal Type::\"id\" after '{var} {op}', found {describe(t)}")
        return self.entity_literal().value  # type: ignore[return-value]

    def type_path(self, where: str) -> str:
        """``Type`` or ``Ns::Type`` (an entity type, never an entity)."""
        c = self.c
        t = c.tok
        if t.kind != IDENT:
            c.fail(f"expected an entity type {where}, found {describe(t)}")
        c.advance()
        parts = [t.text]
        while c.at("::"):
            c.advance()
            n = c.tok
            if n.kind == STRING:
                c.fail(f"expected an entity type {where}, found the entity literal {'::'.join(parts)}::{n.text}; write the type only")
            if n.kind != IDENT:
                c.fail(f"expected a type name after '{'::'.join(parts)}::', found {describe(n)}")
            parts.append(c.advance().text)
        return "::".join(parts)

    def entity_literal(self) -> Lit:
        """``Type::"id"`` / ``Ns::Type::"id"``; the current token is the first name."""
        c = self.c
        start = c.advance()
        parts = [start.text]
        while True:
            c.expect("::", f"expected '::\"id\"' to complete the entity literal '{'::'.join(parts)}'")
            t = c.tok
            if t.kind == STRING:
                ident = self.plain_string(t)
                return Lit(Entity("::".join(parts), ident), self.loc(start))
            if t.kind != IDENT or c.peek().kind != "::":
                c.fail(f"expected a quoted entity id after '{'::'.join(parts)}::', found {describe(t)}")
            parts.append(c.advance().text)

    # ------------------------------------------------------------------
    # expressions, lowest precedence first

    def expr(self) -> Expr:
        return self.or_()

    def or_(self) -> Expr:
        c = self.c
        left = self.and_()
        while c.tok.kind == "||":
            op = c.advance()
            right = self.and_()
            left = Binary("||", left, right, self.loc(op))
        return left

    def and_(self) -> Expr:
        c = self.c
        left = self.relation()
        while c.tok.kind == "&&":
            op = c.advance()
            right = self.relation()
            left = Binary("&&", left, right, self.loc(op))
        return left

    def _at_relop(self) -> bool:
        t = self.c.tok
        return t.kind in _RELOPS or (t.kind == IDENT and t.text in _REL_WORDS)

    def relation(self) -> Expr:
        c = self.c
        left = self.add()
        t = c.tok
        node: Expr
        if t.kind in _RELOPS:
            c.advance()
            node = Binary(cast(BinaryOp, t.kind), left, self.add(), self.loc(t))
        elif t.kind == IDENT and t.text == "in":
            c.advance()
            node = Binary("in", left, self.add(), self.loc(t))
        elif t.kind == IDENT and t.text == "has":
            c.advance()
            n = c.tok
            if n.kind == IDENT:
                c.advance()
                name = n.text
            elif n.kind == STRING:
                name = self.plain_string(n)
            else:
                c.fail(f"expected an attribute name (identifier or string) after 'has', found {describe(n)}")
            node = Has(left, name, self.loc(t))
        elif t.kind == IDENT and t.text == "like":
            c.advance()
            p = c.tok
            if p.kind != STRING:
                c.fail(f"expected a string pattern after 'like', found {describe(p)}")
            c.advance()
            node = Like(left, like_pattern(p), self.loc(t))
        elif t.kind == IDENT and t.text == "is":
            c.advance()
            type_name = self.type_path("after 'is'")
            in_expr: Optional[Expr] = None
            if c.at_word("in"):
                c.advance()
                in_expr = self.add()
            node = Is(left, type_name, in_expr, self.loc(t))
        elif t.kind == "=":
            c.fail("'=' is not an operator in policies; compare with '=='")
        else:
            return left
        if self._at_relop():
            c.fail(
                f"'{c.tok.text}' cannot follow the '{t.text}' comparison without parentheses "
                "(comparisons do not chain)"
            )
        return node

    def add(self) -> Expr:
        c = self.c
        left = self.mul()
        while c.tok.kind == "+" or c.tok.kind == "-":
            op = c.advance()
            right = self.mul()
            left = Binary(cast(BinaryOp, op.kind), left, right, self.loc(op))
        return left

    def mul(self) -> Expr:
        c = self.c
        left = self.unary()
        while True:
            k = c.tok.kind
            if k == "*":
                op = c.advance()
                right = self.unary()
                left = Binary("*", left, right, self.loc(op))
            elif k == "/" or k == "%":
                c.fail(f"'{k}' is not an operator in policies (only + - * on integers)")
            else:
                return left

    def unary(self) -> Expr:
        c = self.c
        ops: list[Token] = []
        saved = self.depth
        while c.tok.kind == "!" or c.tok.kind == "-":
            t = c.tok
            if t.kind == "-" and c.peek().kind == INT and c.peek(2).kind not in (".", "["):
                # negative literal: folded so that INT_MIN is expressible
                c.advance()
                num = c.advance()
                value = -num.value  # type: ignore[operator]
                if value < INT_MIN:
                    c.fail(f"integer literal out of the 64-bit range [{INT_MIN}, {INT_MAX}]", t)
                operand: Expr = Lit(value, self.loc(t))
                break
            self.enter(t)
            ops.append(c.advance())
        else:
            operand = self.member()
        for op in reversed(ops):
            operand = Unary(cast(UnaryOp, op.kind), operand, self.loc(op))
        self.depth = saved
        return operand

    def member(self) -> Expr:
        c = self.c
        e = self.primary()
        while True:
            t = c.tok
            if t.kind == ".":
                c.advance()
                n = c.tok
                if n.kind != IDENT:
                    c.fail(f"expected an attribute or method name after '.', found {describe(n)}")
                c.advance()
                if c.at("("):
                    if n.text not in METHODS:
                        c.fail(
                            f"unknown method '{n.text}'; expected one of {', '.join(METHODS)}",
                            n,
                        )
                    args = self.call_args(f"method '{n.text}'", allow_wildcard=False)
                    want = METHODS[n.text]
                    if len(args) != want:
                        c.fail(
                            f"method '{n.text}' takes {want} argument{'s' if want != 1 else ''}, got {len(args)}",
                            n,
                        )
                    e = Method(e, n.text, args, self.loc(n))  # type: ignore[arg-type]
                else:
                    e = GetAttr(e, n.text, self.loc(n))
            elif t.kind == "[":
                c.advance()
                s = c.tok
                if s.kind != STRING:
                    c.fail(f"expected a string attribute name inside '[...]', found {describe(s)}")
                name = self.plain_string(s)
                if not c.at("]"):
                    c.fail(f"expected ']' after the attribute name {s.text}, found {c.found()}")
                c.advance()
                e = GetAttr(e, name, self.loc(s))
            else:
                return e

    def call_args(self, what: str, allow_wildcard: bool) -> tuple[Union[Expr, Wildcard], ...]:
        """``( arg, ... )``; the current token is ``(``."""
        c = self.c
        open_tok = c.advance()
        self.enter(open_tok)
        args: list[Union[Expr, Wildcard]] = []
        if c.at(")"):
            c.advance()
            self.leave()
            return ()
        while True:
            t = c.tok
            if allow_wildcard and t.kind == IDENT and t.text == "_" and c.peek().kind in (",", ")"):
                c.advance()
                args.append(Wildcard(self.loc(t)))
            else:
                args.append(self.expr())
            if c.at(","):
                c.advance()
                continue
            if c.at(")"):
                c.advance()
                break
            c.fail(f"expected ',' or ')' after argument {len(args)} of {what}, found {c.found()}")
        self.leave()
        return tuple(args)

    def primary(self) -> Expr:
        c = self.c
        t = c.tok
        k = t.kind
        if k == INT:
            c.advance()
            if t.value > INT_MAX:  # type: ignore[operator]
                c.fail(f"integer literal out of the 64-bit range [{INT_MIN}, {INT_MAX}]", t)
            return Lit(t.value, self.loc(t))  # type: ignore[arg-type]
        if k == STRING:
            return Lit(self.plain_string(t), self.loc(t))
        if k == FLOAT:
            c.fail(f"floats are not supported in policies (found {t.text}); use integers")
        if k == "(":
            return self.parenthesized(self.expr)
        if k == "[":
            return self.set_literal()
        if k == "{":
            return self.record_literal()
        if k == IDENT:
            return self.identifier()
        c.fail(f"expected an expression, found {describe(t)}")

    def set_literal(self) -> SetLit:
        c = self.c
        t = c.advance()
        self.enter(t)
        items: list[Expr] = []
        while not c.at("]"):
            items.append(self.expr())
            if c.at(","):
                c.advance()
            elif not c.at("]"):
                c.fail(f"expected ',' or ']' in the set literal, found {c.found()}")
        c.advance()
        self.leave()
        return SetLit(tuple(items), self.loc(t))

    def record_literal(self) -> RecordLit:
        c = self.c
        t = c.advance()
        self.enter(t)
        items: list[tuple[str, Expr]] = []
        seen: set[str] = set()
        while not c.at("}"):
            kt = c.tok
            if kt.kind == IDENT:
                c.advance()
                key = kt.text
            elif kt.kind == STRING:
                key = self.plain_string(kt)
            else:
                c.fail(f"expected a record key (identifier or string), found {describe(kt)}")
            if key in seen:
                c.fail(f"duplicate key '{key}' in record literal", kt)
            seen.add(key)
            c.expect(":", f"expected ':' after the record key '{key}'")
            items.append((key, self.expr()))
            if c.at(","):
                c.advance()
            elif not c.at("}"):
                c.fail(f"expected ',' or '}}' in the record literal, found {c.found()}")
        c.advance()
        self.leave()
        return RecordLit(tuple(items), self.loc(t))

    def identifier(self) -> Expr:
        """Everything a primary starting with an identifier can be."""
        c = self.c
        t = c.tok
        text = t.text
        nxt = c.peek()
        if text == "true" or text == "false":
            c.advance()
            return Lit(text == "true", self.loc(t))
        if text == "if":
            return self.if_then_else()
        if nxt.kind == "::":
            return self.entity_literal()
        if text in VARIABLES:
            if nxt.kind == "(":
                c.advance()
                return RelCall(text, self.call_args(f"'{text}'", allow_wildcard=True), self.loc(t))
            c.advance()
            return VarRef(text, self.loc(t))
        if text == "_":
            c.fail("'_' is only allowed as an argument of a relation call")
        if text in _KEYWORDS:
            c.fail(f"expected an expression, found the keyword '{text}'")
        c.advance()
        name = text
        while c.at(".") and c.peek().kind == IDENT:
            c.advance()
            name += "." + c.advance().text
        if not c.at("("):
            if not ("a" <= text[0] <= "z" or text[0] == "_"):
                c.fail(
                    f"unknown identifier '{name}': expected principal, action, resource, context, a literal, "
                    f"or an entity literal {name}::\"id\"",
                    t,
                )
            c.fail(
                f"unknown identifier '{name}': expected principal, action, resource, context, a literal, "
                f"or a relation call '{name}(...)'",
                t,
            )
        if not ("a" <= text[0] <= "z" or text[0] == "_"):
            c.fail(f"relation names start with a lowercase letter, found '{name}'", t)
        return RelCall(name, self.call_args(f"'{name}'", allow_wildcard=True), self.loc(t))

    def if_then_else(self) -> IfThenElse:
        c = self.c
        t = c.advance()
        self.enter(t)
        cond = self.expr()
        if not c.at_word("then"):
            c.fail(f"expected 'then' after the condition of 'if', found {c.found()}")
        c.advance()
        then = self.expr()
        if not c.at_word("else"):
            c.fail(f"expected 'else' after the 'then' branch, found {c.found()}")
        c.advance()
        else_ = self.expr()
        self.leave()
        return IfThenElse(cond, then, else_, self.loc(t))

    # ------------------------------------------------------------------
    # error recovery

    def recover(self, start: int) -> None:
        """Skip to where the next policy probably starts.

        That is after the next ``;`` outside brackets (bracket depth counted
        from the start of the failed policy), or at a line that starts with
        ``permit``, ``forbid`` or ``@`` (so an unclosed ``{`` or a missing
        ``;`` costs one error, not the rest of the file). Always moves past
        ``start`` so parsing makes progress.
        """
        c = self.c
        toks = c.toks
        err = max(c.i, start)
        depth = 0
        for j in range(start, err):
            k = toks[j].kind
            if k in ("(", "[", "{"):
                depth += 1
            elif k in (")", "]", "}"):
                depth -= 1
        i = err
        while True:
            t = toks[i]
            k = t.kind
            if k == EOF:
                break
            if i > start and t.first and (k == "@" or (k == IDENT and t.text in ("permit", "forbid"))):
                break
            if k in ("(", "[", "{"):
                depth += 1
            elif k in (")", "]", "}"):
                depth -= 1
            elif k == ";" and depth <= 0:
                i += 1
                break
            i += 1
        c.i = min(i, c.last)


def parse_policies(
    text: str,
    file: str,
    first_line: int = 1,
    max_nesting: int = DEFAULT_LIMITS.max_nesting,
) -> tuple[tuple[Policy, ...], list[RuneError]]:
    """Parse a ``[policies]`` section.

    Returns the policies that parsed (``id`` = the ``@id`` annotation or
    ``""``) and every error found, sorted by position; the caller decides
    whether to raise. Never raises: any input yields ``RuneError`` values only.
    """
    lexed = tokenize(text, file, first_line, dialect="policies")
    p = _PolicyParser(lexed, max_nesting)
    return p.parse_all(p.policy)
