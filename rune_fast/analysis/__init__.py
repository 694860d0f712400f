"""Questions about an engine beyond "is this allowed?": search ("who can do
what", ``search.py`` and its fast path ``plan.py``) and explanations ("why",
``explain.py`` with proof trees from ``proofs.py``, fact locations from
``locate.py`` and source text from ``render.py``). Nothing here runs on the
``authorize`` path."""
