"""The document-sharing authorization scenario, seeded.

One world, four renderings of it, and an independent oracle:

- 200 users, clearance 1-5, 10 of them (5 %) suspended, each a direct member
  of 1-3 groups;
- 20 groups in 3 tiers (4 top, 6 middle, 10 leaf): every middle group is in a
  top group and every leaf group in a middle group, so membership nests two
  levels deep;
- 50 folders: 10 top folders and 40 sub-folders, each in one top folder;
- 5,000 documents, each in one folder, with an owner and a classification
  (public / internal / secret);
- 40 distinct grants (group, role, folder); roles viewer = {read},
  editor = {read, write}, admin = {read, write, delete, share}.

A request (user, action, document) is allowed iff
(the user owns the document OR some grant (G, Role, F) has Role covering the
action, G among the user's groups closed transitively, and F the document's
folder or one of its ancestors) AND NOT the user is suspended AND NOT (the
document is secret AND the user's clearance < 3 AND the user is not the owner).
The last two are `forbid` policies, so a denial is reported as ``forbid`` when
one of them applies and as ``deny`` otherwise.

Renderings:

- ``rune_text(world)``: ONE ``.rune`` text (data as TOML arrays, rules,
  policies). Permissions are derived at *folder* granularity by rules
  (``can_folder(U, Act, F)``, at most users x actions x folders tuples); the
  policy does the last hop through the document's ``folder`` attribute, so
  no user x document x action relation is materialised.
- ``cedar_policies(world)`` / ``cedar_entities(world)``: Cedar text and the
  Cedar entities JSON list. Cedar has no rules, so each grant is one permit
  ``permit(principal in Group, action in [..role's actions..], resource in
  Folder)`` over the entity hierarchy (users -> groups -> groups, documents
  -> folder -> top folder).
- ``casbin_model()`` / ``casbin_policy_lines(world)``: a casbin model with
  four role managers (``g`` user/group membership, ``g2`` document/folder
  containment, ``g3`` document -> owner, ``g4`` action -> role) and
  allow/deny effects. Casbin cannot compare stored numeric attributes or read
  a stored boolean, so the generator *precomputes* two things casbin cannot
  express: "clearance < 3" becomes membership in the role ``lowclear`` and
  "classification == secret" the containment ``g2(doc, "secret")``;
  "suspended" becomes membership in the role ``suspended``. Everything else
  (transitive groups and folders, role -> action, owner, the
  not-owner exception of the clearance rule) is evaluated by casbin.
- ``requests(world)``: 2,000 seeded (user, action, document) requests,
  1,000 allowed and 1,000 denied, in shuffled order, with the oracle's
  expected decision (``permit`` / ``deny`` / ``forbid``) for each.

``oracle_decision`` is plain Python over the generator's own dicts; it shares
no code with any engine.

Run ``python asv_benchmarks/benchmarks/auth_scenario.py`` to check rune_fast,
cedarpy and casbin against the oracle on every request (0 mismatches
required; exits 1 otherwise).
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field

ROLES = {
    "viewer": ("read",),
    "editor": ("read", "write"),
    "admin": ("read", "write", "delete", "share"),
}
ACTIONS = ("read", "write", "delete", "share")
CLASSIFICATIONS = ("public", "internal", "secret")

N_USERS = 200
N_SUSPENDED = 10  # 5 %
GROUP_TIERS = (4, 6, 10)  # 20 groups: top, middle, leaf
N_TOP_FOLDERS = 10
N_SUB_FOLDERS = 40
N_DOCS = 5000
N_GRANTS = 40
N_REQUESTS = 2000


@dataclass
class World:
    users: list[str]
    clearance: dict[str, int]
    suspended: set[str]
    user_groups: dict[str, list[str]]  # direct memberships
    groups: list[str]
    group_parent: dict[str, str]  # middle -> top, leaf -> middle
    folders: list[str]
    folder_parent: dict[str, str]  # sub -> top
    docs: list[str]
    doc_folder: dict[str, str]
    doc_owner: dict[str, str]
    doc_class: dict[str, str]
    grants: list[tuple[str, str, str]]  # (group, role, folder)
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)


def make_world(seed: int = 20240604) -> World:
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(N_USERS)]
    clearance = {u: rng.randint(1, 5) for u in users}
    suspended = set(rng.sample(users, N_SUSPENDED))

    tiers: list[list[str]] = []
    n = 0
    for size in GROUP_TIERS:
        tiers.append([f"g{n + i}" for i in range(size)])
        n += size
    groups = [g for tier in tiers for g in tier]
    group_parent = {}
    for upper, lower in itertools.pairwise(tiers):
        for g in lower:
            group_parent[g] = rng.choice(upper)
    user_groups = {u: rng.sample(groups, rng.randint(1, 3)) for u in users}

    top = [f"f{i}" for i in range(N_TOP_FOLDERS)]
    sub = [f"f{N_TOP_FOLDERS + i}" for i in range(N_SUB_FOLDERS)]
    folders = top + sub
    folder_parent = {f: rng.choice(top) for f in sub}

    docs = [f"d{i}" for i in range(N_DOCS)]
    doc_folder = {d: rng.choice(folders) for d in docs}
    doc_owner = {d: rng.choice(users) for d in docs}
    doc_class = {d: rng.choice(CLASSIFICATIONS) for d in docs}

    grants: list[tuple[str, str, str]] = []
    seen = set()
    while len(grants) < N_GRANTS:
        g = (rng.choice(groups), rng.choice(tuple(ROLES)), rng.choice(folders))
        if (g[0], g[2]) not in seen:  # one role per (group, folder)
            seen.add((g[0], g[2]))
            grants.append(g)
    return World(users, clearance, suspended, user_groups, groups, group_parent, folders,
                  folder_parent, docs, doc_folder, doc_owner, doc_class, grants, seed)


# ---------------------------------------------------------------------------
# The oracle: plain Python over the world's dicts.


def _up(x: str, parent: dict[str, str]) -> list[str]:
    out = [x]
    while x in parent:
        x = parent[x]
        out.append(x)
    return out


def oracle(w: World, user: str, action: str, doc: str) -> tuple[str, frozenset]:
    """``(decision, reasons)`` for one request: the decision is ``"permit"``,
    ``"deny"`` or ``"forbid"``; the reasons are the ids of the policies that
    determine it (``owner``/``role-grant`` for a permit, ``suspended``/
    ``secret-clearance`` for a forbid, none for a deny)."""
    owner = w.doc_owner[doc] == user
    forbids = set()
    if user in w.suspended:
        forbids.add("suspended")
    if w.doc_class[doc] == "secret" and w.clearance[user] < 3 and not owner:
        forbids.add("secret-clearance")
    if forbids:
        return "forbid", frozenset(forbids)
    permits = set()
    if owner:
        permits.add("owner")
    my_groups = set()
    for g in w.user_groups[user]:
        my_groups.update(_up(g, w.group_parent))
    doc_folders = set(_up(w.doc_folder[doc], w.folder_parent))
    for g, role, f in w.grants:
        if g in my_groups and f in doc_folders and action in ROLES[role]:
            permits.add("role-grant")
    if permits:
        return "permit", frozenset(permits)
    return "deny", frozenset()


def oracle_decision(w: World, user: str, action: str, doc: str) -> str:
    """``"permit"``, ``"deny"`` or ``"forbid"`` for one request."""
    return oracle(w, user, action, doc)[0]


def requests(w: World, n: int = N_REQUESTS, seed: int = 7) -> list[tuple[str, str, str, str]]:
    """``n`` requests ``(user, action, doc, expected)``, half allowed.

    Candidates come from three generators, so both halves mix the ways a
    decision can be reached: a uniformly random triple; a document's owner
    (then sometimes a suspended or other user instead); a document below a
    folder granted to one of the user's groups (hits and misses on the role's
    actions). The first n/2 allowed and n/2 denied candidates are kept and
    shuffled together.
    """
    rng = random.Random(seed)
    by_folder: dict[str, list[str]] = {}
    for d in w.docs:
        for f in _up(w.doc_folder[d], w.folder_parent):
            by_folder.setdefault(f, []).append(d)
    allowed: list[tuple[str, str, str, str]] = []
    denied: list[tuple[str, str, str, str]] = []
    seen = set()
    while len(allowed) < n // 2 or len(denied) < n // 2:
        kind = rng.random()
        action = rng.choice(ACTIONS)
        if kind < 0.3:
            user, doc = rng.choice(w.users), rng.choice(w.docs)
        elif kind < 0.5:
            doc = rng.choice(w.docs)
            user = w.doc_owner[doc]
        else:
            g, _role, f = rng.choice(w.grants)
            members = [u for u in w.users if any(g in _up(x, w.group_parent) for x in w.user_groups[u])]
            if not members:
                continue
            user, doc = rng.choice(members), rng.choice(by_folder[f])
        if (user, action, doc) in seen:
            continue
        seen.add((user, action, doc))
        expected = oracle_decision(w, user, action, doc)
        bucket = allowed if expected == "permit" else denied
        if len(bucket) < n // 2:
            bucket.append((user, action, doc, expected))
    out = allowed + denied
    rng.shuffle(out)
    return out


# ---------------------------------------------------------------------------
# rune_fast: one .rune text


RUNE_RULES = """\
# Transitive group membership (users and groups alike).
member_of(M, G) :- member(M, G).
member_of(M, G) :- member_of(M, H), member(H, G).

