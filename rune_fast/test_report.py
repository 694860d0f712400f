"""The result of one embedded ``[tests.NAME]`` test, as ``Engine.run_tests`` returns it.

A plain record with no dependency on the engine's internals: ``rune test``
prints ``render()`` (or the fields, with ``--json``). Kept out of
``engine.py``, which only constructs it; ``rune_fast.engine.TestResult``
remains the public name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TestResult",
]


@dataclass(frozen=True, slots=True)
class TestResult:
    """One embedded ``[tests.NAME]`` run: what was expected and what happened."""

    name: str
    passed: bool
    expected: str
    actual: str
    reasons: tuple[str, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()
    file: str = ""
    line: int = 0
    column: int = 0

    __test__ = False  # not a pytest test class

    def render(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else (f"{self.file}: " if self.file else "")
        status = "ok" if self.passed else "FAILED"
        text = f"{where}[tests.{self.name}] {status}: expected {self.expected}, got {self.actual}"
        if self.reasons:
            text += f" (reasons: {', '.join(self.reasons)})"
        for pid, msg in self.errors:
            text += f"\n    error in {pid}: {msg}"
        return text
