"""A large, seeded scenario for search and explain.

- 100,000 documents in a three-level folder tree (10 top folders, 100
  middle, 1,000 leaf folders; every document in a leaf folder), each with a
  ``folder`` attribute, an owner and a classification (public / internal /
  secret, secret for ~10 %);
- 500 users (clearance 1-5, 2 % suspended), each a direct member of 1-2 of
  40 groups nested in three tiers (5 top, 10 middle, 25 leaf);
- 150 grants (group, role, folder) at any level of the tree; a grant covers
  the folder and everything below it; roles viewer = {read},
  editor = {read, write}, admin = {read, write, delete, share};
- ``parent`` facts for the hierarchy (documents -> leaf folder -> middle ->
  top, users -> groups -> groups), so ``in`` works in policies;
- an ``Auditors`` group whose members may read everything in the
  ``archive`` top folder.

Policies (the shapes search must handle, each through an index):

- ``permit … when { can_folder(principal, action, resource.folder) }``: a
  relation computed by the rules at folder granularity (no user x document
  relation is materialised), reached through the document's attribute;
- ``permit … when { resource.owner == principal }``: attribute equality;
- ``permit(principal in Group::"auditors", action == Action::"read",
  resource in Folder::"archive")``: the hierarchy;
- ``forbid … when { principal.suspended }`` (does not depend on the
  resource) and ``forbid … when { resource.classification == "secret" &&
  principal.clearance < 3 && resource.owner != principal }``.

Run ``python asv_benchmarks/compare_search.py`` for the numbers (it checks
search against authorize over every candidate first).
"""

from __future__ import annotations

import functools
import itertools
import random

N_DOCS = 100_000
N_USERS = 500
FOLDER_TIERS = (10, 100, 1000)
GROUP_TIERS = (5, 10, 25)
N_GRANTS = 150
ROLES = {"viewer": ("read",), "editor": ("read", "write"), "admin": ("read", "write", "delete", "share")}
SEED = 20261129

RULES = """
in_group(M, G) :- member(M, G).
in_group(M, G) :- member(M, H), in_group(H, G).
folder_anc(F, F) :- folder(F).
folder_anc(F, A) :- folder_parent(F, P), folder_anc(P, A).
can_folder(U, Act, F) :- in_group(U, G), grant(G, Role, F0), folder_anc(F, F0), role_action(Role, Act).
"""

POLICIES = """
@id("grant")
permit(principal is User, action, resource is Document)
  when { can_folder(principal, action, resource.folder) };

@id("owner")
permit(principal is User, action, resource is Document)
  when { resource.owner == principal };

@id("auditors")
permit(principal in Group::"auditors", action == Action::"read", resource in Folder::"archive");

@id("suspended")
forbid(principal, action, resource)
  when { principal.suspended };

@id("secret")
forbid(principal, action, resource is Document)
  when { resource.classification == "secret" && principal.clearance < 3 && resource.owner != principal };
"""


def _e(t: str, i: str) -> str:
    return f"'{t}::\"{i}\"'"


@functools.cache
def rune_text(n_docs: int = N_DOCS, seed: int = SEED) -> str:
    """The scenario as one ``.rune`` text."""
    rng = random.Random(seed)
    tiers, n = [], 0
    for size in FOLDER_TIERS:
        tiers.append([f"f{n + i}" for i in range(size)])
        n += size
    tiers[0][0] = "archive"
    folder_parent = {f: rng.choice(up) for up, low in itertools.pairwise(tiers) for f in low}
    folders = [f for t in tiers for f in t]
    gtiers, n = [], 0
    for size in GROUP_TIERS:
        gtiers.append([f"g{n + i}" for i in range(size)])
        n += size
    gtiers[2][0] = "auditors"
    group_parent = {g: rng.choice(up) for up, low in itertools.pairwise(gtiers) for g in low}
    groups = [g for t in gtiers for g in t]
    users = [f"u{i}" for i in range(N_USERS)]
    membership = [(u, g) for u in users for g in rng.sample(groups, rng.randint(1, 2))]
    L = ['version = "rune/1"', "", "[data]", "member = ["]
    L += [f"  [{_e('User', u)}, {_e('Group', g)}]," for u, g in membership]
    L += [f"  [{_e('Group', g)}, {_e('Group', p)}]," for g, p in group_parent.items()]
    L.append("]")
    L.append("folder = [" + ", ".join(_e("Folder", f) for f in folders) + "]")
    L.append("folder_parent = [")
    L += [f"  [{_e('Folder', f)}, {_e('Folder', p)}]," for f, p in folder_parent.items()]
    L.append("]")
    L.append("grant = [")
    seen = set()
    while len(seen) < N_GRANTS:
        g, f = rng.choice(groups), rng.choice(folders)
        if (g, f) not in seen:
            seen.add((g, f))
            L.append(f'  [{_e("Group", g)}, "{rng.choice(tuple(ROLES))}", {_e("Folder", f)}],')
    L.append("]")
    L.append("role_action = [")
    L += [f'  ["{r}", {_e("Action", a)}],' for r, acts in ROLES.items() for a in acts]
    L.append("]")
    L.append("parent = [")
    docs = [(f"d{i}", rng.choice(tiers[2])) for i in range(n_docs)]
    L += [f"  [{_e('Document', d)}, {_e('Folder', f)}]," for d, f in docs]
    L += [f"  [{_e('Folder', f)}, {_e('Folder', p)}]," for f, p in folder_parent.items()]
    L += [f"  [{_e('User', u)}, {_e('Group', g)}]," for u, g in membership]
    L += [f"  [{_e('Group', g)}, {_e('Group', p)}]," for g, p in group_parent.items()]
    L.append("]")
    L.append("attr = [")
    suspended = set(rng.sample(users, N_USERS // 50))
    for u in users:
        L.append(f'  [{_e("User", u)}, "clearance", {rng.randint(1, 5)}],')
        L.append(f'  [{_e("User", u)}, "suspended", {"true" if u in suspended else "false"}],')
    for d, f in docs:
        L.append(f'  [{_e("Document", d)}, "folder", {_e("Folder", f)}],')
        L.append(f'  [{_e("Document", d)}, "owner", {_e("User", rng.choice(users))}],')
        cls = "secret" if rng.random() < 0.1 else rng.choice(("public", "internal"))
        L.append(f'  [{_e("Document", d)}, "classification", "{cls}"],')
    L.append("]")
    L += ["", "[rules]", RULES, "[policies]", POLICIES]
    return "\n".join(L) + "\n"


def users(n: int = 8, seed: int = 7) -> list[str]:
    """Principals for the measurements (seeded)."""
    rng = random.Random(seed)
    return [f'User::"u{i}"' for i in rng.sample(range(N_USERS), n)]
