"""Suite-wide settings that keep the tests independent of machine speed and
of each other.

Hypothesis: no per-example deadline and no "too slow" health check by
default. Both measure wall-clock time, and on a loaded 2-core CI runner an
example that normally takes 20 ms can take 500 ms; such a failure says
nothing about the code. A test that sets its own ``settings`` keeps what it
sets (these are only the defaults for the fields it leaves out). Tests
that guard against a blow-up time themselves with a generous bound and a
clear message.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("rune-tests", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rune-tests")


@pytest.fixture(autouse=True)
def _restore_recursion_limit():
    """Each test starts at the interpreter's recursion limit, whatever ran before.

    The pure core raises the limit for long rule bodies and never lowers it
    (``_pycore.Executor.run``); what compiles in the policy code generator
    depends on it (a 5000-term arithmetic chain is a ``max_nesting`` error
    at the default limit and compiles after a pure-core run of a
    4000-literal rule). Without this, test_deep_inputs.py passed or failed
    depending on whether test_load_limits.py ran first.
    """
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)
