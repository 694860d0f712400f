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
    RuneManifestError,
    RuneRequestError,
    RuneSafetyError,
    RuneSourceError,
    RuneStratificationError,
    RuneSyntaxError,
    RuneUndefinedError,
    RuneVersionError,
)
from . import datalog
from .engine import Decision, Engine, load, load_text
from .limits import Limits
from .analysis.explain import Explanation
from .analysis.search import SearchPage
from .reload.store import PolicyStore
from .values import Entity

__version__ = "0.1.0"

__all__ = [
    "Decision",
    "Engine",
    "Entity",
    "Explanation",
    "Limits",
    "PolicyStore",
    "SearchPage",
    "datalog",
    "load",
    "load_text",
    "RuneArityError",
    "RuneCheckError",
    "RuneDataError",
    "RuneDuplicateIdError",
    "RuneError",
    "RuneErrors",
    "RuneEvalError",
    "RuneHeadWildcardError",
    "RuneLimitError",
    "RuneManifestError",
    "RuneRequestError",
    "RuneSafetyError",
    "RuneSourceError",
    "RuneStratificationError",
    "RuneSyntaxError",
    "RuneUndefinedError",
    "RuneVersionError",
]
