"""asv benchmarks of search and explain on the 100,000-document scenario
(``search_scenario.py``; its docstring describes the model). The engine is
built with ``cache_size=0``, so every ``authorize`` is computed.

- ``TimeSearch.time_search_resources``: ``search_resources`` (all pages) for
  one user and ``read``; ``time_authorize_every_candidate``: the baseline, one
  ``authorize`` per document for the same user and action.
- ``TimeSearch.time_search_subjects``: readers of one document.
- ``TimeSearch.time_explain_permit``: ``explain`` of 50 permitted requests
  (warm: the row locations were read once in ``setup``).

``asv_benchmarks/compare_search.py`` prints the same comparison as a table,
after checking search against ``authorize`` for every candidate.
"""

from __future__ import annotations

import functools
import os
import sys

try:
    from . import search_scenario as S
except ImportError:  # run or imported as a plain module
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import search_scenario as S  # type: ignore[no-redef]

import rune_fast

READ = 'Action::"read"'


@functools.cache
def engine():
    return rune_fast.load_text(S.rune_text(), cache_size=0)


class TimeSearch:
    timeout = 600

    def setup(self):
        self.engine = engine()
        self.user = S.users(1)[0]
        self.docs = [rune_fast.Entity("Document", f"d{i}") for i in range(S.N_DOCS)]
        page = self.engine.search_resources(self.user, READ, "Document", limit=50)
        self.permitted = [(self.user, READ, d) for d in page.results]
        for req in self.permitted:
            self.engine.explain(*req)

    def time_search_resources(self):
        token = None
        while True:
            page = self.engine.search_resources(self.user, READ, "Document", limit=10_000, page_token=token)
            token = page.next_token
            if token is None:
                break

    def time_authorize_every_candidate(self):
        authorize = self.engine.authorize
        u = self.user
        for d in self.docs:
            authorize(u, READ, d)

    def time_search_subjects(self):
        self.engine.search_subjects(READ, self.docs[0], "User", limit=10_000)

    def time_explain_permit(self):
        explain = self.engine.explain
        for req in self.permitted:
            explain(*req)
