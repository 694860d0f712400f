"""Tests of the Cedar-subset parser (``rune_fast.lang.policy_parser``).

The parser's contract: the right AST for every construct of docs/language.md §5 with
Cedar's operator precedence, exact file positions, recovery after errors (all
of them reported), a nesting limit instead of a RecursionError, and never
anything but ``RuneError`` whatever the input.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_fast.lang.ast import (
    LIKE_WILDCARD,
    Binary,
    Condition,
    GetAttr,
    Has,
    IfThenElse,
    Is,
    Like,
    Lit,
    Loc,
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
from rune_fast.errors import RuneError, RuneLimitError, RuneSyntaxError
from rune_fast.limits import DEFAULT_LIMITS
from rune_fast.lang.policy_parser import parse_policies
from rune_fast.values import INT_MAX, INT_MIN, Entity

W = LIKE_WILDCARD
ANY = ScopeConstraint("any")
SCOPE = "permit(principal, action, resource)"


def ok(text: str, first_line: int = 1, **kw) -> tuple[Policy, ...]:
    policies, errors = parse_policies(text, "t.rune", first_line, **kw)
    assert errors == [], [e.render() for e in errors]
    return policies


def one(text: str) -> Policy:
    policies = ok(text)
    assert len(policies) == 1
    return policies[0]


def cond(expr_text: str):
    """The expression of ``permit(...) when { <expr_text> };``."""
    return one(f"{SCOPE} when {{ {expr_text} }};").conditions[0].expr


def errs(text: str, first_line: int = 1, **kw) -> list[RuneError]:
    policies, errors = parse_policies(text, "t.rune", first_line, **kw)
    assert errors, f"expected errors for {text!r}, parsed {policies}"
    return errors


def L(v):
    return Lit(v)


def E(t, i):
    return Entity(t, i)


P, ACT, R, CTX = VarRef("principal"), VarRef("action"), VarRef("resource"), VarRef("context")


def B(op, a, b):
    return Binary(op, a, b)


# --------------------------------------------------------------------------
# policies, annotations, scope


class TestPolicyStructure:
    def test_minimal(self):
        p = one("permit(principal, action, resource);")
        assert p == Policy("permit", "", ANY, ANY, ANY, ())

    def test_forbid_and_whitespace(self):
        p = one("forbid ( principal ,action,resource ) ;")
        assert p.effect == "forbid"

    def test_annotations_and_id(self):
        p = one('@id("p1")\n@advice("call \\"x\\"")\n@flag\npermit(principal, action, resource);')
        assert p.id == "p1"
        assert p.annotations == (("id", "p1"), ("advice", 'call "x"'), ("flag", ""))

    def test_id_defaults_to_empty(self):
        assert one('@advice("x") permit(principal, action, resource);').id == ""

    def test_principal_and_resource_constraints(self):
        for var in ("principal", "resource"):
            def scope(c):
                text = f"permit(principal{c if var == 'principal' else ''}, action, resource{c if var == 'resource' else ''});"
                p = one(text)
                return p.principal if var == "principal" else p.resource

            assert scope(' == User::"alice"') == ScopeConstraint("eq", entity=E("User", "alice"))
            assert scope(' in Group::"g"') == ScopeConstraint("in", entity=E("Group", "g"))
            assert scope(" is User") == ScopeConstraint("is", type="User")
            assert scope(" is App::User") == ScopeConstraint("is", type="App::User")
            assert scope(' is App::User in App::Group::"g"') == ScopeConstraint(
                "is", type="App::User", entity=E("App::Group", "g")
            )

    def test_action_constraints(self):
        def act(c):
            return one(f"permit(principal, action{c}, resource);").action

        assert act(' == Action::"read"') == ScopeConstraint("eq", entity=E("Action", "read"))
        assert act(' in Action::"readers"') == ScopeConstraint("in", entity=E("Action", "readers"))
        assert act(' in [Action::"read", App::Action::"write"]') == ScopeConstraint(
            "in_set", entities=(E("Action", "read"), E("App::Action", "write"))
        )
        assert act(' in [Action::"read",]') == ScopeConstraint("in_set", entities=(E("Action", "read"),))
        assert act(" in []") == ScopeConstraint("in_set", entities=())

    def test_conditions_in_order(self):
        p = one(f"{SCOPE} when {{ true }} unless {{ false }} when {{ 1 == 1 }};")
        assert p.conditions == (
            Condition("when", L(True)),
            Condition("unless", L(False)),
            Condition("when", B("==", L(1), L(1))),
        )

    def test_spec_example(self):
        p = one(
            'permit(principal, action == Action::"read", resource is Document)\n'
            "  when { can_read(principal, resource) };"
        )
        assert p.action == ScopeConstraint("eq", entity=E("Action", "read"))
        assert p.resource == ScopeConstraint("is", type="Document")
        assert p.conditions == (Condition("when", RelCall("can_read", (P, R))),)

    def test_comments(self):
        ps = ok(
            "// line comment\n# hash comment\npermit(principal, // after\n action, resource) # x\n;\n"
            'forbid(principal, action, resource) when { "//not a comment" == "#nor this" };'
        )
        assert len(ps) == 2
        assert ps[1].conditions[0].expr == B("==", L("//not a comment"), L("#nor this"))

    def test_empty_section(self):
        assert parse_policies("", "t.rune") == ((), [])
        assert parse_policies("// nothing\n\n", "t.rune") == ((), [])


# --------------------------------------------------------------------------
# expressions


class TestExpressions:
    def test_literals(self):
        assert cond("true") == L(True)
        assert cond("42") == L(42)
        assert cond('"a\\tb"') == L("a\tb")
        assert cond('User::"alice"') == L(E("User", "alice"))
        assert cond('App::Ns::Doc::"d"') == L(E("App::Ns::Doc", "d"))
        assert cond(str(INT_MAX)) == L(INT_MAX)

    def test_negative_literals_are_folded(self):
        assert cond("-9223372036854775808") == L(INT_MIN)
        assert cond("-5") == L(-5)
        assert cond("- 5") == L(-5)
        assert cond("--5") == Unary("-", L(-5))
        assert cond("-(5)") == Unary("-", L(5))
        assert cond("-context.n") == Unary("-", GetAttr(CTX, "n"))

    def test_variables(self):
        assert cond("principal == resource") == B("==", P, R)
        assert cond("action") == ACT
        assert cond("context") == CTX

    def test_precedence_or_and(self):
        a, b, c = L(1), L(2), L(3)
        assert cond("1 || 2 && 3") == B("||", a, B("&&", b, c))
        assert cond("1 && 2 || 3") == B("||", B("&&", a, b), c)
        assert cond("1 || 2 || 3") == B("||", B("||", a, b), c)
        assert cond("(1 || 2) && 3") == B("&&", B("||", a, b), c)

    def test_precedence_relations_bind_tighter_than_and(self):
        assert cond("1 == 2 && 3 != 4") == B("&&", B("==", L(1), L(2)), B("!=", L(3), L(4)))
        assert cond("principal in resource || false") == B("||", B("in", P, R), L(False))

    @pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "in"])
    def test_relational_ops(self, op):
        assert cond(f"1 + 2 {op} 3 * 4") == B(op, B("+", L(1), L(2)), B("*", L(3), L(4)))

    def test_arithmetic(self):
        assert cond("1 + 2 * 3") == B("+", L(1), B("*", L(2), L(3)))
        assert cond("1 - 2 - 3") == B("-", B("-", L(1), L(2)), L(3))
        assert cond("1 * 2 * 3") == B("*", B("*", L(1), L(2)), L(3))
        assert cond("(1 + 2) * 3") == B("*", B("+", L(1), L(2)), L(3))
        assert cond("1-2") == B("-", L(1), L(2))
        assert cond("1 - -2") == B("-", L(1), L(-2))

    def test_unary_binds_tighter_than_everything_but_member_access(self):
        assert cond("!true == false") == B("==", Unary("!", L(True)), L(False))
        assert cond("!context.a") == Unary("!", GetAttr(CTX, "a"))
        assert cond("!!context.a && true") == B("&&", Unary("!", Unary("!", GetAttr(CTX, "a"))), L(True))
        assert cond("-context.n * 2") == B("*", Unary("-", GetAttr(CTX, "n")), L(2))

    def test_has(self):
        assert cond("resource has owner") == Has(R, "owner")
        assert cond('resource has "two words"') == Has(R, "two words")
        assert cond("resource has owner && resource.owner == principal") == B(
            "&&", Has(R, "owner"), B("==", GetAttr(R, "owner"), P)
        )

    def test_like(self):
        assert cond('context.p like "a*b"') == Like(GetAttr(CTX, "p"), ("a", W, "b"))
        assert cond('context.p like "*"') == Like(GetAttr(CTX, "p"), (W,))
        assert cond('context.p like "**x**"') == Like(GetAttr(CTX, "p"), (W, "x", W))
        assert cond('context.p like "a\\*b"') == Like(GetAttr(CTX, "p"), ("a*b",))
        assert cond('context.p like "a\\\\*"') == Like(GetAttr(CTX, "p"), ("a\\", W))
        assert cond('context.p like ""') == Like(GetAttr(CTX, "p"), ())
        assert cond('context.p like "\\u002a*"') == Like(GetAttr(CTX, "p"), (W,))  # \u002a is a plain '*'

    def test_is(self):
        assert cond("principal is User") == Is(P, "User")
        assert cond("principal is App::User") == Is(P, "App::User")
        assert cond('principal is User in Group::"g"') == Is(P, "User", L(E("Group", "g")))
        assert cond("principal is User in resource.owners && true") == B(
            "&&", Is(P, "User", GetAttr(R, "owners")), L(True)
        )

    def test_if_then_else(self):
        assert cond("if true then 1 else 2") == IfThenElse(L(True), L(1), L(2))
        assert cond("if true then 1 else 2 || false") == IfThenElse(L(True), L(1), B("||", L(2), L(False)))
        assert cond("1 + if true then 1 else 2") == B("+", L(1), IfThenElse(L(True), L(1), L(2)))
        assert cond("if if true then true else false then 1 else 2") == IfThenElse(
            IfThenElse(L(True), L(True), L(False)), L(1), L(2)
        )

    def test_member_access_chains(self):
        assert cond('principal.a.b["c d"].e') == GetAttr(GetAttr(GetAttr(GetAttr(P, "a"), "b"), "c d"), "e")
        assert cond("context.then") == GetAttr(CTX, "then")

    def test_methods(self):
        assert cond("context.s.contains(1)") == Method(GetAttr(CTX, "s"), "contains", (L(1),))
        assert cond("context.s.containsAll([1, 2])") == Method(GetAttr(CTX, "s"), "containsAll", (SetLit((L(1), L(2))),))
        assert cond("context.s.containsAny(context.t)") == Method(GetAttr(CTX, "s"), "containsAny", (GetAttr(CTX, "t"),))
        assert cond("context.s.isEmpty()") == Method(GetAttr(CTX, "s"), "isEmpty", ())
        assert cond("!context.s.isEmpty()") == Unary("!", Method(GetAttr(CTX, "s"), "isEmpty", ()))
        assert cond("[1].contains(1)") == Method(SetLit((L(1),)), "contains", (L(1),))

    def test_sets_and_records(self):
        assert cond("[]") == SetLit(())
        assert cond("[1, [2], principal,]") == SetLit((L(1), SetLit((L(2),)), P))
        assert cond("{}") == RecordLit(())
        assert cond('{a: 1, "b c": [true], d: {e: -1},}') == RecordLit(
            (("a", L(1)), ("b c", SetLit((L(True),))), ("d", RecordLit((("e", L(-1)),))))
        )
        assert cond("{a:-1}") == RecordLit((("a", L(-1)),))

    def test_relation_calls(self):
        assert cond("user_can(principal, resource)") == RelCall("user_can", (P, R))
        assert cond("flag()") == RelCall("flag", ())
        assert cond('member(_, Group::"g")') == RelCall("member", (Wildcard(), L(E("Group", "g"))))
        assert cond("agent.name(_)") == RelCall("agent.name", (Wildcard(),))
        assert cond("a.b.c(1 + 2, principal.x)") == RelCall("a.b.c", (B("+", L(1), L(2)), GetAttr(P, "x")))
        assert cond('context("mfa", true)') == RelCall("context", (L("mfa"), L(True)))
        assert cond("_private(1) && !blocked(principal)") == B(
            "&&", RelCall("_private", (L(1),)), Unary("!", RelCall("blocked", (P,)))
        )


# --------------------------------------------------------------------------
# locations


class TestLocations:
    def test_policy_and_node_locations(self):
        text = '// c\n@id("a")\npermit(principal == User::"u", action, resource)\n  when { context.x + 1 > 2 };'
        (p,) = ok(text, first_line=30)
        assert p.loc == Loc("t.rune", 31, 1)
        assert p.loc.text == '@id("a")'
        assert p.principal.loc == Loc("t.rune", 32, 8)
        assert p.action.loc == Loc("t.rune", 32, 32)
        (c,) = p.conditions
        assert c.loc == Loc("t.rune", 33, 3)
        gt = c.expr
        assert gt.loc == Loc("t.rune", 33, 24)  # operator
        plus = gt.left
        assert plus.loc == Loc("t.rune", 33, 20)
        assert plus.left.loc == Loc("t.rune", 33, 18)  # GetAttr at the attribute name
        assert plus.left.obj.loc == Loc("t.rune", 33, 10)
        assert gt.right.loc == Loc("t.rune", 33, 26)
        assert gt.loc.text == "  when { context.x + 1 > 2 };"

    def test_call_and_entity_locations(self):
        (p,) = ok('permit(principal, action, resource) when { f(_, App::T::"x") };')
        call = p.conditions[0].expr
        assert call.loc.col == 44
        assert call.args[0].loc.col == 46
        assert call.args[1].loc.col == 49


# --------------------------------------------------------------------------
# errors


def _pos(src: str, at) -> tuple[int, int]:
    if isinstance(at, tuple):
        return at
    idx = src.index(at)
    line = src.count("\n", 0, idx) + 1
    col = idx - (src.rfind("\n", 0, idx) + 1) + 1
    return line, col


S = SCOPE
MALFORMED = [
    (S, (1, 36), "expected 'when', 'unless' or ';' after the policy scope, found end of input"),
    ("permit(principal action, resource);", "action", "expected ',' after the principal constraint, found 'action'"),
    (f"{S} when {{ 1 == }};", "}", "expected an expression, found '}'"),
    (f"{S} when {{ x }};", "x", "unknown identifier 'x'"),
    (f"{S} when {{ 1.5 > 2 }};", "1.5", "floats are not supported in policies"),
    (f"{S} when {{ 9223372036854775808 > 2 }};", "9", "out of the 64-bit range"),
    (f"{S} when {{ -9223372036854775809 > 2 }};", "-", "out of the 64-bit range"),
    (f"{S} when {{ 1 < 2 < 3 }};", "< 3", "comparisons do not chain"),
    (f"{S} when {{ 1 == 2 in 3 }};", "in 3", "comparisons do not chain"),
    (f"{S} when {{ 4 / 2 == 2 }};", "/", "'/' is not an operator in policies"),
    (f"{S} when {{ context.x.foo() }};", "foo", "unknown method 'foo'"),
    (f"{S} when {{ context.x.contains() }};", "contains", "method 'contains' takes 1 argument, got 0"),
    (f"{S} when {{ context.x.isEmpty(1) }};", "isEmpty", "method 'isEmpty' takes 0 arguments, got 1"),
    (f"{S} when {{ context[1] }};", "1", "expected a string attribute name inside '[...]', found number 1"),
    (f"{S} when {{ context has 1 }};", "1", "expected an attribute name (identifier or string) after 'has'"),
    (f"{S} when {{ context.p like 1 }};", "1", "expected a string pattern after 'like'"),
    (f"{S} when {{ if true then 1 }};", "}", "expected 'else' after the 'then' branch, found '}'"),
    (f"{S} when {{ if true 1 else 2 }};", "1", "expected 'then' after the condition of 'if', found number 1"),
    (f"{S} when {{ {{a: 1, a: 2}} }};", "a: 2", "duplicate key 'a' in record literal"),
    (f"{S} when {{ [1, 2 }};", "}", "expected ',' or ']' in the set literal, found '}'"),
    (f"{S} when {{ {{a 1}} }};", "1", "expected ':' after the record key 'a', found number 1"),
    (f"{S} when {{ }};", "}", "empty 'when' condition"),
    ("permit(principal == User, action, resource);", "User", "expected an entity literal Type::\"id\" after 'principal ==', found 'User'"),
    ('permit(principal == User::u, action, resource);', "u,", "expected a quoted entity id after 'User::', found 'u'"),
    ("permit(principal == 1, action, resource);", "1", "expected an entity literal Type::\"id\" after 'principal =='"),
    ('permit(principal in [User::"a"], action, resource);', "[", "'in [...]' is only allowed for action"),
    ("permit(principal, action is Action, resource);", "is", "'is' is not allowed in the action constraint"),
    ('permit(principal is User::"a", action, resource);', '"a"', "found the entity literal User::\"a\""),
    ("allow(principal, action, resource);", "allow", "expected 'permit', 'forbid' or an annotation"),
    ('@("x") permit(principal, action, resource);', "(", "expected an annotation name after '@', found '('"),
    ('@id("a") @id("b") permit(principal, action, resource);', 'id("b")', "duplicate annotation '@id'"),
    ('@id(x) permit(principal, action, resource);', "x", "expected a string value in '@id(...)'"),
    ('@id("x" permit(principal, action, resource);', "permit", "expected ')' after the value of '@id'"),
    (f'{S} when {{ "a\\*" == "b" }};', '"a', "only valid in a like pattern"),
    (f"{S} when {{ context.x = 1 }};", "=", "compare with '=='"),
    ("permit(principal = User::\"a\", action, resource);", "=", "expected '==' to compare principal"),
    (f"{S} when {{ _ }};", "_", "'_' is only allowed as an argument of a relation call"),
    (f"{S} when {{ f(_ + 1) }};", "_", "'_' is only allowed as an argument of a relation call"),
    ("permit(resource, action, principal);", "resource", "expected 'principal' as the first element of the scope"),
    ("permit(principal, resource, action);", "resource", "expected 'action' as the second element of the scope"),
    ("permit(principal, action);", ")", "expected ',' after the action constraint, found ')'"),
    ("permit(principal, action, resource, context);", ", context", "expected ')' after the resource constraint"),
    (f"{S} when {{ Foo }};", "Foo", "an entity literal Foo::\"id\""),
    (f"{S} when {{ Foo(1) }};", "Foo", "relation names start with a lowercase letter"),
    (f"{S} when {{ 'a' }};", "'", "double quotes"),
    (f"{S} whenever {{ true }};", "whenever", "expected 'when', 'unless' or ';' after the policy scope, found 'whenever'"),
    (f"{S} when {{ true }}\npermit(principal, action, resource);", (2, 1), "missing ';' at the end of the previous policy?"),
    (f"{S} when {{ principal.name(1) }};", "name", "unknown method 'name'"),
    ("permit(principal == ?principal, action, resource);", "?", "templates"),
    (f"{S} when {{ true }} when {{ then }};", "then", "found the keyword 'then'"),
    (f"{S} when {{ f(1 2) }};", "2", "expected ',' or ')' after argument 1 of 'f', found number 2"),
    (f"{S} when {{ (1 + 2 }};", "}", "expected ')' to close the '(' at 1:44, found '}'"),
    (f"{S} when {{ context. }};", "}", "expected an attribute or method name after '.', found '}'"),
    (f"{S} when {{ true }} ", (1, 51), "found end of input"),
    (f"{S} when {{ principal is 5 }};", "5", "expected an entity type after 'is', found number 5"),
    (f"{S} when {{ \"abc }};", '"', "unterminated string"),
    (f"{S} when {{ 1 % 2 }};", "%", "'%' is not an operator in policies"),
    # a stray ';' after a complete policy: the error is at the second ';'
    (f"{S} when {{ 1 }} ;;", (1, 49), "expected 'permit', 'forbid' or an annotation"),
]


@pytest.mark.parametrize("src,at,fragment", MALFORMED)
def test_malformed(src, at, fragment):
    errors = errs(src)
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
    e = errs("// x\n" + src, first_line=100)[0]
    line, col = _pos(src, at)
    assert (e.line, e.column) == (100 + line, col)


def test_error_rendering():
    e = errs("permit(principal, action, resource)\n  when { x };", first_line=7)[0]
    assert e.render() == (
        "t.rune:8:10: RuneSyntaxError: unknown identifier 'x': expected principal, action, resource, "
        "context, a literal, or a relation call 'x(...)'\n"
        "      when { x };\n"
        "             ^"
    )


# --------------------------------------------------------------------------
# recovery


class TestRecovery:
    def test_several_errors_reported_and_good_policies_kept(self):
        text = "\n".join(
            [
                '@id("good1") permit(principal, action, resource);',  # 1
                "permit(principal, action, resource) when { 1 == };",  # 2
                '@id("good2")',  # 3
                "forbid(principal, action, resource) unless { false };",  # 4
                "permit(principal, action, resource) when { (1 + [2, {a: 3 };",  # 5 unbalanced
                '@id("good3") permit(principal, action, resource);',  # 6
                "permit(principal action, resource)",  # 7 missing ',' and ';'
                "  when { true };",  # 8
                "permit(principal, action, resource) when { x.y };",  # 9
                '@id("good4") permit(principal, action, resource) when { true }',  # 10 missing ';'
                '@id("good5") permit(principal, action, resource);',  # 11
                "permit(principal, action, resource) when { f(1 2) } unless { 1.5 };",  # 12
            ]
        )
        policies, errors = parse_policies(text, "t.rune", 1)
        assert [p.id for p in policies] == ["good1", "good2", "good3", "good5"]
        assert [(e.line, e.column) for e in errors] == [(2, 49), (5, 60), (7, 18), (9, 44), (11, 1), (12, 48)]
        assert "missing ';'" in errors[4].message

    def test_semicolon_inside_braces_does_not_end_recovery(self):
        text = 'permit(principal, action, resource) when { x == {a: ";"}; };\npermit(principal, action, resource);'
        policies, errors = parse_policies(text, "t.rune")
        assert len(policies) == 1 and len(errors) == 1

    def test_stray_characters_reported_once(self):
        text = 'permit(principal, action, resource) when { $ };\nforbid(principal, action, resource) when { "a\\q" == "b" };'
        policies, errors = parse_policies(text, "t.rune")
        assert [(e.line, e.column) for e in errors] == [(1, 44), (2, 46)]
        # a bad escape leaves a usable string: the second policy is kept
        assert [p.effect for p in policies] == ["forbid"]


# --------------------------------------------------------------------------
# nesting limit


class TestNesting:
    @pytest.mark.parametrize("open_,close", [("(", ")"), ("[", "]"), ("{a: ", "}"), ("f(", ")")])
    def test_default_limit(self, open_, close):
        d = DEFAULT_LIMITS.max_nesting
        ok(f"{S} when {{ {open_ * d}1{close * d} }};")
        errors = errs(f"{S} when {{ {open_ * (d + 1)}1{close * (d + 1)} }};")
        assert [type(e) for e in errors] == [RuneLimitError]
        assert errors[0].limit == "max_nesting"
        assert errors[0].line == 1

    def test_unary_and_if_count_as_nesting(self):
        ok(f"{S} when {{ {'!' * 10}true }};", max_nesting=10)
        assert [type(e) for e in errs(f"{S} when {{ {'!' * 11}true }};", max_nesting=10)] == [RuneLimitError]
        nested_if = "if true then " * 11 + "1" + " else 2" * 11
        ok(f"{S} when {{ {nested_if} }};", max_nesting=11)
        assert [type(e) for e in errs(f"{S} when {{ {nested_if} }};", max_nesting=10)] == [RuneLimitError]

    def test_huge_nesting_then_recovery(self):
        n = 50_000
        text = f"{S} when {{ {'(' * n}1{')' * n} }};\n@id(\"after\") {S};"
        policies, errors = parse_policies(text, "t.rune")
        assert [type(e) for e in errors] == [RuneLimitError]
        assert [p.id for p in policies] == ["after"]

    def test_limit_above_python_stack_still_fails_cleanly(self):
        n = 3_000
        errors = errs(f"{S} when {{ {'(' * n}1{')' * n} }};", max_nesting=10**6)
        assert [type(e) for e in errors] == [RuneLimitError]

    def test_long_flat_chains_are_not_nesting(self):
        alternatives = " || ".join(f'principal == User::"u{i}"' for i in range(500))
        (p,) = ok(f"{S} when {{ {alternatives} }};")
        assert p.conditions[0].expr.op == "||"


# --------------------------------------------------------------------------
# never crash


VALID_SAMPLES = [
    '@id("a") permit(principal == User::"alice", action in [Action::"r", Action::"w"], resource is App::Doc in F::"f")\n'
    "  when { can_read(principal, resource) && context.mfa == true || !(1 + 2 * 3 < -4) };\n",
    'forbid(principal, action, resource) unless { resource has "owner" && resource.owner like "a*\\*" };\n',
    "permit(principal is User, action, resource) when { if context.x.contains(1) then [1, 2] else {a: -1}.a == 1 };\n",
    'permit(principal, action == Action::"x", resource) when { member(_, principal) && principal is User in context.g };\n',
    "// c\n# d\nforbid(principal in G::\"g\", action, resource) when { context[\"k\"].isEmpty() };\n",
]

_GRAMMAR_CHARS = st.sampled_from(
    list("(),.:-=!<>+*/%{}[]\"\\ \n#1a@;&|'_?")
    + ["principal", "when", "if", "then", "else", "permit", "forbid", "User::", "in", "has", "like", "is", "&&", "//", "\u00e9"]
)


def _check_never_crash(text: str, first_line: int = 1) -> None:
    policies, errors = parse_policies(text, "fuzz.rune", first_line)
    assert isinstance(policies, tuple)
    assert all(isinstance(p, Policy) for p in policies)
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
    st.lists(
        st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 10_000), _GRAMMAR_CHARS),
        min_size=1,
        max_size=6,
    ),
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


def test_valid_samples_parse():
    for s in VALID_SAMPLES:
        ok(s)
