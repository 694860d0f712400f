"""rune_fast: a compiled Datalog + Cedar-style authorization engine.

The public API is re-exported here; see README.md and docs/.
"""

from .errors import (
    RuneArityError,
    RuneCheckError,
    RuneDataError,
    RuneDuplicateIdError,
    RuneError,
    RuneErrors,
    RuneEvalError,
    RuneHeadWildcardError,
    RuneLimitError,
    RuneRequestError,
    RuneSafetyError,
    RuneSourceError,
    RuneStratificationError,
    RuneSyntaxError,
    RuneUndefinedError,
    RuneVersionError,
)
from .limits import Limits
from .values import Entity

__version__ = "0.1.0"

__all__ = [
    "Entity",
    "Limits",
    "RuneArityError",
    "RuneCheckError",
    "RuneDataError",
    "RuneDuplicateIdError",
    "RuneError",
    "RuneErrors",
    "RuneEvalError",
    "RuneHeadWildcardError",
    "RuneLimitError",
    "RuneRequestError",
    "RuneSafetyError",
    "RuneSourceError",
    "RuneStratificationError",
    "RuneSyntaxError",
    "RuneUndefinedError",
    "RuneVersionError",
]

# Hot reload (docs/reload.md). The store imports the engine lazily, on its
# first load, so importing rune_fast stays cheap.
from .store import PolicyStore  # noqa: E402

__all__.append("PolicyStore")

# The engine (docs/policies.md): build with load()/load_text(), ask authorize().
from .engine import Decision, Engine, load, load_text  # noqa: E402

__all__ += ["Decision", "Engine", "load", "load_text"]
