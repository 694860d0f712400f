"""A plain-Python semi-naive Datalog evaluator: the "what Cython buys us" row.

Independent of rune_fast (its own parser, planner and evaluator), it handles
the subset the benchmark workloads use: atoms over variables, ``_``, integer
and string constants; ``not atom``; comparisons (``= != < <= > >=``) between
variables and constants; stratified negation.

Relations are Python sets of tuples. Every rule and every semi-naive variant
is compiled into a Python function of nested ``for`` loops that probes dict
indexes (hash joins: key -> list of the other columns). A variant reads the
last round's new tuples (``delta``) of one recursive atom first; the other
atoms read the whole relation, so non-linear rules redo some work but stay
correct. Cyclic GC is off while evaluating.

    >>> sorted(evaluate("p(X, Z) :- e(X, Y), e(Y, Z).", {"e": [(1, 2), (2, 3)]})["p"])
    [(1, 3)]
"""

from __future__ import annotations

import gc
import re
from operator import itemgetter

__all__ = ["parse", "evaluate"]

_TOKEN = re.compile(r'\s*(?:(:-|!=|<=|>=|[=<>(),.])|("[^"]*")|(-?\d+)|([A-Za-z_][A-Za-z0-9_]*))')
_CMP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _tokens(text: str) -> list:
    text = re.sub(r"#[^\n]*", "", text).strip()
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SyntaxError(f"cannot read {text[pos:pos + 20]!r}")
        punct, string, number, name = m.groups()
        out.append(("p", punct) if punct else ("c", string[1:-1]) if string else
                   ("c", int(number)) if number else ("n", name))
        pos = m.end()
    return out


def parse(text: str) -> list:
    """Rules -> [(head, body)]: head = (name, args); body items are
    ("atom", name, args), ("not", name, args) or ("cmp", op, left, right);
    an argument is ("v", name), ("c", value) or ("_",)."""
    toks, i, rules = _tokens(text), 0, []

    def term():
        nonlocal i
        kind, v = toks[i]
        i += 1
        if kind == "c":
            return ("c", v)
        if v == "_":
            return ("_",)
        return ("v", v) if v[0].isupper() or v[0] == "_" else ("c", v)

    def atom():
        nonlocal i
        name, args = toks[i][1], []
        i += 1
        if toks[i] == ("p", "("):
            i += 1
            while toks[i] != ("p", ")"):
                args.append(term())
                if toks[i] == ("p", ","):
                    i += 1
            i += 1
        return name, tuple(args)

    while i < len(toks):
        head, body = atom(), []
        if toks[i] == ("p", ":-"):
            i += 1
            while True:
                if toks[i] == ("n", "not"):
                    i += 1
                    body.append(("not",) + atom())
                elif i + 1 < len(toks) and toks[i + 1] == ("p", "(") and toks[i][0] == "n":
                    body.append(("atom",) + atom())
                else:
                    left = term()
                    op = toks[i][1]
                    i += 1
                    body.append(("cmp", op, left, term()))
                i += 1
                if toks[i - 1] == ("p", "."):
                    break
        else:
            i += 1
        rules.append((head, body))
    return rules


def _stratify(rules: list) -> list:
    """Strongly connected components of the dependency graph, in dependency order."""
    deps: dict = {h[0]: set() for h, _ in rules}
    for (h, _args), body in rules:
        deps[h] |= {lit[1] for lit in body if lit[0] in ("atom", "not") and lit[1] in deps}
    reach = {r: set(d) for r, d in deps.items()}
    changed = True
    while changed:
        changed = False
        for r in reach:
            more = set().union(*(reach[d] for d in reach[r])) - reach[r]
            if more:
                reach[r] |= more
                changed = True
    comps = {r: frozenset([r] + [s for s in reach[r] if r in reach[s]]) for r in deps}
    for (h, _args), body in rules:
        if any(lit[0] == "not" and lit[1] in comps[h] for lit in body):
            raise ValueError(f"{h} depends on itself through negation")
    # a component comes after every relation it reads: order by reach size
    order = sorted(set(comps.values()), key=lambda c: (len(reach[next(iter(c))] - c), sorted(c)))
    return [sorted(c) for c in order]


