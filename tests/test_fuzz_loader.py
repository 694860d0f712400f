"""Property tests: the full loader survives any text, quickly.

Whatever bytes a user (or an editor mid-save) puts in a ``.rune`` file, the
loader (``parser.bundle_from_text`` + ``checks.check_program``) must either
succeed or raise ``RuneError``: never ``IndexError``, ``RecursionError``,
``KeyError``... (a hot reload would otherwise crash instead of keeping the old
engine), and never hang (each input is timed; 1 s is far above normal).

Two input sources: random text over an alphabet rich in the language's own
characters, and mutations of the real example policies (delete / insert /
duplicate characters, delete / duplicate / swap lines), which explore the
"almost valid" inputs where parsers usually break. A third one builds
relations of every width around the arity limit.

Whatever passes the checks is then built into a whole ``Engine`` on both
cores (the compiled one and its pure twin): the build, too, may only succeed
or raise ``RuneError``, and both cores must agree on which.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_fast import Engine, Limits
from rune_fast.datalog import _core, _pycore, compiler
from rune_fast.errors import RuneError

from rune_fast.lang import parser
from rune_fast.lang.checks import check_program

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
EXAMPLES = sorted(
    Path(EXAMPLES_DIR, name).read_text(encoding="utf-8")
    for name in os.listdir(EXAMPLES_DIR)
    if name.endswith(".rune")
)

# A hang guard, not a performance expectation (asv_benchmarks/ measures speed):
# generous enough for a loaded CI runner, small enough to flag a blow-up.
MAX_SECONDS = 20.0

# Characters that matter to the lexers, the section splitter and TOML.
SPECIAL = list('[](){}<>=!:-.,;_"\'#/\\*@|&+%$?\n\t ') + [
    "::", ":-", "not ", "permit", "forbid", "when", "unless", "version", "rune/1", "[rules]",
    "[policies]", "[data]", "[sources]", "[tests.t]", "count", "sum", "principal", "\u00e9", "\u2028", "\x00",
]


#: Small budgets: a mutated example may derive a lot; the limits must stop it.
BUILD_LIMITS = Limits(max_tuples=200_000, load_deadline_ms=500)


@contextlib.contextmanager
def core_selected(module):
    """Build engines on ``module`` (what RUNE_FAST_PURE selects, switched in-process)."""
    saved = compiler.core
    compiler.core = module
    try:
        yield
    finally:
        compiler.core = saved


def build(bundle) -> "str | None":
    """Build the engine on both cores: None, or the kind of RuneError both raised."""
    outcomes = []
    for module in (_core, _pycore):
        with core_selected(module):
            try:
                Engine(bundle, limits=BUILD_LIMITS)
                outcomes.append(None)
            except RuneError as err:
                err.render()
                outcomes.append(type(err).__name__ + (f" {err.limit}" if hasattr(err, "limit") else ""))
    # A time budget may run out on the slower core only; everything else must agree.
    if "RuneLimitError load_deadline_ms" not in outcomes:
        assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]


def load(text: str) -> None:
    """Load like ``rune check``, then build; return normally or raise RuneError only."""
    start = time.perf_counter()
    try:
        bundle = parser.bundle_from_text(text, "fuzz.rune", base_dir=EXAMPLES_DIR)
        check_program(bundle.facts, bundle.rules, bundle.policies)
    except RuneError as err:
        err.render()  # rendering must not fail either
    else:
        build(bundle)
    elapsed = time.perf_counter() - start
    assert elapsed < MAX_SECONDS, f"loading took {elapsed:.2f}s"


FUZZ = settings(
    max_examples=200,
    deadline=None,  # timed inside the test, per input, with a clearer message
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

tokens = st.one_of(st.sampled_from(SPECIAL), st.text(min_size=1, max_size=8))


@FUZZ
@given(st.lists(tokens, max_size=60).map("".join), st.booleans())
def test_random_text(body, with_header):
    text = ('version = "rune/1"\n' if with_header else "") + body
    load(text)


@st.composite
def mutated_example(draw):
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["del_char", "ins_char", "dup_char", "del_line", "dup_line", "swap_lines", "ins_token"]))
        if kind in ("del_line", "dup_line", "swap_lines"):
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "del_line":
                del lines[i]
            elif kind == "dup_line":
                lines.insert(i, lines[i])
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
            continue
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        if kind == "del_char":
            text = text[:i] + text[i + 1:]
        elif kind == "dup_char":
            text = text[:i] + text[i:i + 1] + text[i:]
        elif kind == "ins_char":
            text = text[:i] + draw(st.characters()) + text[i:]
        else:
            text = text[:i] + draw(st.sampled_from(SPECIAL)) + text[i:]
    return text


@FUZZ
@given(mutated_example())
def test_mutated_examples(text):
    load(text)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_examples_themselves_load(index):
    bundle = parser.bundle_from_text(EXAMPLES[index], "example.rune", base_dir=EXAMPLES_DIR)
    check_program(bundle.facts, bundle.rules, bundle.policies)


def test_hostile_inputs():
    """Hand-picked worst cases: deep nesting, huge lines, many sections."""
    cases = [
        'version = "rune/1"\n[rules]\np(X) :- q(X), X = ' + "(" * 5000 + "1" + ")" * 5000 + ".\n",
        'version = "rune/1"\n[policies]\npermit(principal, action, resource) when { ' + "!" * 5000 + "true };\n",
        'version = "rune/1"\n[policies]\npermit(principal, action, resource) when { ' + "[" * 3000 + "]" * 3000 + " };\n",
        'version = "rune/1"\n[policies]\npermit(principal, action, resource) when { '
        + " && ".join(["true"] * 3000) + " };\n",
        'version = "rune/1"\n' + "[data]\n" * 2000,
        'version = "rune/1"\n[rules]\n' + "p(X) :- " + ", ".join(f"q{i}(X)" for i in range(2000)) + ".\n",
        'version = "rune/1"\n[rules]\n' + "".join(f"r{i}(X) :- r{i + 1}(X).\n" for i in range(3000)),
        'version = "rune/1"\n[data]\nq = [' + "[" * 3000 + "]" * 3000 + "]\n",
        "\x00" * 1000,
        'version = "rune/1"\n' + '"' * 10000,
    ]
    for text in cases:
        load(text)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 80), st.integers(0, 3), st.booleans())
def test_relations_of_every_width_build_on_both_cores(width, rows, with_rule):
    """Facts and rule heads around the arity limit: built, or a located limit error, on both cores."""
    data = ", ".join("[" + ", ".join(str(r * width + c) for c in range(width)) + "]" for r in range(rows))
    text = f'version = "rune/1"\n[data]\nwide = [{data}]\n'
    if with_rule:
        args = ", ".join(f"X{c}" for c in range(width))
        text += f"[rules]\ncopy({args}) :- wide({args}).\n"
    try:
        bundle = parser.bundle_from_text(text, "wide.rune", base_dir=EXAMPLES_DIR)
        check_program(bundle.facts, bundle.rules, bundle.policies)
    except RuneError as err:
        assert width > 64 and err.errors, (width, str(err))
        assert all(getattr(e, "limit", None) == "max_arity" and e.line >= 3 for e in err.errors), str(err)
        return
    assert width <= 64 or (rows == 0 and not with_rule)  # an empty array has no arity
    assert build(bundle) is None
