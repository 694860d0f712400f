"""Parser of the ``[rules]`` section: Datalog text -> ``tuple[Rule, ...]`` (docs/language.md §4).

A hand-written recursive-descent parser over ``lexer.tokenize`` tokens.
Hand-written rather than generated because the error messages are part of the
product: each one says what was expected and what was found, at the exact
file position, and the parser recovers after an error so that one load
reports every broken rule, not just the first.

Decisions worth knowing (they belong in the user docs too):

- ``X = expr`` is always a ``Comparison("=")``; whether it is an assignment
  depends on what the rest of the body binds, which the checks decide.
- A ``.`` touching an identifier on both sides (``agent.name``) is part of a
  dotted relation name or a method call (``X.starts_with``). A ``.`` ends the
  rule only when no name character is glued after it: ``p(1). q(2).`` is two
  rules, while ``p(1).q(2).`` and ``X = 1.b.`` are errors (better a clear
  error than silently reading ``b.`` as a new fact).
- Bare lowercase identifiers are string constants, also inside comparisons
  (``X = alice``); ``T = count`` stays a comparison with ``"count"`` unless
  ``:``/``{``/a variable follows, which makes it an aggregate.
- Locations: a rule, an atom, a literal point at their first token; a
  ``BinOp`` points at its operator (where overflow/division errors belong).
- ``X.like("...")``: the argument is kept as an escaped glob (``*`` wildcard,
  ``\\*`` literal star, ``\\\\`` literal backslash); ``lexer.like_pattern_from_glob``
  converts it to the tuple form policies use.
- Nesting (parentheses in arithmetic, aggregate bodies) deeper than
  ``max_nesting`` is a ``RuneLimitError`` named ``max_nesting``, reported like
  a syntax error, so hostile input cannot exhaust the Python stack.
"""

from __future__ import annotations

import math
from typing import Optional, cast

from .ast import Aggregate, ArithOp, Atom, BinOp, CompareOp, Comparison, Const, Literal, MethodCall, Negation, Rule, RuleExpr, Term, Var, Wildcard
from ..errors import RuneError, RuneSyntaxError
from .lexer import EOF, ERROR, FLOAT, IDENT, INT, STRING, ParserBase, SilentError, Token, describe, like_glob, tokenize
from ..limits import DEFAULT_LIMITS
from ..values import INT_MAX, INT_MIN, Entity

__all__ = ["parse_rules", "parse_atom", "METHODS", "AGGREGATES"]

#: String methods callable on a variable in a rule body.
METHODS = ("starts_with", "ends_with", "contains", "like")
#: Aggregate functions; only ``count`` has no target variable.
AGGREGATES = ("count", "sum", "min", "max", "mean")

_COMPARE_OPS = frozenset(("=", "!=", "<", "<=", ">", ">="))
_ARITH_OPS = frozenset(("+", "-", "*", "/", "%"))
# Tokens after which a line-initial identifier probably starts a new rule
# (the previous line looked complete): used only by error recovery.
_CAN_END_LITERAL = frozenset((")", "}", IDENT, INT, FLOAT, STRING, ERROR))
_NOT_RELATION_NAMES = frozenset(("not", "true", "false"))


def _is_var_name(name: str) -> bool:
    """``X``, ``Foo``, ``_x``: a variable. ``_`` alone is the wildcard."""
    c = name[0]
    return ("A" <= c <= "Z") or (c == "_" and len(name) > 1)


def _is_relation_start(name: str) -> bool:
    """Relation names are ``[a-z_][A-Za-z0-9_]*`` (``_`` alone excluded)."""
    c = name[0]
    return ("a" <= c <= "z") or (c == "_" and len(name) > 1)


