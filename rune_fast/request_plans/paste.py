"""Request plans as text to paste into a linked policy (``policy/codegen.py``).

Why: a linked policy calls the request plan of each question it asks
(``Link.relation`` answers ``("plan", f, exc, paste)``). For the small
plans that most request rules compile to (a few context reads and string
tests, a set lookup) the call costs about as much as the plan's work. A
plan that is *straight-line* — no loop, no memo, no call of another plan,
nothing that can hand the request over (``Fallback``) — is pasted into the
policy instead: its body, with every local renamed apart, ``ev`` read as
the policy's ``d``, its parameters replaced by the call's arguments, its
module names bound as the policy's constants, and ``return X`` turned into
``result = X; break`` inside a one-pass ``while True`` loop. The pasted
text is the plan's own generated text, so it answers exactly what the call
answers; ``tests/test_request_fastpath.py`` checks linked policies against
the plain ones.
"""

from __future__ import annotations

import builtins
import io
import keyword
import tokenize
from typing import Any, Callable, Optional

__all__ = ["Paster", "paster"]

#: Text that makes a plan unfit for pasting: a loop (``return`` would leave
#: only the inner loop), the per-request memo, a hand-over, an aggregate
#: (``_agg`` may hand over), calls of other plans (keyword-only defaults).
_UNFIT = ("for ", "while ", "memo", "_FB", "_agg(", "lambda", "yield", "*,", "def ", "class ", "global ")

#: Plans nested deeper than this many levels are called, not pasted.
MAX_DEPTH = 40

#: (lines at indent 0, ending in ``break``-terminated assignments to the
#: result; globals to bind) for a prefix, the call's argument names and the
#: result variable.
Paster = Callable[[str, "list[str]", str, Callable[[Any], str]], "list[str]"]


def paster(src: str, ns: dict) -> Optional[Paster]:
    """A paster for one generated plan function (``src``; ``ns``: the plan
    module's names), or None when the plan is not straight-line."""
    lines = src.rstrip("\n").split("\n")
    head, body = lines[0], lines[1:]
    if not head.startswith("def ") or not head.endswith("):") or not body:
        return None
    if any(bad in line for line in body for bad in _UNFIT):
        return None
    params = [x.strip() for x in head[head.index("(") + 1:-2].split(",")]
    if not params or params[0] != "ev" or any(not x.isidentifier() for x in params):
        return None
    if body[-1] not in ("    return False", "    return True"):
        return None
    if max(len(line) - len(line.lstrip(" ")) for line in body) > 4 * MAX_DEPTH:
        return None  # the policy adds its own levels: stay far from the parser's limit (100)
    for line in body:
        s = line.strip()
        if s.startswith("return") and s not in ("return True", "return False"):
            return None
    text = "\n".join(line[4:] if line.startswith("    ") else line for line in body) + "\n"
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    # (row, start col, end col, name) of every name to rewrite
    names: list[tuple[int, int, int, str]] = []
    prev = None
    for tok in toks:
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) and not (prev is not None and prev.string == "."):
            names.append((tok.start[0], tok.start[1], tok.end[1], tok.string))
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT):
            prev = tok
    text_lines = text.split("\n")
    args_of = {p: i for i, p in enumerate(params[1:])}

    def paste(prefix: str, args: list[str], result: str, const: Callable[[Any], str]) -> list[str]:
        if len(args) != len(args_of):
            raise ValueError("wrong number of arguments for a pasted plan")
        out = list(text_lines)
        for row, c0, c1, name in reversed(names):  # right to left keeps the columns valid
            if name == "ev":
                new = "d"
            elif name in args_of:
                new = args[args_of[name]]
            elif name in ns:
                new = const(ns[name])
            elif hasattr(builtins, name) and name not in ("True", "False", "None"):
                new = const(getattr(builtins, name))
            elif name in ("True", "False", "None"):
                continue
            else:
                new = prefix + name
            line = out[row - 1]
            out[row - 1] = line[:c0] + new + line[c1:]
        res = []
        for line in out:
            s = line.strip()
            if s in ("return True", "return False"):
                line = line[: len(line) - len(line.lstrip())] + f"{result} = {s[7:]}; break"
            if line.strip():
                res.append(line)
        return res

    return paste
