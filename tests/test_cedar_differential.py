"""Differential test: rune_fast's policy layer against Cedar itself (``cedarpy``).

A seeded generator builds random Cedar-subset policy sets, entity stores and
requests. Each case is run by both engines -- entities as ``parent``/``attr``
facts (plus request entities) on our side, Cedar entities JSON on theirs --
and the decisions, the reason sets and the sets of erroring policies must be
identical.

What the generator covers: every scope form (``==``, ``in``, ``is``, ``is ..
in``, action ``in [..]`` and action groups), ``in`` over multi-level group and
folder hierarchies (including parents supplied with the request), ``has``,
``like`` (``*`` and ``\\*``), ``is``, ``if-then-else``, ``&&``/``||``
short-circuiting, ``!``, comparisons, arithmetic near the 64-bit limits
(overflow errors), sets and their methods, records, entity/string/bool/long
equality across kinds, multi-valued attributes (several ``attr`` facts read
as a set), request-entity attributes overriding stored ones, and missing
attributes making a policy error (and be skipped).

Stored attributes are scalars (``attr`` facts hold scalars); set and record
attributes travel as request entities.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

import reference_policies

import cedarpy  # the test extra installs it; a missing cedarpy must fail, not skip

import rune_fast.engine as rf_engine

N_POLICY_SETS = int(os.environ.get("RUNE_DIFF_SETS", "250"))
REQUESTS_PER_SET = 10
SEED = int(os.environ.get("RUNE_DIFF_SEED", "20240611"))

USERS = [f"u{i}" for i in range(6)]
GROUPS = [f"g{i}" for i in range(5)]
DOCS = [f"d{i}" for i in range(5)]
FOLDERS = [f"f{i}" for i in range(3)]
ACTIONS = ["read", "write", "delete", "share"]
ACTION_GROUPS = ["readish", "all"]
WORDS = ["alpha", "beta", "gamma", "a*b", "ab", "", "Alpha", "x"]
BIG = 9223372036854775807


def ent(t: str, i: str) -> str:
    return f'{t}::"{i}"'


def jent(t: str, i: str) -> dict:
    return {"type": t, "id": i}


class World:
    """A random entity store, kept in a neutral form and rendered for both engines."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.parents: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.attrs: dict[tuple[str, str], dict[str, Any]] = {}  # scalar or ("multi", [..])
        # Groups: a DAG, parents have a higher index (multi-level nesting).
        for i, g in enumerate(GROUPS):
            ups = [("Group", GROUPS[j]) for j in range(i + 1, len(GROUPS)) if rng.random() < 0.4]
            self.parents[("Group", g)] = ups
        for u in USERS:
            self.parents[("User", u)] = [("Group", g) for g in GROUPS if rng.random() < 0.3]
            a: dict[str, Any] = {}
            if rng.random() < 0.85:
                a["level"] = rng.choice([0, 1, 2, 3, 5, BIG, -BIG - 1, BIG - 1])
            if rng.random() < 0.8:
                a["name"] = rng.choice(WORDS)
            if rng.random() < 0.8:
                a["active"] = rng.random() < 0.6
            if rng.random() < 0.6:
                a["manager"] = ("__entity", ("User", rng.choice(USERS)))
            self.attrs[("User", u)] = a
        for i, f in enumerate(FOLDERS):
            self.parents[("Folder", f)] = [("Folder", FOLDERS[j]) for j in range(i + 1, len(FOLDERS)) if rng.random() < 0.6]
        for d in DOCS:
            self.parents[("Doc", d)] = [("Folder", f) for f in FOLDERS if rng.random() < 0.4]
            a = {}
            if rng.random() < 0.8:
                a["owner"] = ("__entity", ("User", rng.choice(USERS)))
            if rng.random() < 0.8:
                a["classification"] = rng.choice(["public", "internal", "secret"])
            if rng.random() < 0.7:
                a["size"] = rng.choice([0, 7, 100, BIG])
            if rng.random() < 0.5:
                # several attr facts for one attribute read as a set
                a["labels"] = ("multi", rng.sample(["red", "green", "blue", 3, True], rng.randint(2, 3)))
            self.attrs[("Doc", d)] = a
        # Actions and action groups: read in readish; readish, write in all.
        self.parents[("Action", "read")] = [("Action", "readish")]
        self.parents[("Action", "readish")] = [("Action", "all")]
        self.parents[("Action", "write")] = [("Action", "all")]
        self.parents[("Action", "share")] = [("Action", "readish")] if rng.random() < 0.5 else []
        self.parents[("Action", "delete")] = []
        self.parents[("Action", "all")] = []

    # -- rendering ------------------------------------------------------------

    def rune_data(self) -> str:
        lines = ["parent = ["]
        for (t, i), ps in self.parents.items():
            for pt, pi in ps:
                lines.append(f"  ['{ent(t, i)}', '{ent(pt, pi)}'],")
        lines.append("]")
        lines.append("attr = [")
        for (t, i), a in self.attrs.items():
            for name, v in a.items():
                vals = v[1] if isinstance(v, tuple) and v[0] == "multi" else [v]
                for x in vals:
                    lines.append(f"  ['{ent(t, i)}', {json.dumps(name)}, {toml_scalar(x)}],")
        lines.append("]")
        return "\n".join(lines)

    def cedar_entities(self, request_entities: list[dict]) -> list[dict]:
        """Cedar's store: stored entities merged with the request's (attrs
        override per attribute, parents are added), as our engine defines."""
        req = {(e["uid"]["type"], e["uid"]["id"]): e for e in request_entities}
        out = []
        keys = list(self.parents) + [k for k in self.attrs if k not in self.parents] + [k for k in req if k not in self.parents and k not in self.attrs]
        for key in keys:
            attrs = {name: cedar_json(v) for name, v in self.attrs.get(key, {}).items()}
            parents = [jent(*p) for p in self.parents.get(key, [])]
            if key in req:
                attrs.update(req[key].get("attrs", {}))
                for p in req[key].get("parents", []):
                    if p not in parents:
                        parents.append(p)
            out.append({"uid": jent(*key), "attrs": attrs, "parents": parents})
        return out


