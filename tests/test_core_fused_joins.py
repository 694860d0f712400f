"""The fused joins (``Executor.fused_joins``) give the models of the general executor.

A plan whose first atom is scanned and whose later atoms are scans, probes
through one index column, whole-row membership tests or negations, keyed by
values of earlier rows or constants, runs as one loop that copies head
values straight from the joined rows. The rules below put it through every
way the head can be composed (values from any row, in any order, columns
repeated), relations of several widths, key columns other than the first,
cross products, constant keys, membership and negation levels, left- and
right-linear recursion (the head relation is then
the scanned or the probed one, and flushing head rows moves its arrays),
non-linear recursion (both atoms read the head relation, one the last round's
rows and one the rows before them), and
comparisons of plain values (integers inline, other kinds through Python),
and near misses that must keep the general path (a constant in the head, a
variable repeated in one atom, a comparison of computed values). Compiled core, pure twin and
the reference evaluator must agree.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.datalog import Program, _core, _pycore

import reference_datalog

RULES = """\
left(X, Y) :- e(X, Y).
left(X, Z) :- left(X, Y), e(Y, Z).
right(X, Y) :- e(X, Y).
right(X, Z) :- e(X, Y), right(Y, Z).
sq(X, Y) :- e(X, Y).
sq(X, Z) :- sq(X, Y), sq(Y, Z).
swap(Z, X) :- e(X, Y), e(Y, Z).
only_b(Z, Y) :- t(X, Y, W), e(W, Z).
wide(X, Y, Z, X) :- e(X, Y), t(Y, Z, _).
keyed3(A, C, D) :- t(A, B, C), t(B, D, _).
member(X, Z) :- e(X, Y), e(Y, Z), u(Z).
unreached(S, X) :- u(S), e(X, _), not left(S, X).
no_out(X) :- u(X), not e(X, _).
const_probe(X, Y) :- u(X), u(Y).
const_probe(D, A) :- const_probe(A, _), e(A, 1), e(D, 4).
const_key(X, Y) :- e(X, Y).
const_key(X, Z) :- const_key(X, Y), e(Y, Z), e(Z, 2).
three(X, W) :- e(X, Y), e(Y, Z), t(Z, W, _).
gen(X, Y) :- e(A, X), left(A, B), e(B, Y).
const_scan(X, Y) :- e(X, Y).
const_scan(X, Y) :- const_scan(X, _), e(3, Y).
const_head(X, 1) :- e(X, Y), e(Y, _).
repeated(X, Z) :- e(X, X), e(X, Z).
compared(X, Z) :- e(X, Y), e(Y, Z), X != Z.
bounded(X, Y) :- e(X, Y), Y >= 2, X < 4.
ordered(X, Y) :- v(X), v(Y), X < Y.
computed(X, Z) :- e(X, Y), e(Y, Z), X + 1 < Z.
"""

LINEAR = "".join(line + "\n" for line in RULES.splitlines() if line.startswith(("left", "right")))

FUSED = {"left", "right", "sq", "swap", "only_b", "wide", "keyed3", "three", "gen", "member", "unreached", "no_out",
         "const_probe", "const_key", "const_scan", "compared", "bounded", "ordered"}
#: a scan then one probe (``fused_scan_probe``) or two (``fused_scan_probe_probe``):
#: the kernel's own loops for these shapes; the second probe's key comes from
#: the row just above (three) or from the scanned row (gen, as in ``sg``)
SCAN_PROBE = {"swap": 2, "only_b": 2, "wide": 2, "keyed3": 2, "three": 3, "gen": 3}
NOT_FUSED = {"const_head", "repeated", "computed"}
#: values of several kinds: comparisons the core cannot decide on inline integers go to Python
VALUES = st.one_of(st.integers(-2, 3), st.sampled_from([0.5, 2.0, "a", "b", True]))

NODES = st.integers(0, 5)


def kinded(rows) -> frozenset:
    """Rows in the reference's form: 1, 1.0 and True must not be confused."""
    return frozenset(tuple(reference_datalog.key(x) for x in row) for row in rows)


def plans_by_head(program: Program) -> dict[str, list]:
    compiled = program.compiled
    out: dict[str, list] = {}
    for stratum in compiled.strata:
        for rp in stratum.rules:
            plans = [rp.full, *rp.deltas.values()]
            out.setdefault(rp.rule.head.name, []).extend(plans)
    return out