# folder_anc(F, A): A is F or an ancestor of F.
folder_anc(F, F) :- folder(F).
folder_anc(F, A) :- folder_parent(F, P), folder_anc(P, A).

# What a principal may do on everything directly in folder F.
can_folder(U, Act, F) :- member_of(U, G), grant(G, Role, F0), role_action(Role, Act), folder_anc(F, F0).
"""

RUNE_POLICIES = """\
@id("role-grant")
permit(principal is User, action, resource is Document)
  when { can_folder(principal, action, resource.folder) };

@id("owner")
permit(principal is User, action, resource is Document)
  when { resource.owner == principal };

@id("suspended")
forbid(principal is User, action, resource)
  when { principal.suspended };

@id("secret-clearance")
forbid(principal is User, action, resource is Document)
  when { resource.classification == "secret" && principal.clearance < 3 && resource.owner != principal };
"""


def _e(t: str, i: str) -> str:
    """A TOML literal string holding the entity literal ``T::"i"``."""
    return f"'{t}::\"{i}\"'"


def rune_data_toml(w: World) -> str:
    """The ``[data]`` section's body alone (a TOML document)."""
    L = []
    L.append("member = [")
    for u in w.users:
        for g in w.user_groups[u]:
            L.append(f"  [{_e('User', u)}, {_e('Group', g)}],")
    for g, p in w.group_parent.items():
        L.append(f"  [{_e('Group', g)}, {_e('Group', p)}],")
    L.append("]")
    L.append("folder = [" + ", ".join(_e("Folder", f) for f in w.folders) + "]")
    L.append("folder_parent = [")
    for f, p in w.folder_parent.items():
        L.append(f"  [{_e('Folder', f)}, {_e('Folder', p)}],")
    L.append("]")
    L.append("grant = [")
    for g, role, f in w.grants:
        L.append(f'  [{_e("Group", g)}, "{role}", {_e("Folder", f)}],')
    L.append("]")
    L.append("role_action = [")
    for role, acts in ROLES.items():
        for a in acts:
            L.append(f'  ["{role}", {_e("Action", a)}],')
    L.append("]")
    L.append("attr = [")
    for u in w.users:
        L.append(f'  [{_e("User", u)}, "clearance", {w.clearance[u]}],')
        L.append(f'  [{_e("User", u)}, "suspended", {"true" if u in w.suspended else "false"}],')
    for d in w.docs:
        L.append(f'  [{_e("Document", d)}, "folder", {_e("Folder", w.doc_folder[d])}],')
        L.append(f'  [{_e("Document", d)}, "owner", {_e("User", w.doc_owner[d])}],')
        L.append(f'  [{_e("Document", d)}, "classification", "{w.doc_class[d]}"],')
    L.append("]")
    return "\n".join(L) + "\n"