def toml_scalar(v: Any) -> str:
    if isinstance(v, tuple) and v[0] == "__entity":
        return f"'{ent(*v[1])}'"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)


def cedar_json(v: Any) -> Any:
    if isinstance(v, tuple) and v[0] == "__entity":
        return {"__entity": jent(*v[1])}
    if isinstance(v, tuple) and v[0] == "multi":
        return [cedar_json(x) for x in v[1]]
    return v


# ---------------------------------------------------------------------------
# Expressions


class ExprGen:
    """Random Cedar expressions, mostly well typed, sometimes not (errors)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, *options):
        return self.rng.choice(options)

    def gen(self, kind: str, depth: int) -> str:
        rng = self.rng
        if rng.random() < 0.04:  # deliberately ill typed
            kind = rng.choice(["bool", "long", "string", "entity", "set", "record"])
        if depth <= 0 or rng.random() < 0.3:
            return self.leaf(kind)
        return getattr(self, "g_" + kind)(depth - 1)

    # leaves
    def leaf(self, kind: str) -> str:
        r = self.rng
        if kind == "bool":
            return r.choice(["true", "false", "principal.active", "context.flag", "(principal has active)",
                             "(resource has owner)", "(context has flag)", "(principal has nope)"])
        if kind == "long":
            return r.choice(["0", "1", "7", "-3", str(BIG), "-9223372036854775808", "principal.level",
                             "resource.size", "context.n", "context.big", "principal.nope", "context.rec.lvl"])
        if kind == "string":
            return r.choice(['"alpha"', '"ab"', '""', '"public"', '"secret"', "principal.name",
                             "resource.classification", "context.s", "context.rec.dept", "principal.profile.dept"])
        if kind == "entity":
            return r.choice(["principal", "resource", "action", 'User::"u1"', 'User::"u2"', 'Group::"g3"',
                             'Folder::"f2"', 'Doc::"d0"', "resource.owner", "principal.manager", "context.who",
                             'Action::"read"', 'Action::"all"'])
        if kind == "set":
            return r.choice(["principal.tags", "context.tags", "resource.labels", "[]", '["red", "blue"]',
                             '[User::"u1", Group::"g2"]', "[1, 2, true]", '[principal, resource]',
                             "principal.groups", "context.nums"])
        return r.choice(["context.rec", "principal.profile", '{dept: "eng", lvl: 2}', "{}",
                         '{lvl: 2, dept: "eng"}', "context.rec.inner"])

    def g_bool(self, d: int) -> str:
        r = self.rng
        choice = r.randrange(16)
        g = self.gen
        if choice == 0:
            return f"({g('bool', d)} && {g('bool', d)})"
        if choice == 1:
            return f"({g('bool', d)} || {g('bool', d)})"
        if choice == 2:
            return f"!({g('bool', d)})"
        if choice == 3:
            k = r.choice(["long", "string", "entity", "bool", "set", "record"])
            k2 = k if r.random() < 0.7 else r.choice(["long", "string", "entity", "bool"])
            return f"({g(k, d)} {r.choice(['==', '!='])} {g(k2, d)})"
        if choice == 4:
            return f"({g('long', d)} {r.choice(['<', '<=', '>', '>='])} {g('long', d)})"
        if choice == 5:
            right = g("entity", d) if r.random() < 0.6 else g("set", d)
            return f"({g('entity', d)} in {right})"
        if choice == 6:
            obj = r.choice(["principal", "resource", "context", "context.rec", "principal.profile", "action",
                            "principal.manager", "resource.owner"])
            return f"({obj} has {r.choice(['level', 'name', 'owner', 'dept', 'lvl', 'flag', 'nope', 'active', 'size'])})"
        if choice == 7:
            pat = r.choice(['"a*"', '"*a"', '"*"', '"al*a"', '"a\\\\*b"', '"a\\*b"', '"*e*"', '""', '"alpha"', '"*p*b*c"'])
            return f"({g('string', d)} like {pat})"
        if choice == 8:
            return f"({g('entity', d)} is {r.choice(['User', 'Doc', 'Group', 'Action', 'Folder'])})"
        if choice == 9:
            return f"({g('entity', d)} is {r.choice(['User', 'Doc'])} in {g('entity', d)})"
        if choice == 10:
            return f"(if {g('bool', d)} then {g('bool', d)} else {g('bool', d)})"
        if choice == 11:
            item = g(r.choice(["string", "long", "entity", "bool"]), d)
            return f"({g('set', d)}.contains({item}))"
        if choice == 12:
            return f"({g('set', d)}.{r.choice(['containsAll', 'containsAny'])}({g('set', d)}))"
        if choice == 13:
            return f"({g('set', d)}.isEmpty())"
        if choice == 14:
            return f'({g("record", d)}["{r.choice(["flag", "ok"])}"])'
        return self.leaf("bool")

    def g_long(self, d: int) -> str:
        r = self.rng
        choice = r.randrange(5)
        g = self.gen
        if choice <= 1:
            return f"({g('long', d)} {r.choice(['+', '-', '*'])} {g('long', d)})"
        if choice == 2:
            return f"(-{g('long', d)})"
        if choice == 3:
            return f"(if {g('bool', d)} then {g('long', d)} else {g('long', d)})"
        return self.leaf("long")

    def g_string(self, d: int) -> str:
        if self.rng.random() < 0.3:
            return f"(if {self.gen('bool', d)} then {self.gen('string', d)} else {self.gen('string', d)})"
        return self.leaf("string")

    def g_entity(self, d: int) -> str:
        if self.rng.random() < 0.2:
            return f"(if {self.gen('bool', d)} then {self.gen('entity', d)} else {self.gen('entity', d)})"
        return self.leaf("entity")

    def g_set(self, d: int) -> str:
        r = self.rng
        if r.random() < 0.5:
            n = r.randint(0, 3)
            kinds = [r.choice(["string", "long", "entity", "bool", "set", "record"]) for _ in range(n)]
            return "[" + ", ".join(self.gen(k, d) for k in kinds) + "]"
        return self.leaf("set")

    def g_record(self, d: int) -> str:
        r = self.rng
        if r.random() < 0.5:
            keys = r.sample(["flag", "ok", "lvl", "dept"], r.randint(0, 3))
            return "{" + ", ".join(f"{k}: {self.gen(r.choice(['bool', 'long', 'string']), d)}" for k in keys) + "}"
        return self.leaf("record")


def gen_scope(rng: random.Random) -> str:
    p = rng.choice([
        "principal",
        "principal",
        f'principal == User::"{rng.choice(USERS)}"',
        f'principal in Group::"{rng.choice(GROUPS)}"',
        "principal is User",
        f'principal is User in Group::"{rng.choice(GROUPS)}"',
        "principal is Group",
    ])
    a = rng.choice([
        "action",
        "action",
        f'action == Action::"{rng.choice(ACTIONS)}"',
        f'action in Action::"{rng.choice(ACTION_GROUPS)}"',
        "action in [" + ", ".join(f'Action::"{x}"' for x in rng.sample(ACTIONS + ACTION_GROUPS, 2)) + "]",
    ])
    r = rng.choice([
        "resource",
        "resource",
        f'resource == Doc::"{rng.choice(DOCS)}"',
        f'resource in Folder::"{rng.choice(FOLDERS)}"',
        "resource is Doc",
        f'resource is Doc in Folder::"{rng.choice(FOLDERS)}"',
        "resource is Folder",
    ])
    return f"{p}, {a}, {r}"


def gen_policies(rng: random.Random) -> list[str]:
    eg = ExprGen(rng)
    out = []
    for i in range(rng.randint(1, 6)):
        effect = "forbid" if rng.random() < 0.3 else "permit"
        conds = []
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            kw = "when" if rng.random() < 0.75 else "unless"
            conds.append(f"{kw} {{ {eg.gen('bool', rng.randint(1, 4))} }}")
        out.append(f'@id("p{i}")\n{effect}({gen_scope(rng)})\n  {" ".join(conds)};')
    return out


def gen_request(rng: random.Random) -> tuple[dict, list[dict]]:
    principal = rng.choice([("User", u) for u in USERS] + [("Group", rng.choice(GROUPS))])
    resource = rng.choice([("Doc", d) for d in DOCS] + [("Folder", rng.choice(FOLDERS))])
    action = ("Action", rng.choice(ACTIONS + ["readish"]))
    context: dict[str, Any] = {}
    if rng.random() < 0.8:
        context["flag"] = rng.random() < 0.5
    if rng.random() < 0.8:
        context["n"] = rng.choice([0, 2, 5, -1, BIG])
    context["big"] = rng.choice([BIG, -BIG - 1, 1])
    if rng.random() < 0.8:
        context["s"] = rng.choice(WORDS)
    if rng.random() < 0.7:
        context["who"] = {"__entity": jent("User", rng.choice(USERS))}
    if rng.random() < 0.7:
        context["tags"] = rng.sample(["red", "green", "blue", "alpha"], rng.randint(0, 3))
    if rng.random() < 0.5:
        context["nums"] = rng.sample([1, 2, 3, 5], rng.randint(0, 3))
    if rng.random() < 0.7:
        rec: dict[str, Any] = {"dept": rng.choice(["eng", "ops"]), "lvl": rng.choice([1, 2, 3])}
        if rng.random() < 0.5:
            rec["inner"] = {"ok": rng.random() < 0.5}
        if rng.random() < 0.5:
            rec["flag"] = rng.random() < 0.5
        context["rec"] = rec
    ents: list[dict] = []
    if principal[0] == "User" and rng.random() < 0.7:
        attrs: dict[str, Any] = {}
        if rng.random() < 0.7:
            attrs["tags"] = rng.sample(["red", "green", "blue", "alpha"], rng.randint(0, 3))
        if rng.random() < 0.6:
            attrs["profile"] = {"dept": rng.choice(["eng", "ops"]), "lvl": rng.choice([1, 2]), "ok": rng.random() < 0.5}
        if rng.random() < 0.5:
            attrs["groups"] = [{"__entity": jent("Group", g)} for g in rng.sample(GROUPS, rng.randint(0, 2))]
        if rng.random() < 0.3:
            attrs["level"] = rng.choice([1, 4])  # overrides the stored attribute
        parents = [jent("Group", g) for g in rng.sample(GROUPS, 1)] if rng.random() < 0.3 else []
        ents.append({"uid": jent(*principal), "attrs": attrs, "parents": parents})
    req = {
        "principal": principal,
        "action": action,
        "resource": resource,
        "context": context,
    }
    return req, ents


def _cedar_ids(result) -> tuple[set, set]:
    reasons = set(result.diagnostics.reasons)
    errs = set()
    for msg in result.diagnostics.errors:
        # "error while evaluating policy `policy3`: ..."
        start = msg.find("`policy")
        if start >= 0:
            errs.add(msg[start + 1 : msg.find("`", start + 1)])
    return {r.replace("policy", "p", 1) for r in reasons}, {e.replace("policy", "p", 1) for e in errs}


def run_case_set(seed: int) -> int:
    """Random policies and requests: our engine (generated code) must agree
    with Cedar, and exactly (messages included) with the reference evaluator."""
    rng = random.Random(seed)
    world = World(rng)
    policies = gen_policies(rng)
    policy_text = "\n".join(policies)
    rune = f'version = "rune/1"\n\n[data]\n{world.rune_data()}\n\n[policies]\n{policy_text}\n'
    try:
        engine = rf_engine.load_text(rune, cache_size=0)
        reference = rf_engine.load_text(rune, cache_size=0, policy_generator=reference_policies.generate)
    except Exception as e:  # pragma: no cover - shows the generated input on failure
        raise AssertionError(f"seed {seed}: our engine refused the bundle: {e}\n{rune}") from e
    checked = 0
    for _ in range(REQUESTS_PER_SET):
        req, ents = gen_request(rng)
        cedar_req = {
            "principal": ent(*req["principal"]),
            "action": ent(*req["action"]),
            "resource": ent(*req["resource"]),
            "context": req["context"],
        }
        try:
            theirs = cedarpy.is_authorized(cedar_req, policy_text, world.cedar_entities(ents))
        except Exception as e:  # pragma: no cover
            raise AssertionError(f"seed {seed}: cedar refused: {e}\n{policy_text}") from e
        ours = engine.authorize(req["principal"], req["action"], req["resource"], req["context"], ents or None)
        oracle = reference.authorize(req["principal"], req["action"], req["resource"], req["context"], ents or None)
        their_reasons, their_errors = _cedar_ids(theirs)
        our_errors = {pid for pid, _ in ours.errors}
        detail = (
            f"seed {seed}\nrequest {cedar_req}\nentities {ents}\n"
            f"policies:\n{policy_text}\n\nours: {ours}\ntheirs: {theirs.decision} {theirs.diagnostics.reasons} "
            f"{theirs.diagnostics.errors}"
        )
        assert ours.allowed == theirs.allowed, detail
        assert set(ours.reasons) == their_reasons, detail
        assert our_errors == their_errors, detail
        assert "<engine>" not in our_errors, detail
        assert (ours.decision, ours.reasons, ours.errors) == (oracle.decision, oracle.reasons, oracle.errors), detail
        checked += 1
    return checked


@pytest.mark.parametrize("chunk", range(5))
def test_differential_against_cedar(chunk: int) -> None:
    per_chunk = N_POLICY_SETS // 5
    total = 0
    for k in range(per_chunk):
        seed = SEED + chunk * 100_003 + k
        total += run_case_set(seed)
    assert total == per_chunk * REQUESTS_PER_SET


def test_differential_case_count() -> None:
    """The CI contract: at least 2,000 random cases."""
    assert N_POLICY_SETS * REQUESTS_PER_SET >= 2000 or os.environ.get("RUNE_DIFF_SETS")