def test_the_kernel_takes_exactly_the_fused_shapes():
    by_head = plans_by_head(Program(RULES))
    for name in FUSED:
        assert any(plan.fused for plan in by_head[name]), name
    for name in NOT_FUSED:
        assert not any(plan.fused for plan in by_head[name]), name
    for name, levels in SCAN_PROBE.items():
        assert all(plan.scan_probe == levels for plan in by_head[name]), name
    for name in ("left", "right", "sq", "const_scan"):   # the recursive rule's plans; not the exit rule
        assert any(plan.scan_probe for plan in by_head[name]), name
    for name in ("member", "unreached", "const_probe", "compared"):
        assert not any(plan.scan_probe for plan in by_head[name]), name


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(NODES, NODES), max_size=14), st.lists(st.tuples(NODES, NODES, NODES), max_size=10),
       st.lists(st.tuples(NODES), max_size=4), st.lists(st.tuples(VALUES), max_size=5))
def test_fused_plans_agree_with_the_pure_core_and_the_reference(e, t, u, v):
    facts = {"e": e, "t": t, "u": u, "v": v}
    program = Program(RULES)
    compiled = program.evaluate(facts)
    pure = Program(RULES, _core_module=_pycore).evaluate(facts)
    ref = reference_datalog.evaluate(program.rules, program.info.strata, facts)
    for name in FUSED | NOT_FUSED:
        want = ref.get(name, frozenset())
        assert kinded(compiled.rows(name)) == want, name
        assert kinded(pure.rows(name)) == want, name


def test_long_recursions_flush_into_the_relation_they_read():
    """Tens of thousands of head rows, emitted in batches into the very
    relation the kernel scans (left) or probes (right): its rows move
    many times while the loop runs."""
    n = 260
    chain = [(i, i + 1) for i in range(n)]
    closure = {(i, j) for i in range(n + 1) for j in range(i + 1, n + 1)}
    for core in (_core, _pycore):
        model = Program(LINEAR, _core_module=core).evaluate({"e": chain})
        assert sorted(model.rows("left")) == sorted(closure)
        assert sorted(model.rows("right")) == sorted(closure)


@pytest.mark.parametrize("rules", [
    "fan(X, Z) :- seed(X, Z).\nfan(X, Z) :- fan(X, Y), many(Y, Z).\n",
    "fan(X, Z) :- seed(X, Z).\nfan(X, Z) :- fan(X, Y), one(Y, W), many(W, Z).\n",
], ids=["scan-probe", "scan-probe-probe"])
def test_a_scanned_row_is_found_again_after_its_own_head_rows_move_it(rules):
    """One scanned row with hundreds of matches, whose head rows go into the
    relation being scanned: a flush in the middle of its matches grows that
    relation (its rows move, the old array is freed), and the rest of the
    matches must read the row where it now lies."""
    assert any(plan.scan_probe for plan in plans_by_head(Program(rules))["fan"])
    for n in (65, 100, 130, 200, 300, 520, 1100):
        facts = {"seed": [(7, 0)], "many": [(0, z) for z in range(1, n + 1)]}
        if "one" in rules:
            facts["one"] = [(0, 0)]
        for core in (_core, _pycore):
            model = Program(rules, _core_module=core).evaluate(facts)
            assert sorted(model.rows("fan")) == [(7, z) for z in range(n + 1)], (n, core)


def test_a_probed_row_is_found_again_after_its_own_head_rows_move_it():
    """As above, with the moving relation the first probe's: ``h(2, 3)``,
    the first row of ``h``, gives the head's first value to every row
    that ``many`` gives, while those rows go into ``h``."""
    rules = "h(X, Y) :- seed(X, Y).\nh(W, Z) :- h(X, Y), h(Y, W), many(W, Z).\n"
    assert any(plan.scan_probe == 3 for plan in plans_by_head(Program(rules))["h"])
    for n in (65, 100, 130, 200, 300, 520, 1100):
        facts = {"seed": [(2, 3), (1, 2)], "many": [(3, z) for z in range(100, 100 + n)]}
        want = {(2, 3), (1, 2)} | {(3, z) for z in range(100, 100 + n)}
        for core in (_core, _pycore):
            model = Program(rules, _core_module=core).evaluate(facts)
            assert set(model.rows("h")) == want, (n, core)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("abcde")), max_size=12),
       st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("abcde"), st.sampled_from("xy")), max_size=8))
def test_fixed_shapes_agree_on_string_values(e, t):
    """The same shapes over strings, whose ids start at 0 (the integers
    above never give id 0): a probe's memo must not take the first key
    for one it has already seen."""
    facts = {"e": e, "t": t, "u": [], "v": []}
    program = Program(RULES)
    compiled = program.evaluate(facts)
    ref = reference_datalog.evaluate(program.rules, program.info.strata, facts)
    for name in SCAN_PROBE:
        assert kinded(compiled.rows(name)) == ref.get(name, frozenset()), name