class _RulesParser(ParserBase):
    """State of one parse: tokens, cursor, nesting depth, collected errors."""

    NESTING_WHAT = "expression or aggregate"

    # ------------------------------------------------------------------
    # helpers

    def _name_dot_at(self, i: int) -> bool:
        """Is the ``.`` token at index ``i`` glued between two identifiers?"""
        toks = self.c.toks
        if i <= 0 or i + 1 >= len(toks):
            return False
        before, dot, after = toks[i - 1], toks[i], toks[i + 1]
        return dot.kind == "." and before.kind == IDENT and after.kind == IDENT and before.end == dot.pos and dot.end == after.pos

    def _ends_rule_at(self, i: int) -> bool:
        """Is the token at ``i`` a rule-ending ``.``?

        A ``.`` ends a rule unless a name character follows it with no space
        in between: ``agent.name`` is one dotted name, and ``X = 1.b`` is an
        error rather than a silent ``X = 1.`` followed by a fact ``b.``.
        """
        toks = self.c.toks
        dot = toks[i]
        if dot.kind != ".":
            return False
        after = toks[i + 1] if i + 1 < len(toks) else dot
        return not (after.pos == dot.end and after.kind in (IDENT, INT, FLOAT))

    def at_name_dot(self) -> bool:
        c = self.c
        return c.tok.kind == "." and self._name_dot_at(c.i)

    def at_rule_end(self) -> bool:
        return self._ends_rule_at(self.c.i)

    # ------------------------------------------------------------------
    # rules

    def rule(self) -> Rule:
        c = self.c
        self.depth = 0
        head = self.atom("at the start of a rule")
        body: tuple[Literal, ...] = ()
        if c.at(":-"):
            c.advance()
            body = self.literals()
            if not self.at_rule_end():
                self.fail_end("expected ',' or '.' after a literal of the rule")
        elif not self.at_rule_end():
            self.fail_end(f"expected ':-' or '.' after the head '{head.name}'")
        c.advance()
        return Rule(head, body, head.loc)

    def fail_end(self, message: str) -> None:
        """Fail where a rule-ending ``.`` (or a separator) was expected."""
        c = self.c
        t = c.tok
        if t.kind == "." and self.at_name_dot():
            c.fail(
                f"{message}, found '.' glued between '{c.peek(-1).text}' and '{c.peek(1).text}', "
                "which reads as a dotted name; put a space or newline after the '.' that ends a rule"
            )
        if t.kind == ".":
            c.fail(
                f"{message}, found '.' glued to '{c.peek(1).text}'; the '.' that ends a rule must be "
                "followed by a space, a newline or a comment"
            )
        hint = ""
        if t.first and t.kind == IDENT:
            hint = " (missing '.' at the end of the previous rule?)"
        c.fail(f"{message}, found {describe(t)}{hint}")

    def literals(self) -> tuple[Literal, ...]:
        c = self.c
        out = [self.literal()]
        while c.at(","):
            c.advance()
            out.append(self.literal())
        return tuple(out)

    def literal(self) -> Literal:
        c = self.c
        t = c.tok
        if t.kind == IDENT:
            nxt = c.peek()
            if t.text == "not" and nxt.kind != "::":
                c.advance()
                atom = self.atom("after 'not'")
                return Negation(atom, self.loc(t))
            if nxt.kind == "::":
                return self.comparison()
            if _is_var_name(t.text):
                if self._name_dot_at(c.i + 1):
                    return self.method_call()
                if nxt.kind == "=" and self.looks_like_aggregate():
                    return self.aggregate()
                if nxt.kind == "(":
                    if t.text[0] == "_":
                        return self.atom("in the rule body")
                    c.fail(f"relation names start with a lowercase letter; '{t.text}' is a variable and cannot be called")
                return self.comparison()
            if t.text in ("true", "false"):
                return self.comparison()
            if t.text == "_":
                c.fail("'_' cannot start a literal: expected an atom, 'not', a comparison, a method call or an aggregate")
            if nxt.kind in _COMPARE_OPS or nxt.kind in _ARITH_OPS or nxt.kind == "==":
                return self.comparison()
            return self.atom("in the rule body")
        if t.kind in (INT, FLOAT, STRING, "(", "-"):
            return self.comparison()
        c.fail(f"expected a literal (atom, 'not', comparison, method call or aggregate), found {describe(t)}")

    def looks_like_aggregate(self) -> bool:
        """``V = func :``, ``V = func {`` or ``V = func Target``: an aggregate.

        ``T = count`` followed by anything else stays a comparison with the
        string ``"count"``, so a relation value named like a function still works.
        """
        c = self.c
        f = c.peek(2)
        if f.kind != IDENT or f.text not in AGGREGATES:
            return False
        after = c.peek(3)
        return after.kind in (":", "{") or (after.kind == IDENT and (after.text == "_" or _is_var_name(after.text)))

    # ------------------------------------------------------------------
    # atoms and terms

    def atom(self, where: str) -> Atom:
        c = self.c
        t = c.tok
        if t.kind != IDENT:
            c.fail(f"expected a relation name {where}, found {describe(t)}")
        if t.text in _NOT_RELATION_NAMES or t.text == "_":
            c.fail(f"expected a relation name {where}, found '{t.text}'")
        if not _is_relation_start(t.text):
            c.fail(f"expected a relation name {where}, found variable '{t.text}' (relation names start with a lowercase letter)")
        c.advance()
        name = t.text
        while self.at_name_dot():
            c.advance()
            name += "." + c.advance().text
        args: list[Term] = []
        if c.at("("):
            c.advance()
            if c.at(")"):
                c.advance()
            else:
                while True:
                    args.append(self.term(f"argument {len(args) + 1} of '{name}'"))
                    if c.at(","):
                        c.advance()
                        continue
                    if c.at(")"):
                        c.advance()
                        break
                    if c.tok.kind in _COMPARE_OPS or c.tok.kind in _ARITH_OPS:
                        c.fail(
                            f"expected ',' or ')' after argument {len(args)} of '{name}', found {c.found()} "
                            "(atom arguments are terms; compute expressions in a separate literal: Y = X + 1)"
                        )
                    c.fail(f"expected ',' or ')' after argument {len(args)} of '{name}', found {c.found()}")
        return Atom(name, tuple(args), self.loc(t))

    def term(self, what: str) -> Term:
        """A variable, ``_`` or a constant (an atom argument)."""
        c = self.c
        t = c.tok
        if t.kind == IDENT:
            if c.peek().kind == "::":
                return self.entity()
            c.advance()
            if t.text == "_":
                return Wildcard(self.loc(t))
            if _is_var_name(t.text):
                return Var(t.text, self.loc(t))
            if t.text == "true" or t.text == "false":
                return Const(t.text == "true", self.loc(t))
            return Const(t.text, self.loc(t))
        if t.kind == STRING:
            return Const(self.plain_string(t), self.loc(t))
        if t.kind == INT:
            c.advance()
            return Const(self.int_value(t, t.value), self.loc(t))  # type: ignore[arg-type]
        if t.kind == FLOAT:
            c.advance()
            return Const(self.float_value(t, t.value), self.loc(t))  # type: ignore[arg-type]
        if t.kind == "-" and c.peek().kind in (INT, FLOAT):
            c.advance()
            num = c.advance()
            if num.kind == INT:
                return Const(self.int_value(t, -num.value), self.loc(t))  # type: ignore[operator]
            return Const(self.float_value(t, -num.value), self.loc(t))  # type: ignore[operator]
        c.fail(f"expected a term (variable, '_' or constant) as {what}, found {describe(t)}")

    def int_value(self, t: Token, value: int) -> int:
        if value > INT_MAX or value < INT_MIN:
            self.c.fail(f"integer literal out of the 64-bit range [{INT_MIN}, {INT_MAX}]", t)
        return value

    def float_value(self, t: Token, value: float) -> float:
        if math.isinf(value):
            self.c.fail("float literal out of range", t)
        return value

    def entity(self) -> Const:
        """``Type::"id"`` or ``Ns::Type::"id"``."""
        c = self.c
        start = c.advance()
        path = [start.text]
        while True:
            c.expect("::", f"expected '::' in entity literal after '{'::'.join(path)}'")
            t = c.tok
            if t.kind == STRING:
                ident = self.plain_string(t)
                return Const(Entity("::".join(path), ident), self.loc(start))
            if t.kind == IDENT and c.peek().kind == "::":
                path.append(c.advance().text)
                continue
            c.fail(f"expected a quoted entity id after '{'::'.join(path)}::', found {describe(t)}")

    # ------------------------------------------------------------------
    # expressions, comparisons, methods, aggregates

    def comparison(self) -> Comparison:
        c = self.c
        start = c.tok
        left = self.arith()
        op = c.tok
        if op.kind == "==":
            c.fail("'==' is not a rule operator; compare with '=' in rules")
        if op.kind not in _COMPARE_OPS:
            c.fail(f"expected a comparison operator (= != < <= > >=) after the expression, found {describe(op)}")
        c.advance()
        right = self.arith()
        if c.tok.kind in _COMPARE_OPS or c.tok.kind == "==":
            c.fail(f"comparisons cannot be chained; found a second operator '{c.tok.text}' (split it into two literals)")
        return Comparison(cast(CompareOp, op.kind), left, right, self.loc(start))

    def arith(self) -> RuleExpr:
        c = self.c
        left = self.product()
        while c.tok.kind == "+" or c.tok.kind == "-":
            op = c.advance()
            right = self.product()
            left = BinOp(cast(ArithOp, op.kind), left, right, self.loc(op))
        return left

    def product(self) -> RuleExpr:
        c = self.c
        left = self.factor()
        while c.tok.kind in ("*", "/", "%"):
            op = c.advance()
            right = self.factor()
            left = BinOp(cast(ArithOp, op.kind), left, right, self.loc(op))
        return left

    def factor(self) -> RuleExpr:
        c = self.c
        t = c.tok
        if t.kind == "(":
            return self.parenthesized(self.arith)
        if t.kind == IDENT and t.text == "_":
            c.fail("'_' can only be an atom argument, not part of an expression")
        if t.kind == IDENT and c.peek().kind == "(":
            c.fail(f"relation '{t.text}' cannot be used inside an expression; write it as its own literal")
        if t.kind in (IDENT, STRING, INT, FLOAT) or (t.kind == "-" and c.peek().kind in (INT, FLOAT)):
            term = self.term("an operand")
            return term  # type: ignore[return-value]
        c.fail(f"expected a variable, a constant or '(' in the expression, found {describe(t)}")

    def method_call(self) -> MethodCall:
        c = self.c
        vt = c.advance()
        c.advance()  # the glued '.'
        mt = c.advance()
        if mt.text not in METHODS:
            c.fail(f"unknown method '{mt.text}'; expected one of {', '.join(METHODS)}", mt)
        c.expect("(", f"expected '(' after '{vt.text}.{mt.text}'")
        st = c.tok
        if st.kind != STRING:
            c.fail(f"expected a string literal as the argument of '{mt.text}', found {describe(st)}")
        if mt.text == "like":
            arg = like_glob(st)
            c.advance()
        else:
            arg = self.plain_string(st)
        c.expect(")", f"expected ')' after the argument of '{mt.text}'")
        return MethodCall(Var(vt.text, self.loc(vt)), mt.text, arg, self.loc(vt))

    def aggregate(self) -> Aggregate:
        c = self.c
        rt = c.advance()
        c.advance()  # '='
        ft = c.advance()
        func = ft.text
        target: Optional[Var] = None
        t = c.tok
        if t.kind == IDENT and (t.text == "_" or _is_var_name(t.text)):
            if func == "count":
                c.fail("'count' takes no target variable: write 'N = count : { ... }'")
            if t.text == "_":
                c.fail(f"the target of '{func}' must be a named variable, not '_'")
            c.advance()
            target = Var(t.text, self.loc(t))
        elif func != "count":
            c.fail(f"'{func}' needs a target variable: write '{rt.text} = {func} X : {{ ... }}', found {describe(t)}")
        c.expect(":", f"expected ':' before the aggregate body of '{func}'")
        brace = c.tok
        c.expect("{", f"expected '{{' to open the body of '{func}'")
        self.enter(brace)
        if c.at("}"):
            c.fail(f"the body of '{func}' is empty; expected at least one literal")
        body = self.literals()
        if not c.at("}"):
            c.fail(f"expected ',' or '}}' in the body of '{func}', found {c.found()}")
        c.advance()
        self.leave()
        return Aggregate(Var(rt.text, self.loc(rt)), func, target, body, self.loc(rt))

    # ------------------------------------------------------------------
    # error recovery

    def recover(self, start: int) -> None:
        """Skip to where the next rule probably starts.

        That is after the next rule-ending ``.``, or at a line whose first
        token looks like a rule head while the previous line looked complete
        (so a forgotten ``.`` costs only one error and the next rule is
        still checked). Always moves past ``start`` so parsing makes progress.
        """
        c = self.c
        toks = c.toks
        i = max(c.i, start)
        while True:
            t = toks[i]
            if t.kind == EOF:
                break
            if i > start and self._looks_like_rule_start(i):
                break
            if self._ends_rule_at(i):
                i += 1
                break
            i += 1
        c.i = min(i, c.last)

    def _looks_like_rule_start(self, i: int) -> bool:
        toks = self.c.toks
        t = toks[i]
        if not t.first or t.kind != IDENT or t.text in _NOT_RELATION_NAMES:
            return False
        if not _is_relation_start(t.text):
            return False
        return i > 0 and toks[i - 1].kind in _CAN_END_LITERAL and not (toks[i - 1].kind == IDENT and toks[i - 1].text == "not")


