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
