"""The server's OpenAPI document, fuzzed (schemathesis): no request it describes gets a 500,
and every error is in OpenAI's envelope."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Runner
from tests.server import chinwag_serve


def test_no_request_the_document_describes_breaks_the_server(run: Runner) -> None:
    with chinwag_serve(run.env) as (base, _):
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        results: list[Any] = list(schema.get_all_operations())
        operations = [result.ok() for result in results]  # an invalid document fails here
        assert len(operations) >= 15
        calls = 0
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=12,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(timeout=30)
                where = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500, f"{where}: {response.text[:500]}"
                if response.status_code >= 400:
                    assert set(response.json()["error"]) >= {"message", "type", "code"}, where

            check()
        assert calls >= 5 * len(operations)  # the fuzz really ran