def _compile(head, body, delta_pos, sources: dict):
    """Python source of one rule variant; ``sources`` collects what it reads."""
    bound, lines, depth = {}, [], 1
    pending = [lit for lit in body if lit[0] != "atom"]
    atoms = [k for k, lit in enumerate(body) if lit[0] == "atom"]
    order = [delta_pos] if delta_pos is not None else []
    for k in order:
        bound.update((a[1], None) for a in body[k][2] if a[0] == "v")
    while len(order) < len(atoms):
        rest = [k for k in atoms if k not in order]
        order.append(max(rest, key=lambda k: (sum(a[0] == "c" or (a[0] == "v" and a[1] in bound)
                                                      for a in body[k][2]) / max(len(body[k][2]), 1), -k)))
        for a in body[order[-1]][2]:
            if a[0] == "v":
                bound.setdefault(a[1], None)
    bound.clear()

    def val(a):
        return repr(a[1]) if a[0] == "c" else bound[a[1]]

    def src(key):
        return sources.setdefault(key, f"s{len(sources)}")

    def emit(line):
        lines.append("    " * depth + line)

    for k in order:
        _, name, args = body[k]
        tier = "delta" if k == delta_pos else "all"
        key_cols = tuple(c for c, a in enumerate(args) if a[0] == "c" or (a[0] == "v" and a[1] in bound))
        rest_cols = tuple(c for c, a in enumerate(args) if c not in key_cols)
        targets, checks = [], []
        for c in rest_cols:
            a = args[c]
            if a[0] == "_":
                targets.append("_")
            elif a[1] in bound:  # repeated in this atom
                tmp = f"t{len(lines)}_{c}"
                targets.append(tmp)
                checks.append(f"{tmp} == {bound[a[1]]}")
            else:
                bound[a[1]] = f"v{len(bound)}"
                targets.append(bound[a[1]])
        key = [val(args[c]) for c in key_cols]
        key_expr = key[0] if len(key) == 1 else "(" + ", ".join(key) + ",)"
        if not rest_cols:
            emit(f"if ({', '.join(key)},) in {src(('set', name, tier))}:")
        elif not key_cols:
            emit(f"for ({', '.join(targets)},) in {src(('set', name, tier))}:")
        else:
            target = targets[0] if len(targets) == 1 else "(" + ", ".join(targets) + ")"
            emit(f"for {target} in {src(('idx', name, tier, key_cols, rest_cols))}.get({key_expr}, ()):")
        depth += 1
        for check in checks:
            emit(f"if {check}:")
            depth += 1
        for lit in list(pending):
            if all(a[0] != "v" or a[1] in bound for a in (lit[2:] if lit[0] == "cmp" else lit[2])):
                pending.remove(lit)
                if lit[0] == "cmp":
                    emit(f"if {val(lit[2])} {_CMP[lit[1]]} {val(lit[3])}:")
                else:
                    cols = tuple(c for c, a in enumerate(lit[2]) if a[0] != "_")
                    ks = [val(lit[2][c]) for c in cols]
                    kx = ks[0] if len(ks) == 1 else "(" + ", ".join(ks) + ",)"
                    if len(cols) == len(lit[2]):
                        emit(f"if ({', '.join(ks)},) not in {src(('set', lit[1], 'all'))}:")
                    else:
                        rest = tuple(c for c in range(len(lit[2])) if c not in cols)
                        emit(f"if {kx} not in {src(('idx', lit[1], 'all', cols, rest))}:")
                depth += 1
    emit(f"add(({', '.join(val(a) for a in head[1])},))")
    return "\n".join(lines)


def _index(tuples, key_cols, rest_cols, d=None):
    d = {} if d is None else d
    kg, rg = itemgetter(*key_cols), itemgetter(*rest_cols)
    for t in tuples:
        k = kg(t)
        lst = d.get(k)
        if lst is None:
            d[k] = [rg(t)]
        else:
            lst.append(rg(t))
    return d


def evaluate(rules, facts: dict) -> dict:
    """The model of ``rules`` (text or ``parse`` output) over ``facts``: name -> set of tuples."""
    rules = parse(rules) if isinstance(rules, str) else rules
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        total = {name: set(map(tuple, rows)) for name, rows in facts.items()}
        indexes: dict = {}  # ('idx', name, 'all', key, rest) -> dict, kept up to date
        for stratum in _stratify(rules):
            members = set(stratum)
            for name in stratum:
                total.setdefault(name, set())
            delta = {name: set(total[name]) for name in stratum}
            variants = []  # (head name, delta relation or None, function, sources)
            for head, body in (r for r in rules if r[0][0] in members):
                rec = [k for k, lit in enumerate(body) if lit[0] == "atom" and lit[1] in members]
                for pos in rec or [None]:
                    sources: dict = {}
                    code = _compile(head, body, pos, sources)
                    prelude = "".join(f"    {v} = S[{k!r}]\n" for k, v in sources.items())
                    ns: dict = {}
                    exec(f"def rule(S, add):\n{prelude}{code}\n", ns)
                    variants.append((head[0], body[pos][1] if pos is not None else None, ns["rule"], sources))
            first = True
            while first or any(delta.values()):
                new = {name: set() for name in stratum}
                for head, dname, fn, sources in variants:
                    if first == (dname is not None):
                        continue  # exit rules run once; recursive variants from round 1 on
                    S = {}
                    for key in sources:
                        rel = total.setdefault(key[1], set())
                        if key[0] == "set":
                            S[key] = delta[key[1]] if key[2] == "delta" else rel
                        elif key[2] == "delta":
                            S[key] = _index(delta[key[1]], key[3], key[4])
                        else:
                            ix = indexes.get(key)
                            if ix is None:
                                ix = indexes[key] = _index(rel, key[3], key[4])
                            S[key] = ix
                    fn(S, new[head].add)
                for name in stratum:
                    d = new[name] - total[name]
                    total[name] |= d
                    for key, ix in indexes.items():
                        if key[1] == name:
                            _index(d, key[3], key[4], ix)
                    delta[name] = (d | delta[name]) if first else d
                first = False
        return total
    finally:
        if was_enabled:
            gc.enable()
