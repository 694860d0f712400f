"""Tests of the Datalog parser (``rune_fast.lang.rules_parser``) and the shared lexer.

The parser's contract: the right AST for every construct of docs/language.md §4, exact
file positions in every node and error, recovery after errors (all of them
reported), a nesting limit instead of a RecursionError, and never anything
but ``RuneError`` whatever the input.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_fast.lang.ast import (
    LIKE_WILDCARD,
    Aggregate,
    Atom,
    BinOp,
    Comparison,
    Const,
    Loc,
    MethodCall,
    Negation,
    Rule,
    Var,
    Wildcard,
)
from rune_fast.errors import RuneError, RuneLimitError, RuneSyntaxError
from rune_fast.lang.lexer import EOF, ERROR, FLOAT, IDENT, INT, STRING, like_pattern_from_glob, tokenize
from rune_fast.limits import DEFAULT_LIMITS
from rune_fast.lang.rules_parser import parse_atom, parse_rules
from rune_fast.values import INT_MAX, INT_MIN, Entity

W = LIKE_WILDCARD


def ok(text: str, first_line: int = 1) -> tuple[Rule, ...]:
    rules, errors = parse_rules(text, "t.rune", first_line)
    assert errors == [], [e.render() for e in errors]
    return rules


def one(text: str) -> Rule:
    rules = ok(text)
    assert len(rules) == 1
    return rules[0]


def body(text: str):
    """The body of ``p :- <text>.``"""
    return one(f"p :- {text}.").body


def errs(text: str, first_line: int = 1, **kw) -> list[RuneError]:
    rules, errors = parse_rules(text, "t.rune", first_line, **kw)
    assert errors, f"expected errors for {text!r}, parsed {rules}"
    return errors


def A(name, *args):
    return Atom(name, tuple(args))


def V(name):
    return Var(name)


def C(value):
    return Const(value)


# --------------------------------------------------------------------------
# lexer


class TestLexer:
    def test_token_kinds_and_positions(self):
        lx = tokenize('p(X, "s", 1, 2.5) :- q.\n  # c\n  r_1.', "f", 10)
        kinds = [t.kind for t in lx.tokens]
        assert kinds == [IDENT, "(", IDENT, ",", STRING, ",", INT, ",", FLOAT, ")", ":-", IDENT, ".", IDENT, ".", EOF]
        r = lx.tokens[13]
        assert (r.text, r.line, r.col, r.first) == ("r_1", 12, 3, True)
        assert lx.errors == []

    def test_longest_match_punctuation(self):
        lx = tokenize(":- :: == != <= >= && || : = < > ! @ ; % / * + -", "f")
        assert [t.kind for t in lx.tokens[:-1]] == [
            ":-", "::", "==", "!=", "<=", ">=", "&&", "||", ":", "=", "<", ">", "!", "@", ";", "%", "/", "*", "+", "-",
        ]

    def test_policy_dialect_has_slash_comments_and_no_rule_arrow(self):
        lx = tokenize("{a:-1} // comment\n# other", "f", dialect="policies")
        assert [t.kind for t in lx.tokens] == ["{", IDENT, ":", "-", INT, "}", EOF]
        lx = tokenize("a // b", "f")  # rules: '/' is division
        assert [t.kind for t in lx.tokens] == [IDENT, "/", "/", IDENT, EOF]

    def test_string_escapes(self):
        lx = tokenize(r'"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00"', "f")
        assert lx.tokens[0].value == 'a"b\\c/\b\f\n\r\t\u00e9\U0001F600'
        assert lx.errors == []

    @pytest.mark.parametrize(
        "src,col,fragment",
        [
            (r'x "ab\qc"', 6, "invalid escape"),
            (r'"\u12"', 2, "4 hexadecimal digits"),
            (r'"\ud800"', 2, "surrogate"),
            (r'"\udc00"', 2, "surrogate"),
            ('  "abc', 3, "unterminated string"),
            ("a $", 3, "unexpected character '$'"),
            ("a 'x'", 3, "double quotes"),
            ("\u00a0", 1, "U+00A0"),
        ],
    )
    def test_lexer_errors(self, src, col, fragment):
        lx = tokenize(src, "f", 7)
        assert len(lx.errors) >= 1
        e = lx.errors[0]
        assert isinstance(e, RuneSyntaxError)
        assert (e.file, e.line, e.column) == ("f", 7, col)
        assert fragment in e.message
        assert e.source_line == src

    def test_unterminated_string_stops_at_end_of_line(self):
        lx = tokenize('"abc\nnext', "f")
        assert [t.kind for t in lx.tokens] == [ERROR, IDENT, EOF]
        assert lx.tokens[1].line == 2

    def test_crlf_lines(self):
        lx = tokenize("a.\r\nb.\r\n", "f")
        assert [(t.text, t.line, t.col) for t in lx.tokens if t.kind == IDENT] == [("a", 1, 1), ("b", 2, 1)]
        assert lx.loc(lx.tokens[2]).text == "b."

    def test_like_glob_round_trip(self):
        assert like_pattern_from_glob("a*b") == ("a", W, "b")
        assert like_pattern_from_glob("a\\*b") == ("a*b",)
        assert like_pattern_from_glob("a\\\\*") == ("a\\", W)
        assert like_pattern_from_glob("**x**") == (W, "x", W)
        assert like_pattern_from_glob("") == ()


# --------------------------------------------------------------------------
# constructs -> AST


class TestConstructs:
    def test_fact(self):
        r = one("p(1).")
        assert r == Rule(A("p", C(1)), ())

    def test_zero_arity(self):
        assert one("flag.").head == A("flag")
        assert one("flag().").head == A("flag")
        assert one("p :- q, r().").body == (A("q"), A("r"))

    def test_spec_examples(self):
        rules = ok(
            """
