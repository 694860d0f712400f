"""Suite-wide settings that keep the tests independent of machine speed.

Hypothesis: no per-example deadline and no "too slow" health check by
default. Both measure wall-clock time, and on a loaded 2-core CI runner an
example that normally takes 20 ms can take 500 ms; such a failure says
nothing about the code. A test that sets its own ``settings`` keeps what it
sets (these are only the defaults for the fields it leaves out). Tests
that guard against a blow-up time themselves with a generous bound and a
clear message.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("rune-tests", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rune-tests")