def parse_rules(
    text: str,
    file: str,
    first_line: int = 1,
    max_nesting: int = DEFAULT_LIMITS.max_nesting,
) -> tuple[tuple[Rule, ...], list[RuneError]]:
    """Parse a ``[rules]`` section.

    Returns the rules that parsed and every error found (sorted by position);
    the caller decides whether to raise (``errors.raise_collected``). Never
    raises: any input yields ``RuneError`` values only.
    """
    lexed = tokenize(text, file, first_line, dialect="rules")
    p = _RulesParser(lexed, max_nesting)
    return p.parse_all(p.rule)


def parse_atom(text: str, file: str = "<query>") -> Atom:
    """Parse a query atom such as ``path(1, X)`` or ``can_read(User::"alice", D)``.

    A trailing ``.`` is accepted. Raises the first ``RuneSyntaxError`` found
    (queries are one line; there is nothing to collect).
    """
    lexed = tokenize(text, file, 1, dialect="rules")
    if lexed.errors:
        raise lexed.errors[0]
    p = _RulesParser(lexed, DEFAULT_LIMITS.max_nesting)
    c = p.c
    try:
        atom = p.atom("in the query")
        if p.at_rule_end():
            c.advance()
        if not c.at(EOF):
            c.fail(f"expected the end of the query after '{atom.name}(...)', found {c.found()}")
    except SilentError:  # pragma: no cover - lexer errors were raised above
        raise RuneSyntaxError("invalid query", file=file, line=1, column=1, source_line=text) from None
    return atom