user_can(U, P)      :- has_role(U, R), role_permission(R, P).
has_access(U, C)    :- has_access(U, P), parent_resource(C, P).
allowed(U)          :- user(U), not blocked(U), not over_limit(U).
total_usage(U, T)   :- user(U), T = sum C : { api_call(U, _, C) }.
over_limit(U)       :- total_usage(U, T), user_limit(U, L), T > L.
tmp_path(P)         :- path(P), P.starts_with("/tmp/").
"""
        )
        assert len(rules) == 6
        assert rules[0] == Rule(A("user_can", V("U"), V("P")), (A("has_role", V("U"), V("R")), A("role_permission", V("R"), V("P"))))
        assert rules[2].body == (A("user", V("U")), Negation(A("blocked", V("U"))), Negation(A("over_limit", V("U"))))
        assert rules[3].body[1] == Aggregate(V("T"), "sum", V("C"), (A("api_call", V("U"), Wildcard(), V("C")),))
        assert rules[4].body[2] == Comparison(">", V("T"), V("L"))
        assert rules[5].body[1] == MethodCall(V("P"), "starts_with", "/tmp/")

    def test_constants(self):
        r = one('f(alice, true, false, 2.5, -1.5, "s\\n\\"", 42, -7, _X, _, Xy).')
        assert r.head.args == (
            C("alice"),
            C(True),
            C(False),
            C(2.5),
            C(-1.5),
            C('s\n"'),
            C(42),
            C(-7),
            V("_X"),
            Wildcard(),
            V("Xy"),
        )
        assert type(r.head.args[1].value) is bool
        assert type(r.head.args[6].value) is int

    def test_integer_bounds(self):
        r = one(f"p({INT_MAX}, {INT_MIN}, -0).")
        assert r.head.args == (C(INT_MAX), C(INT_MIN), C(0))
        assert one(f"p :- X = {INT_MIN}.").body == (Comparison("=", V("X"), C(INT_MIN)),)
        assert one("p(00000000000000000000000000001).").head.args == (C(1),)

    def test_entities(self):
        r = one('p(User::"alice", App::Doc::"d1", T::"a\\"b").')
        assert r.head.args == (C(Entity("User", "alice")), C(Entity("App::Doc", "d1")), C(Entity("T", 'a"b')))
        assert body('X = User::"bob"') == (Comparison("=", V("X"), C(Entity("User", "bob"))),)
        assert body('User::"bob" = X') == (Comparison("=", C(Entity("User", "bob")), V("X")),)

    def test_wildcard_and_underscore_variables(self):
        head = one("p(_, _x, _X, __).").head
        assert head.args == (Wildcard(), V("_x"), V("_X"), V("__"))

    def test_dotted_relation_names(self):
        rules = ok("agent.name(X) :- config.a.b(X), not deny.list(X).\np :- agent.name(x).")
        assert rules[0].head.name == "agent.name"
        assert rules[0].body == (A("config.a.b", V("X")), Negation(A("deny.list", V("X"))))
        assert rules[1].body == (A("agent.name", C("x")),)

    def test_dot_rules(self):
        # a zero-arity atom then the rule-ending dot at end of input / before a comment
        assert ok("p :- q.")[0].body == (A("q"),)
        assert ok("p :- q.# comment\nr.")[1].head == A("r")
        assert ok("p :- q.\tr.")[1].head == A("r")
        # a dotted name: the dot is glued on both sides
        assert ok("p :- q.r.")[0].body == (A("q.r"),)
        # ')' then '.' then a space: two rules on one line
        assert [r.head.name for r in ok("p(1). q(2).")] == ["p", "q"]
        # a float in a body then the rule end
        assert ok("p :- X = 2.5.")[0].body == (Comparison("=", V("X"), C(2.5)),)
        assert ok("p :- X = 2.")[0].body == (Comparison("=", V("X"), C(2)),)

    @pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
    def test_comparison_ops(self, op):
        assert body(f"q(X), X {op} 3") == (A("q", V("X")), Comparison(op, V("X"), C(3)))

    def test_bare_lowercase_in_comparison_is_a_string(self):
        assert body("q(X), X = alice") == (A("q", V("X")), Comparison("=", V("X"), C("alice")))
        assert body("q(X), alice != X") == (A("q", V("X")), Comparison("!=", C("alice"), V("X")))
        assert body("q(X), X = count") == (A("q", V("X")), Comparison("=", V("X"), C("count")))

    @pytest.mark.parametrize("m", ["starts_with", "ends_with", "contains", "like"])
    def test_methods(self, m):
        assert body(f'q(X), X.{m}("ab")')[1] == MethodCall(V("X"), m, "ab")

    def test_like_argument_is_an_escaped_glob(self):
        assert body(r'q(X), X.like("a*b\*c\\d")')[1] == MethodCall(V("X"), "like", "a*b\\*c\\\\d")
        assert like_pattern_from_glob("a*b\\*c\\\\d") == ("a", W, "b*c\\d")

    def test_method_on_underscore_variable(self):
        assert body('q(_P), _P.ends_with(".txt")')[1] == MethodCall(V("_P"), "ends_with", ".txt")

    @pytest.mark.parametrize("func", ["sum", "min", "max", "mean"])
    def test_aggregates_with_target(self, func):
        got = body(f"g(G), T = {func} C : {{ v(G, C), C > 0 }}")[1]
        assert got == Aggregate(V("T"), func, V("C"), (A("v", V("G"), V("C")), Comparison(">", V("C"), C(0))))

    def test_count(self):
        assert body("N = count : { user(_) }") == (Aggregate(V("N"), "count", None, (A("user", Wildcard()),)),)
        assert body("N = count:{user(_)}") == (Aggregate(V("N"), "count", None, (A("user", Wildcard()),)),)

    def test_nested_aggregate_and_negation_inside(self):
        got = body("N = count : { u(U), not b(U), M = max S : { s(U, S) } }")[0]
        assert got == Aggregate(
            V("N"),
            "count",
            None,
            (A("u", V("U")), Negation(A("b", V("U"))), Aggregate(V("M"), "max", V("S"), (A("s", V("U"), V("S")),))),
        )

    def test_arithmetic_precedence(self):
        (cmp,) = body("X = 1 + 2 * 3")
        assert cmp.right == BinOp("+", C(1), BinOp("*", C(2), C(3)))
        (cmp,) = body("X = (1 + 2) * 3")
        assert cmp.right == BinOp("*", BinOp("+", C(1), C(2)), C(3))
        (cmp,) = body("X = 1 - 2 - 3")
        assert cmp.right == BinOp("-", BinOp("-", C(1), C(2)), C(3))
        (cmp,) = body("X = A / B % C * D")
        assert cmp.right == BinOp("*", BinOp("%", BinOp("/", V("A"), V("B")), V("C")), V("D"))
        (cmp,) = body("X - 1 < Y * 2 + Z")
        assert cmp == Comparison("<", BinOp("-", V("X"), C(1)), BinOp("+", BinOp("*", V("Y"), C(2)), V("Z")))

    def test_minus_and_negative_literals(self):
        assert body("X = Y-1")[0].right == BinOp("-", V("Y"), C(1))
        assert body("X = Y - -1")[0].right == BinOp("-", V("Y"), C(-1))
        assert body("X = -1 * Y")[0].right == BinOp("*", C(-1), V("Y"))
        assert body("X = ((Y))")[0].right == V("Y")

    def test_assignment_is_a_comparison(self):
        assert body("q(Y), X = Y + 1") == (A("q", V("Y")), Comparison("=", V("X"), BinOp("+", V("Y"), C(1))))

    def test_comments_and_blank_lines(self):
        rules = ok("# header\n\np(1). # trailing\n   # indented\nq(2).\n# end")
        assert [r.head.name for r in rules] == ["p", "q"]

    def test_empty_input(self):
        assert parse_rules("", "t.rune") == ((), [])
        assert parse_rules("  \n# only a comment\n", "t.rune") == ((), [])

    def test_multiline_rule(self):
        r = one("p(X) :-\n    q(X),\n    not r(X).")
        assert r.body == (A("q", V("X")), Negation(A("r", V("X"))))


# --------------------------------------------------------------------------
# locations


class TestLocations:
    def test_every_node_is_located_in_file_coordinates(self):
        text = "# c\nlong_name(X, Y) :-\n    q(X),  X = Y + 1,\n    Y.starts_with(\"a\")."
        (r,) = ok(text, first_line=20)
        assert r.loc == Loc("t.rune", 21, 1)
        assert r.loc.text == "long_name(X, Y) :-"
        assert r.head.args[1].loc == Loc("t.rune", 21, 14)
        q, cmp, meth = r.body
        assert q.loc == Loc("t.rune", 22, 5)
        assert q.args[0].loc == Loc("t.rune", 22, 7)
        assert cmp.loc == Loc("t.rune", 22, 12)
        assert cmp.right.loc == Loc("t.rune", 22, 18)  # BinOp at its operator
        assert cmp.right.right.loc == Loc("t.rune", 22, 20)
        assert cmp.loc.text == "    q(X),  X = Y + 1,"
        assert meth.loc == Loc("t.rune", 23, 5)

    def test_negation_aggregate_and_entity_locations(self):
        (r,) = ok('p :- not q(X), N = count : { s(App::T::"x") }.')
        neg, agg = r.body
        assert neg.loc.col == 6 and neg.atom.loc.col == 10
        assert agg.loc.col == 16 and agg.result.loc.col == 16
        assert agg.body[0].args[0].loc.col == 32

    def test_negative_literal_located_at_sign(self):
        (r,) = ok("p(1, -5).")
        assert r.head.args[1].loc.col == 6


# --------------------------------------------------------------------------
# errors


def _pos(src: str, at) -> tuple[int, int]:
    """(line, col) of the first occurrence of ``at`` in ``src``, or ``at`` itself."""
    if isinstance(at, tuple):
        return at
    idx = src.index(at)
    line = src.count("\n", 0, idx) + 1
    col = idx - (src.rfind("\n", 0, idx) + 1) + 1
    return line, col


MALFORMED = [
    # (source, where the error is: substring or (line, col), message fragment)
    ("p(X) :- q(X)", (1, 13), "expected ',' or '.' after a literal of the rule, found end of input"),
    ("p(X :- q.", ":-", "expected ',' or ')' after argument 1 of 'p', found ':-'"),
    ("P(X).", "P", "found variable 'P'"),
    ("p(X) :- q(X),.", ".", "expected a literal"),
    ("p(X) :- q(X) r(X).", "r(", "expected ',' or '.' after a literal of the rule, found 'r'"),
    ('p("abc).', '"', "unterminated string"),
    ('p("a\\qb").', "\\", "invalid escape '\\q'"),
    ("p($).", "$", "unexpected character '$'"),
    ("p(9223372036854775808).", "9", "out of the 64-bit range"),
    ("p(-9223372036854775809).", "-", "out of the 64-bit range"),
    ("p(123456789012345678901234567890).", "1", "out of the 64-bit range"),
    ("p(X) :- q(X), X == 1.", "==", "compare with '=' in rules"),
    ("p(X) :- q(X), X < Y < Z.", "< Z", "cannot be chained"),
    ('p(X) :- q(X), X.foo("a").', "foo", "unknown method 'foo'"),
    ("p(X) :- q(X), X.starts_with(1).", "1)", "expected a string literal as the argument of 'starts_with', found number 1"),
    ("p(N) :- N = count C : { q(C) }.", "C :", "'count' takes no target variable"),
    ("p(T) :- T = sum : { q(C) }.", (1, 17), "'sum' needs a target variable"),
    ("p(T) :- T = sum C : { }.", "}", "body of 'sum' is empty"),
    ("p(T) :- T = sum C { q(C) }.", "{", "expected ':' before the aggregate body of 'sum', found '{'"),
    ("p(T) :- T = sum _ : { q(C) }.", "_", "must be a named variable"),
    ("p(T) :- T = sum C : { q(C) .", (1, 28), "expected ',' or '}' in the body of 'sum'"),
    ("p(X) :- q(X), X = _ + 1.", "_", "'_' can only be an atom argument"),
    ("p(X) :- q(X + 1).", "+", "expected ',' or ')' after argument 1 of 'q', found '+'"),
    ("p(X) :- not X.", "X.", "found variable 'X'"),
    ("p(X) :- q(X), X = (1 + 2.", (1, 25), "expected ')' to close the '(' at 1:19, found '.'"),
    ("p(X) :- q(X), X = 1.b.", ".b", "glued to 'b'"),
    ("p(X) :- q(X), X = foo.bar.", ".bar", "reads as a dotted name"),
    ("p(X) :- q(X), X = foo(1).", "foo", "relation 'foo' cannot be used inside an expression"),
    ("p(X) :- q(X), X = 1e999.", "1e999", "float literal out of range"),
    ("p(User::alice).", "alice", "expected a quoted entity id after 'User::', found 'alice'"),
    ('p(X) :- q(X), X.starts_with("a\\*").', '"a', "only valid in a like pattern"),
    ("p(X) :- q(X), X = 'a'.", "'", "double quotes"),
    (":- q(X).", ":-", "expected a relation name at the start of a rule, found ':-'"),
    ("p(X) :- .", ".", "expected a literal"),
    ("p(X) :- q(X), Foo(X).", "Foo", "relation names start with a lowercase letter"),
    ("p(1) q(2).", "q", "expected ':-' or '.' after the head 'p', found 'q'"),
    ('p(X) :- q(X), X = "\\ud800".', "\\", "surrogate"),
    ("p(X) :- q(X), X.like(pat).", "pat", "expected a string literal as the argument of 'like'"),
    ("p(X) :- q(X), X.contains(\"a\".", (1, 29), "expected ')' after the argument of 'contains'"),
    ("true(1).", "true", "expected a relation name at the start of a rule, found 'true'"),
    ("_ :- q.", "_", "found '_'"),
    ("p :- q(X), _.", "_.", "'_' cannot start a literal"),
    ("p :- X.", ".", "expected a comparison operator"),
    ("p :- q(X) & r(X).", "&", "unexpected character '&'"),
    ("p :- q(X) && r(X).", "&&", "expected ',' or '.' after a literal of the rule, found '&&'"),
    ("p(1).q(2).", ".q", "glued to 'q'"),
    ("p :- q(X), X = 1 +.", ".", "expected a variable, a constant or '(' in the expression, found '.'"),
    ("p(X) :- q(X), X = \"a\" 5.", "5", "expected ',' or '.' after a literal of the rule, found number 5"),
]


@pytest.mark.parametrize("src,at,fragment", MALFORMED)
def test_malformed(src, at, fragment):
    errors = errs(src, first_line=1)
    e = errors[0]
    assert isinstance(e, RuneSyntaxError), e
    line, col = _pos(src, at)
    assert (e.file, e.line, e.column) == ("t.rune", line, col), e.render()
    assert fragment in e.message, e.message
    assert e.source_line == src.split("\n")[line - 1]


def test_malformed_has_at_least_25_cases():
    assert len({m[0] for m in MALFORMED}) >= 25


@pytest.mark.parametrize("src,at,fragment", MALFORMED[:10])
def test_malformed_positions_shift_with_first_line(src, at, fragment):
    e = errs("\n\n" + src, first_line=40)[0]
    line, col = _pos(src, at)
    assert (e.line, e.column) == (41 + line, col)


def test_error_rendering_shows_line_and_caret():
    e = errs("ok(1).\np(X :- q.", first_line=3)[0]
    assert e.render() == (
        "t.rune:4:5: RuneSyntaxError: expected ',' or ')' after argument 1 of 'p', found ':-'\n"
        "    p(X :- q.\n"
        "        ^"
    )


# --------------------------------------------------------------------------
# recovery


class TestRecovery:
    def test_several_errors_in_one_section(self):
        text = "\n".join(
            [
                "good1(X) :- q(X).",  # 10
                "bad1(X :- q(X).",  # 11
                "good2(1).",  # 12
                "bad2(X) :- q(X), X == 1.",  # 13
                "bad3(X) :- q(X)",  # 14: missing '.'
                "good3(X) :- q(X),",  # 15
                "    r(X).",  # 16
                'bad4("oops).',  # 17
                "good4.",  # 18
                "bad5(X) :- q(X), X = (1 + .",  # 19
                "good5(X) :- q(X).",  # 20
            ]
        )
        rules, errors = parse_rules(text, "t.rune", 10)
        assert [r.head.name for r in rules] == ["good1", "good2", "good3", "good4", "good5"]
        assert [(e.line, e.column) for e in errors] == [(11, 8), (13, 20), (15, 1), (17, 6), (19, 27)]
        assert all(isinstance(e, RuneSyntaxError) for e in errors)
        assert "missing '.' at the end of the previous rule" in errors[2].message

    def test_recovery_does_not_restart_inside_an_unindented_body(self):
        # the error is on line 1; lines 2-3 continue the same rule (previous
        # line ends with ',') so they must not produce extra errors
        text = "p(X) :- q(X), X === 1,\nr(X),\ns(X).\nt(1)."
        rules, errors = parse_rules(text, "t.rune")
        assert len(errors) == 1
        assert [r.head.name for r in rules] == ["t"]

    def test_errors_are_sorted_by_position_and_lexer_errors_not_duplicated(self):
        text = 'a("x\\q").\nb($).\nc(1 :- d.\n'
        rules, errors = parse_rules(text, "t.rune")
        assert [(e.line, e.column) for e in errors] == [(1, 5), (2, 3), (3, 5)]
        # the bad escape still gave a usable string: rule a is kept
        assert [r.head.name for r in rules] == ["a"]

    def test_error_at_end_of_input(self):
        rules, errors = parse_rules("p(1).\nq(X) :- r(X", "t.rune")
        assert [r.head.name for r in rules] == ["p"]
        assert [(e.line, e.column) for e in errors] == [(2, 12)]


# --------------------------------------------------------------------------
# nesting limit


class TestNesting:
    def test_default_limit(self):
        depth = DEFAULT_LIMITS.max_nesting
        ok(f"p :- X = {'(' * depth}1{')' * depth}.")
        errors = errs(f"p :- X = {'(' * (depth + 1)}1{')' * (depth + 1)}.")
        assert len(errors) == 1
        assert isinstance(errors[0], RuneLimitError)
        assert errors[0].limit == "max_nesting"
        assert (errors[0].line, errors[0].column) == (1, 10 + depth)

    def test_custom_limit_and_aggregates(self):
        nested = "N = count : { " * 3 + "q(_)" + " }" * 3
        rules, errors = parse_rules(f"p :- {nested}.", "t.rune", 1, max_nesting=3)
        assert errors == [] and len(rules) == 1
        rules, errors = parse_rules(f"p :- {nested}.", "t.rune", 1, max_nesting=2)
        assert [type(e) for e in errors] == [RuneLimitError]

    def test_huge_nesting_is_a_limit_error_not_a_recursion_error(self):
        n = 50_000
        rules, errors = parse_rules(f"p :- X = {'(' * n}1{')' * n}.\nq(1).", "t.rune")
        assert [type(e) for e in errors] == [RuneLimitError]
        assert [r.head.name for r in rules] == ["q"]

    def test_limit_above_python_stack_still_fails_cleanly(self):
        n = 5_000
        rules, errors = parse_rules(f"p :- X = {'(' * n}1{')' * n}.", "t.rune", 1, max_nesting=10**6)
        assert [type(e) for e in errors] == [RuneLimitError]


# --------------------------------------------------------------------------
# parse_atom


class TestParseAtom:
    def test_queries(self):
        assert parse_atom("path(1, X)") == A("path", C(1), V("X"))
        assert parse_atom('can_read(User::"alice", D)') == A("can_read", C(Entity("User", "alice")), V("D"))
        assert parse_atom("  agent.name(_) . ") == A("agent.name", Wildcard())
        assert parse_atom("flag") == A("flag")
        assert parse_atom("p(-9223372036854775808)").args == (C(INT_MIN),)
        assert parse_atom("p(x)").loc == Loc("<query>", 1, 1)

    @pytest.mark.parametrize(
        "text,col,fragment",
        [
            ("path(1, X", 10, "expected ',' or ')'"),
            ("path(1) extra", 9, "expected the end of the query"),
            ("X(1)", 1, "found variable 'X'"),
            ('p("abc)', 3, "unterminated string"),
            ("p(1) :- q(1)", 6, "expected the end of the query"),
            ("", 1, "found end of input"),
            ("p(99999999999999999999)", 3, "64-bit"),
        ],
    )
    def test_query_errors_are_raised(self, text, col, fragment):
        with pytest.raises(RuneSyntaxError) as info:
            parse_atom(text, file="q")
        e = info.value
        assert (e.file, e.line, e.column) == ("q", 1, col)
        assert fragment in e.message


# --------------------------------------------------------------------------
# never crash


VALID_SAMPLES = [
    "user_can(U, P) :- has_role(U, R), role_permission(R, P).\n",
    "allowed(U) :- user(U), not blocked(U, _), U != \"x\".\n",
    "total(U, T) :- user(U), T = sum C : { api_call(U, _, C), C > 0 }.\n",
    "tmp(P) :- path(P), P.starts_with(\"/tmp/\"), P.like(\"*\\\\*\").\n",
    'e(X) :- agent.name(X), X = App::Doc::"d1", Y = (X + 1) * -2 % 3.\n',
    "n(N) :- N = count : { q(_) }.\np(1). q(2.5, true, alice).\n# comment\n",
]

_GRAMMAR_CHARS = st.sampled_from(
    list("pqXY_(),.:-=!<>+-*/%{}\"\\ \n#1a@;&|'") + ["not ", "count", ":-", "::", "User", "sum", "\u00e9", "\t"]
)


def _check_never_crash(text: str, first_line: int = 1) -> None:
    rules, errors = parse_rules(text, "fuzz.rune", first_line)
    assert isinstance(rules, tuple)
    assert all(isinstance(r, Rule) for r in rules)
    for e in errors:
        assert isinstance(e, RuneError)
        assert "internal parser error" not in e.message, e.render()
        assert e.line >= first_line and e.column >= 1
        assert e.source_line is not None
        e.render()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    _check_never_crash(text)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_GRAMMAR_CHARS, max_size=80).map("".join), st.integers(1, 1000))
def test_grammar_soup_never_crashes(text, first_line):
    _check_never_crash(text, first_line)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID_SAMPLES),
    st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 10_000), _GRAMMAR_CHARS), min_size=1, max_size=6),
)
def test_mutated_valid_text_never_crashes(sample, mutations):
    text = sample
    for op, pos, chunk in mutations:
        pos = pos % (len(text) + 1)
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1 :]
        else:
            text = text[:pos] + chunk + text[pos + 1 :]
    _check_never_crash(text)
    with _maybe_raises():
        parse_atom(text)


class _maybe_raises:
    """Context manager: ``parse_atom`` may succeed or raise a RuneError, nothing else."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is None or issubclass(exc_type, RuneError)


def test_valid_samples_parse():
    for s in VALID_SAMPLES:
        ok(s)
