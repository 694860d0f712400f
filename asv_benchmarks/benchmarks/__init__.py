"""asv benchmarks of rune_fast (see ../asv.conf.json and docs/performance.md).

``workloads.py`` holds the seeded inputs, shared with ``../compare_datalog.py``;
``plain_seminaive.py`` is the plain-Python evaluator that script compares with.
"""
