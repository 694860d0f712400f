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

Pasted into a fused selection without the per-request state (``Link``'s
``context_local``), the plan's prologue (``cx = ev.cx``, ``load_cx``, one
``cK = cx.get(K)`` per context entry it reads) is dropped: ``cx`` is the
fused function's context facts, each ``cK`` the fused function's local
holding that entry (read once per selection, not once per plan), and
``ev.p``/``ev.a``/``ev.r`` the request itself (``p``, ``a``, ``r``: the
state holds the same entities). A plan that reads anything else of ``ev``
is not pasted that way (the paster answers None).
"""

from __future__ import annotations

import builtins
import io
import keyword
import re
import tokenize
from typing import Any, Callable, Optional

__all__ = ["Paster", "paster"]

#: Text that makes a plan unfit for pasting: a loop (``return`` would leave
#: only the inner loop), the per-request memo, a hand-over, an aggregate
#: (``_agg`` may hand over), calls of other plans (keyword-only defaults).
_UNFIT = ("for ", "while ", "memo", "_FB", "_agg(", "lambda", "yield", "*,", "def ", "class ", "global ")

#: Plans nested deeper than this many levels are called, not pasted.
MAX_DEPTH = 40

#: Lines at indent 0, ending in ``break``-terminated assignments to the
#: result, for a prefix, the call's argument names, the result variable, the
#: namer of constants and ``context_local`` (``None``: read the state ``d``;
#: else the answer is None when the plan cannot be pasted without it).
Paster = Callable[..., Optional["list[str]"]]

#: The prologue of a plan that reads the context (``codegen.FunctionGen.source``).
_CX_PROLOGUE = ["cx = ev.cx", "if cx is None:", "    cx = ev.load_cx()"]
_CX_READ = re.compile(r"(cK\w+) = cx\.get\((\w+)\)$")


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
    # Without the state: the prologue's rows (1-based) and cK local -> K name.
    skip: set = set()
    reads: dict[str, str] = {}
    if text_lines[:3] == _CX_PROLOGUE:
        skip = {1, 2, 3}
        for i, line in enumerate(text_lines[3:], 4):
            m = _CX_READ.match(line)
            if m is None:
                break
            skip.add(i)
            reads[m.group(1)] = m.group(2)
    # Pasted without the state only when every other use of ``ev`` is the
    # request's principal, action or resource and no cK local is reassigned.
    bare = True
    for row, _c0, c1, name in names:
        after = text_lines[row - 1][c1:c1 + 3]
        if name == "ev" and row not in skip and (after[:2] not in (".p", ".a", ".r") or after[2:].isalnum() or after[2:] == "_"):
            bare = False
    if any(re.search(rf"\b{re.escape(k)}\s*=(?!=)", line) for k in reads for line in text_lines[len(skip):]):
        bare = False

    copies = _copies(text_lines, set(params) | set(ns))

    def paste(prefix: str, args: list[str], result: str, const: Callable[[Any], str],
              context_local: Optional[Callable[[Any], str]] = None) -> Optional[list[str]]:
        if len(args) != len(args_of):
            raise ValueError("wrong number of arguments for a pasted plan")
        stateless = context_local is not None
        if stateless and not bare:
            return None
        out = list(text_lines)
        for row, c0, c1, name in reversed(names):  # right to left keeps the columns valid
            if (stateless and row in skip) or row in copies[1]:
                continue
            name = copies[0].get(name, name)
            if stateless and name == "ev":
                line = out[row - 1]  # ``ev.p`` (checked above): the fused function's ``p``
                out[row - 1] = line[:c0] + line[c1 + 1] + line[c1 + 2:]
                continue
            if stateless and name == "cx":
                continue  # the fused function's context facts
            if stateless and name in reads:
                assert context_local is not None
                new = context_local(ns[reads[name]])
            elif name == "ev":
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
        for i, line in enumerate(out, 1):
            if (stateless and i in skip) or i in copies[1]:
                continue
            s = line.strip()
            if s in ("return True", "return False"):
                line = line[: len(line) - len(line.lstrip())] + f"{result} = {s[7:]}; break"
            if line.strip():
                res.append(line)
        return res

    return paste


_ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)")
_COPY = re.compile(r"^\s*([A-Za-z_]\w*) = ([A-Za-z_]\w*)$")


def _copies(lines: list[str], fixed: set) -> tuple[dict[str, str], set]:
    """Copies a paste can drop: ``A = B`` where the plan assigns ``A`` only
    there and ``B`` at most once (a constant, an argument, a local). The code
    is straight-line, so ``B`` has its one value wherever ``A`` is read;
    reading ``B`` there instead saves two bytecodes per copy (the plans bind
    every variable of a rule copy this way). Returns ``A`` -> the name to
    read and the rows (1-based) of the dropped copies."""
    if any(":=" in line or re.match(r"^\s*[\w\s]+,[\w\s,]*=(?!=)", line) for line in lines):
        return {}, set()
    count: dict[str, int] = {}
    for line in lines:
        m = _ASSIGNED.match(line)
        if m is not None:
            count[m.group(1)] = count.get(m.group(1), 0) + 1
    sub: dict[str, str] = {}
    rows = set()
    for i, line in enumerate(lines, 1):
        m = _COPY.match(line)
        if m is None:
            continue
        a, b = m.group(1), m.group(2)
        if a in fixed or b in ("True", "False", "None", "ev", "cx") or keyword.iskeyword(b):
            continue
        if count.get(a) == 1 and count.get(b, 0) <= 1 and a != b:
            sub[a] = b
            rows.add(i)
    for a in list(sub):  # chains: C = A, A = B read B
        b, seen = sub[a], {a}
        while b in sub and b not in seen:
            seen.add(b)
            b = sub[b]
        sub[a] = b
    return sub, rows