def rune_text(w: World) -> str:
    return (
        'version = "rune/1"\n\n'
        "[metadata]\n"
        f'name = "doc_sharing_bench"\nseed = {w.seed}\n\n'
        "[data]\n" + rune_data_toml(w) + "\n"
        "[rules]\n" + RUNE_RULES + "\n"
        "[policies]\n" + RUNE_POLICIES
    )


def rune_request(user: str, action: str, doc: str) -> tuple[str, str, str]:
    """The (principal, action, resource) literals passed to ``authorize``."""
    return (f'User::"{user}"', f'Action::"{action}"', f'Document::"{doc}"')


# ---------------------------------------------------------------------------
# Cedar


def cedar_policies(w: World) -> str:
    P = [
        ('@id("owner")\npermit(principal is User, action, resource is Document)\n'
         "  when { resource.owner == principal };"),
        '@id("suspended")\nforbid(principal is User, action, resource)\n  when { principal.suspended };',
        ('@id("secret-clearance")\nforbid(principal is User, action, resource is Document)\n'
         '  when { resource.classification == "secret" && principal.clearance < 3 && resource.owner != principal };'),
    ]
    for i, (g, role, f) in enumerate(w.grants):
        acts = ", ".join(f'Action::"{a}"' for a in ROLES[role])
        P.append(f'@id("grant{i}")\npermit(principal in Group::"{g}", action in [{acts}], resource in Folder::"{f}");')
    return "\n\n".join(P) + "\n"


