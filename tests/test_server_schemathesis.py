"""Property-based testing of a live `rune serve` from its own /openapi.json.

schemathesis generates requests for every operation (valid and invalid
bodies, query parameters, admin calls with and without the token) and checks
that nothing answers 5xx, that every status is documented and that every
JSON body matches the documented schema. The example count per operation is
bounded so the run stays around half a minute on 2 cores.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

from server_helpers import AUTHZEN_DIR, Server, free_port, rune_cmd

MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = tmp_path_factory.mktemp("schemathesis")
    token = d / "token"
    token.write_text("tok")
    port = free_port()
    srv = Server(rune_cmd(AUTHZEN_DIR, port, "--workers", "2", "--admin-token-file", str(token), "--no-watch"), port, d)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(live.url + "/openapi.json")


def test_no_5xx_and_responses_match_schema(api_schema):
    # The operations are driven one by one with hypothesis directly (the
    # schemathesis pytest plugin's fixture mode does not support pytest 9).
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    from rune_fast.server.app import ROUTES

    # (schemathesis leaves out the operation that serves the schema itself)
    assert {op.label for op in operations} == {f"{r.method} {r.path}" for r in ROUTES} - {"GET /openapi.json"}

    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def run(case):
            case.call_and_validate(checks=checks, timeout=10)

        run()
