"""``asv_benchmarks/compare_datalog.py``: engines take turns over rounds, and
each keeps its best time (``merge_rounds``)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

PATH = pathlib.Path(__file__).resolve().parent.parent / "asv_benchmarks" / "compare_datalog.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_datalog", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(e2e, ev=None, rss=10.0, **extra):
    r = {"e2e": e2e, "e2e_runs": [e2e], "counts": {"p": 3}, "fingerprints": {"p": "x"}, "maxrss_mb": rss, **extra}
    if ev is not None:
        r["eval"], r["eval_runs"] = ev, [ev]
    return r


def test_best_times_every_run_and_the_highest_rss(compare):
    merged = compare.merge_rounds(compare.merge_rounds(None, run(0.5, 0.2, rss=12)), run(0.3, 0.4, rss=9))
    assert (merged["e2e"], merged["eval"]) == (0.3, 0.2)
    assert merged["e2e_runs"] == [0.5, 0.3] and merged["eval_runs"] == [0.2, 0.4]
    assert merged["maxrss_mb"] == 12


def test_a_mismatch_or_a_set_check_in_any_round_stays(compare):
    merged = compare.merge_rounds(run(0.5, mismatch=True, set_checked=True), run(0.4))
    assert merged["mismatch"] and merged["set_checked"] and merged["e2e"] == 0.4
    assert "eval" not in merged                                    # engines without an eval timing


def test_a_failed_round_keeps_the_other_rounds_results(compare):
    ok = run(0.5, 0.2)
    assert compare.merge_rounds(ok, {"timeout": 600.0}) is ok
    assert compare.merge_rounds({"error": "crashed"}, ok) is ok
    assert compare.merge_rounds(None, {"timeout": 600.0}) == {"timeout": 600.0}