def cedar_entities(w: World) -> list[dict]:
    def uid(t: str, i: str) -> dict:
        return {"type": t, "id": i}

    out = []
    for u in w.users:
        out.append({"uid": uid("User", u),
                    "attrs": {"clearance": w.clearance[u], "suspended": u in w.suspended},
                    "parents": [uid("Group", g) for g in w.user_groups[u]]})
    for g in w.groups:
        ps = [uid("Group", w.group_parent[g])] if g in w.group_parent else []
        out.append({"uid": uid("Group", g), "attrs": {}, "parents": ps})
    for f in w.folders:
        ps = [uid("Folder", w.folder_parent[f])] if f in w.folder_parent else []
        out.append({"uid": uid("Folder", f), "attrs": {}, "parents": ps})
    for a in ACTIONS:
        out.append({"uid": uid("Action", a), "attrs": {}, "parents": []})
    for d in w.docs:
        out.append({"uid": uid("Document", d),
                    "attrs": {"owner": {"__entity": uid("User", w.doc_owner[d])},
                              "classification": w.doc_class[d]},
                    "parents": [uid("Folder", w.doc_folder[d])]})
    return out


def cedar_entities_json(w: World) -> str:
    return json.dumps(cedar_entities(w))


def cedar_request(user: str, action: str, doc: str) -> dict:
    return {"principal": f'User::"{user}"', "action": f'Action::"{action}"',
            "resource": f'Document::"{doc}"', "context": {}}


# ---------------------------------------------------------------------------
# casbin

