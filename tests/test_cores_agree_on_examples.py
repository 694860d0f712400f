"""The compiled core and its pure-Python twin derive the same model for every example.

The compiled extension is imported explicitly: if it is missing (not built),
these tests fail instead of comparing the pure core with itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rune_fast.datalog import _core, _pycore
from rune_fast.lang.checks import check_program
from rune_fast.datalog.compiler import CompiledProgram
from rune_fast.datalog import Model, intern_facts
from rune_fast.lang.parser import load_bundle
from rune_fast.datalog.symbols import Symbols

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.rune"))


def model_of(bundle, core_module):
    info = check_program(bundle.facts, bundle.rules, bundle.policies)
    compiled = CompiledProgram(bundle.rules, info, core_module=core_module)
    symbols = Symbols(compiled.symbols)
    facts: dict = {}
    for fs in bundle.facts:
        facts.setdefault(fs.relation, []).extend(fs.rows)
    db = compiled.evaluate(intern_facts(compiled, facts, symbols), symbols)
    return Model(compiled, db)


def kinded(rows):
    return frozenset(tuple((type(v).__name__, v) for v in row) for row in rows)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_compiled_and_pure_models_are_identical(path):
    bundle = load_bundle(path)
    compiled = model_of(bundle, _core)
    pure = model_of(bundle, _pycore)
    assert compiled.compiled.core is _core and pure.compiled.core is _pycore
    names = [r.name for r in compiled.compiled.rels]
    assert names
    derived = 0
    for name in names:
        assert kinded(compiled.rows(name)) == kinded(pure.rows(name)), name
        derived += compiled.size(name)
    assert derived > 0


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


def test_the_compiled_core_is_the_extension():
    assert _core.COMPILED is True and _pycore.COMPILED is False
    assert _core.__file__.endswith((".so", ".pyd")), _core.__file__
