"""Runs rune_fast on every supported Python (3.10 to 3.13) with nox.

Sessions:

- ``tests`` (3.11): the README's set-up command, then the default test suite.
- ``smoke`` (3.10, 3.13): the README's set-up command, then ``rune check
  examples/`` and ``rune test examples/``; it proves the package installs,
  builds its compiled core and loads real policies on the oldest and newest
  supported Python without paying for the whole suite twice more.
- ``lint``: ``ruff check`` and ``mypy`` with the configuration in pyproject.toml.
- ``docs``: ``mkdocs build --strict``.

``nox`` looks interpreters up on ``PATH`` as ``python3.10``, ``python3.13``
...; ``.ci/run`` puts the pyenv installations there. Reuse virtualenvs
between runs with ``nox -r``.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "smoke"]

# The README's set-up command installs the package with the test extra; the
# smoke session does the same so that it checks what users are told to run.
INSTALL = ("-e", ".[test]")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The full default suite on the reference Python."""
    session.install(*INSTALL)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=["3.10", "3.13"])
def smoke(session: nox.Session) -> None:
    """Install, check and test the bundled examples with the compiled core."""
    session.install(*INSTALL)
    session.run("python", "-c", "import rune_fast.datalog._core as c; print('compiled core:', c.__file__)")
    session.run("rune", "check", "examples/")
    session.run("rune", "test", "examples/")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff and mypy, configured in pyproject.toml."""
    session.install("-e", ".[test,dev,metrics]")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site, with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")
