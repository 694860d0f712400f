"""asv benchmarks of the Datalog core (workloads.py; results in docs/performance.md).

Run from ``asv_benchmarks/``: ``asv run --python=same`` (environment "existing"),
or one class quickly: ``asv run --python=same -b TimeDatalog --quick``.

* ``TimeDatalog``: every workload of ``workloads.py`` on the compiled core --
  evaluation only (``Model.size``, no Python tuples), end to end (every output
  tuple as Python values), peak memory, and the number of derived tuples;
* ``TimePureCore``: the plain-Python twin of the core on the small workloads;
* ``TimeCompile``: ``Program(rules)`` (parse, check, plan);
* ``SourceLoad``: 10^6 binary facts from a CSV ``[sources]`` file into a
  program -- wall time and resident bytes per fact.

Inputs are built in ``setup`` (facts are seeded, so every run sees the same
ones); the timed functions only evaluate. No timing is asserted anywhere.
"""

from __future__ import annotations

import os
import tempfile

import rune_fast.datalog._pycore
from rune_fast.datalog import Program

from . import workloads

ALL = list(workloads.WORKLOADS)
SMALL = ["tc_chain_200", "tc_chain_500", "same_generation", "reach_negation"]


class TimeDatalog:
    params = [ALL]
    param_names = ["workload"]
    timeout = 600
    repeat = (1, 5, 30.0)
    number = 1

    def setup(self, name):
        self.w = workloads.get(name)
        self.prog = Program(self.w.rules)

    def time_evaluate(self, name):
        m = self.prog.evaluate(self.w.facts)
        for o in self.w.outputs:
            m.size(o)

    def time_end_to_end(self, name):
        m = self.prog.evaluate(self.w.facts)
        for o in self.w.outputs:
            m.relation(o)

    def peakmem_end_to_end(self, name):
        m = self.prog.evaluate(self.w.facts)
        for o in self.w.outputs:
            m.relation(o)

    def track_derived_tuples(self, name):
        m = self.prog.evaluate(self.w.facts)
        return sum(m.size(o) for o in self.w.outputs)

    track_derived_tuples.unit = "tuples"


class TimePureCore:
    """The same programs on ``rune_fast.datalog._pycore`` (what Cython buys, in-tree)."""

    params = [SMALL]
    param_names = ["workload"]
    timeout = 600
    repeat = (1, 3, 30.0)
    number = 1

    def setup(self, name):
        self.w = workloads.get(name)
        self.prog = Program(self.w.rules, _core_module=rune_fast.datalog._pycore)

    def time_end_to_end(self, name):
        m = self.prog.evaluate(self.w.facts)
        for o in self.w.outputs:
            m.relation(o)


class TimeCompile:
    params = [["tc_chain_200", "same_generation", "reach_negation", "auth"]]
    param_names = ["workload"]

    def setup(self, name):
        self.rules = workloads.get(name).rules

    def time_compile(self, name):
        Program(self.rules)


class SourceLoad:
    """10^6 ``member(user, group)`` facts from a CSV source file into a program.

    Goals: <= 2 s and <= 64 resident bytes per fact.
    """

    params = [list(workloads.SOURCE_KINDS)]
    param_names = ["values"]
    timeout = 600
    repeat = (1, 3, 60.0)
    number = 1
    n = 1_000_000

    def setup(self, kind):
        self.path = os.path.join(tempfile.gettempdir(), f"rune_fast_asv_member_{kind}_{self.n}.csv")
        if not os.path.exists(self.path):
            workloads.write_member_csv(self.path + ".tmp", self.n, kind)
            os.replace(self.path + ".tmp", self.path)

    def time_load(self, kind):
        workloads.load_member_source(self.path)

    def peakmem_load(self, kind):
        workloads.load_member_source(self.path)

    def track_load_seconds(self, kind):
        return workloads.measure_source_load(self.path)["total_s"]

    track_load_seconds.unit = "seconds"

    def track_bytes_per_fact(self, kind):
        """RSS the loaded model keeps per fact (parsed Python rows freed)."""
        return workloads.measure_source_load(self.path)["bytes_per_fact"]

    track_bytes_per_fact.unit = "bytes/fact"
