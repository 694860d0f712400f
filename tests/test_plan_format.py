"""The plan format is defined once (rune_fast/datalog/plan.py) and checked before it runs.

Both executors take ``PlanSpec`` records of ``Op`` NamedTuples; a missing or
unknown field cannot be built, and ``plan.validate`` rejects anything that
points outside the plan's arrays (the compiled executor runs without bounds
checks). The C struct the compiled core copies ops into has exactly the
record's fields.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rune_fast
from rune_fast.datalog import Program, _core, _pycore, compiler
from rune_fast.datalog import plan as P
from rune_fast.errors import RuneLimitError

CORES = pytest.mark.parametrize("core", [_core, _pycore], ids=["compiled", "pure"])

RULES = ("big(X, N) :- item(X, V), N = V * 2, N > 3, not skip(X), X.starts_with(\"a\"), "
         "C = count : { item(X, W), W > 0 }, C >= 1.")


def _spec_of(plan: _pycore.Plan) -> P.PlanSpec:
    """The spec a pure-core Plan was built from (it keeps every part)."""
    return P.PlanSpec(tuple(plan.ops), tuple(plan.pool), tuple(plan.consts), plan.nregs,
                      tuple(plan.methods), plan.label)


@pytest.fixture
def spec_and_shapes():
    prog = Program(RULES, _core_module=_pycore)
    compiled = prog.compiled
    spec = _spec_of(compiled.strata[-1].full_plans[0])
    shapes = [P.RelShape(r.arity, r.index_cols) for r in compiled.rels]
    return spec, shapes


def test_ops_have_no_defaults():
    with pytest.raises(TypeError):
        P.Op(kind=P.Kind.EMIT, rel=0)  # type: ignore[call-arg]
    fields = dict.fromkeys(P.Op._fields, 0)
    with pytest.raises(TypeError):
        P.Op(**fields, extra=1)  # type: ignore[call-arg]
    assert P.Op(**fields).kind == 0


def test_the_c_struct_has_exactly_the_record_fields():
    pxd = (Path(_core.__file__).parent / "_core.pxd").read_text()
    # fields after the "derived" marker are computed by the compiled Plan, never written by a compiler
    block = pxd.split("cdef struct Op:")[1].split("# -- derived")[0]
    names = re.findall(r"^\s+int\s+(\w+)", block, re.M)
    assert tuple(names) == P.Op._fields


def test_codes_are_not_redefined_in_the_cores():
    here = Path(_core.__file__).parent
    for name in ("_core.pyx", "_core_memory.pxi", "_core_relations.pxi", "_core_executor.pxi", "_core_fused.pxi",
                 "_core_fused_shapes.pxi", "_core_results.pxi", "_core_interning.pxi",
                 "_pycore.py", "compiler.py"):
        text = (here / name).read_text()
        assert not re.search(r"^(DEF )?K_JOIN\s*=\s*1\b", text, re.M), name
        assert "range(1, 9)" not in text, name


@CORES
def test_executors_refuse_anything_but_a_plan_spec(core, spec_and_shapes):
    spec, _ = spec_and_shapes
    core.Plan(spec)
    with pytest.raises(TypeError):
        core.Plan([dict(op._asdict()) for op in spec.ops])
    with pytest.raises(TypeError):
        core.Plan(spec._replace(ops=tuple(dict(op._asdict()) for op in spec.ops)))


def test_the_sample_plan_uses_every_kind(spec_and_shapes):
    spec, shapes = spec_and_shapes
    assert P.validate(spec, shapes) is spec
    kinds = {op.kind for op in spec.ops}
    assert kinds == set(P.Kind), kinds


def _corruptions(spec: P.PlanSpec):
    """One corrupted field at a time, for every op."""
    for pc, op in enumerate(spec.ops):
        for field, bad in (("rel", 999), ("index", 999), ("nkey", op.nkey + 1), ("key_off", 10_000),
                           ("bind_off", 10_000), ("check_off", 10_000), ("lhs_off", 10_000),
                           ("lhs_len", 10_000), ("rhs_off", 10_000), ("reg", 10_000), ("aux", 10_000),
                           ("sub_start", 10_000), ("kind", 42), ("tier", 7), ("cmp", 99)):
            relevant = {
                P.Kind.JOIN: {"rel", "index", "nkey", "key_off", "bind_off", "check_off", "tier", "kind"},
                P.Kind.NOT: {"rel", "index", "nkey", "key_off", "kind"},
                P.Kind.CMP: {"lhs_off", "lhs_len", "rhs_off", "cmp", "kind"},
                P.Kind.ASSIGN: {"lhs_off", "lhs_len", "reg", "kind"},
                P.Kind.METHOD: {"reg", "aux", "kind"},
                P.Kind.AGG: {"reg", "sub_start", "cmp", "kind"},
                P.Kind.EMIT: {"rel", "nkey", "key_off", "kind"},
                P.Kind.COLLECT: {"aux", "kind"},
            }[op.kind]
            if field not in relevant:
                continue
            if (field == "bind_off" and not op.nbind) or (field == "check_off" and not op.ncheck):
                continue
            if (field == "lhs_off" and not op.lhs_len) or (field == "rhs_off" and not op.rhs_len):
                continue
            if field == "aux" and op.kind == P.Kind.COLLECT and op.aux == -1:
                continue
            ops = list(spec.ops)
            ops[pc] = op._replace(**{field: bad})
            yield f"op {pc} {op.kind.name}.{field}", spec._replace(ops=tuple(ops))


def test_validate_rejects_every_out_of_range_field(spec_and_shapes):
    spec, shapes = spec_and_shapes
    cases = list(_corruptions(spec))
    assert len(cases) > 20
    for name, bad in cases:
        with pytest.raises(ValueError):
            P.validate(bad, shapes)
            pytest.fail(name)


def test_validate_rejects_bad_sources_and_endings(spec_and_shapes):
    spec, shapes = spec_and_shapes
    with pytest.raises(ValueError, match="EMIT or COLLECT"):
        P.validate(spec._replace(ops=spec.ops[:-1] + (spec.ops[0],)), shapes)
    with pytest.raises(ValueError, match="source"):
        P.validate(spec._replace(consts=()), shapes)
    with pytest.raises(ValueError, match="register"):
        P.validate(spec._replace(nregs=1), shapes)


@CORES
def test_wide_data_is_a_located_limit_error_on_both_cores(core, monkeypatch):
    monkeypatch.setattr(compiler, "core", core)
    text = 'version = "rune/1"\n[data]\nwide = [[' + ", ".join(str(i) for i in range(70)) + "]]\n"
    with pytest.raises(RuneLimitError) as info:
        rune_fast.load_text(text, path="wide.rune")
    assert (info.value.limit, info.value.file, info.value.line) == ("max_arity", "wide.rune", 3)
    ok = 'version = "rune/1"\n[data]\nwide = [[' + ", ".join(str(i) for i in range(64)) + "]]\n"
    engine = rune_fast.load_text(ok)
    assert len(engine.model.relation("wide")) == 1


@CORES
def test_wide_heads_are_a_located_limit_error_on_both_cores(core):
    head = ", ".join(["X"] * 65)
    with pytest.raises(RuneLimitError) as info:
        Program(f"\nw({head}) :- n(X).", _core_module=core)
    assert (info.value.limit, info.value.line) == ("max_arity", 2)