CASBIN_MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _
g2 = _, _
g3 = _, _
g4 = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == "owner" && g3(r.obj, r.sub)) || (p.sub == "suspended" && g(r.sub, p.sub)) || (p.sub == "lowclear" && g(r.sub, p.sub) && g2(r.obj, "secret") && !g3(r.obj, r.sub)) || (g4(r.act, p.act) && g(r.sub, p.sub) && g2(r.obj, p.obj))
"""


def casbin_model() -> str:
    """The casbin model (see the module docstring for what is precomputed)."""
    return CASBIN_MODEL


def casbin_policy_lines(w: World) -> list[str]:
    """CSV lines of the casbin policy: ``p`` rules and ``g``..``g4`` links.

    Names are plain ids (``u1``, ``g3``, ``f7``, ``d42``, ``read``, ``viewer``),
    unique across kinds, plus the marker roles ``owner``, ``suspended``,
    ``lowclear`` and the marker container ``secret``.
    """
    L = ["p, owner, *, *, allow", "p, suspended, *, *, deny", "p, lowclear, secret, *, deny"]
    for g, role, f in w.grants:
        L.append(f"p, {g}, {f}, {role}, allow")
    for u in w.users:
        for g in w.user_groups[u]:
            L.append(f"g, {u}, {g}")
        if u in w.suspended:
            L.append(f"g, {u}, suspended")  # precomputed: the boolean attribute
        if w.clearance[u] < 3:
            L.append(f"g, {u}, lowclear")  # precomputed: the numeric comparison
    for g, p in w.group_parent.items():
        L.append(f"g, {g}, {p}")
    for f, p in w.folder_parent.items():
        L.append(f"g2, {f}, {p}")
    for d in w.docs:
        L.append(f"g2, {d}, {w.doc_folder[d]}")
        if w.doc_class[d] == "secret":
            L.append(f"g2, {d}, secret")  # precomputed: the classification test
        L.append(f"g3, {d}, {w.doc_owner[d]}")
    for role, acts in ROLES.items():
        for a in acts:
            L.append(f"g4, {a}, {role}")
    return L


def casbin_enforcer(w: World):
    """A ``casbin.Enforcer`` loaded with the model and policy (temp files)."""
    import os
    import tempfile

    import casbin

    d = tempfile.mkdtemp(prefix="rune_casbin_")
    mp, pp = os.path.join(d, "model.conf"), os.path.join(d, "policy.csv")
    with open(mp, "w") as fh:
        fh.write(casbin_model())
    with open(pp, "w") as fh:
        fh.write("\n".join(casbin_policy_lines(w)) + "\n")
    try:
        e = casbin.Enforcer(mp, pp)
    finally:
        os.remove(mp)
        os.remove(pp)
        os.rmdir(d)
    e.enable_log(False) if hasattr(e, "enable_log") else None
    return e


# ---------------------------------------------------------------------------
# Verification


def verify(w: World | None = None, reqs=None, *, casbin: bool = True, out=print) -> dict[str, int]:
    """Decide every request with each engine and compare with the oracle.

    Returns mismatch counts per engine (0 everywhere is required).
    rune_fast must match the oracle's decision exactly (permit/deny/forbid)
    and its reasons must be the oracle's; cedarpy's decision kind (a denial
    with forbid reasons is ``forbid``) and reasons (``grantN`` read as
    ``role-grant``) too; casbin reports only allow/deny.
    """
    import cedarpy

    import rune_fast

    w = w or make_world()
    reqs = reqs or requests(w)
    counts: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for *_r, exp in reqs:
        by_kind[exp] = by_kind.get(exp, 0) + 1
    out(f"requests: {len(reqs)} {by_kind}")

    engine = rune_fast.load_text(rune_text(w), cache_size=0)
    bad = 0
    for u, a, d, exp in reqs:
        dec = engine.authorize(*rune_request(u, a, d))
        exp_reasons = oracle(w, u, a, d)[1]
        if (dec.decision != exp or dec.allowed != (exp == "permit") or dec.errors
                or frozenset(dec.reasons) != exp_reasons):
            bad += 1
            if bad <= 5:
                out(f"  rune_fast mismatch {u} {a} {d}: {dec.decision} {dec.reasons} {dec.errors}"
                    f" expected {exp} {sorted(exp_reasons)}")
    counts["rune_fast"] = bad
    batch = engine.authorize_batch([rune_request(u, a, d) for u, a, d, _ in reqs])
    counts["rune_fast batch"] = sum(dec.decision != exp for dec, (*_x, exp) in zip(batch, reqs))
    cached = rune_fast.load_text(rune_text(w))
    for _ in range(2):  # the second pass is all cache hits
        bad = 0
        for u, a, d, exp in reqs:
            bad += cached.authorize(*rune_request(u, a, d)).decision != exp
    counts["rune_fast cached"] = bad

    def cedar_kind(res) -> tuple[str, frozenset]:
        ids = res.diagnostics.id_annotations_by_reason  # Cedar's policyN -> @id
        reasons = frozenset("role-grant" if ids[r].startswith("grant") else ids[r] for r in res.diagnostics.reasons)
        if res.allowed:
            return "permit", reasons
        return ("forbid" if reasons else "deny"), reasons

    ps = cedarpy.PolicySet.from_str(cedar_policies(w))
    ents = cedarpy.Entities.from_json_str(cedar_entities_json(w))
    bad = 0
    for u, a, d, _exp in reqs:
        res = cedarpy.is_authorized(cedar_request(u, a, d), ps, ents)
        got = cedar_kind(res)
        if got != oracle(w, u, a, d) or res.diagnostics.errors:
            bad += 1
            if bad <= 5:
                out(f"  cedarpy mismatch {u} {a} {d}: {got} expected {oracle(w, u, a, d)}")
    counts["cedarpy"] = bad
    res = cedarpy.is_authorized_batch([cedar_request(u, a, d) for u, a, d, _ in reqs], ps, ents)
    counts["cedarpy batch"] = sum(cedar_kind(r)[0] != exp for r, (*_x, exp) in zip(res, reqs))

    if casbin:
        e = casbin_enforcer(w)
        bad = 0
        for u, a, d, exp in reqs:
            if e.enforce(u, d, a) != (exp == "permit"):
                bad += 1
                if bad <= 5:
                    out(f"  casbin mismatch {u} {a} {d}: expected {exp}")
        counts["casbin"] = bad
    for k, v in counts.items():
        out(f"{k:>18}: {len(reqs) - v} match, {v} mismatch")
    return counts


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout
    import rune_fast

    print(f"rune_fast from {os.path.dirname(rune_fast.__file__)}")
    w = make_world()
    text = rune_text(w)
    print(f"rune text: {len(text):,} chars; cedar entities JSON: {len(cedar_entities_json(w)):,} chars")
    sys.exit(1 if any(verify(w).values()) else 0)
