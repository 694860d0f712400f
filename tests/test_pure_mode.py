"""RUNE_FAST_PURE=1 forces the plain-Python core: run the core tests that way too.

The main test run already exercises both cores side by side (the ``make``
fixture of test_datalog.py); this checks the environment switch itself, in a
fresh interpreter, as a user would set it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_core_tests_pass_with_the_pure_core_forced():
    env = dict(os.environ, RUNE_FAST_PURE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "test_datalog.py")],
        env=env, capture_output=True, text=True, timeout=600, cwd=str(TESTS),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


def test_pure_switch_selects_the_twin():
    code = "import rune_fast.datalog as d, rune_fast.datalog.compiler as c; print(d.COMPILED, c.core.__name__)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, RUNE_FAST_PURE="1"),
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert out == ["False", "rune_fast.datalog._pycore"]


def test_embedded_example_tests_pass_on_the_pure_core():
    examples = TESTS.parent / "examples"
    proc = subprocess.run([sys.executable, "-m", "rune_fast", "test", str(examples)],
                          env=dict(os.environ, RUNE_FAST_PURE="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 failed" in proc.stdout
