"""urql with its defaults (queries over GET) and a graphql-ws subscription."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import run_node
from tests.conftest import Server

pytestmark = [pytest.mark.services, pytest.mark.clients]


async def test_urql_queries_over_get_and_streams_over_graphql_ws(
    api: Server, node_modules: Path
) -> None:
    result = await run_node("urql.mjs", env={"CK_URL": api.url})
    steps = result["steps"]
    # its bare GET carries no CSRF-safe header: refused, as Apollo Server would
    assert steps["bare GET is refused (CSRF)"]["status"] == 400
    # with `apollo-require-preflight` in fetchOptions, queries go over GET
    assert steps["query over GET"]["method"] == "GET"
    assert "write" in steps["query over GET"]["tools"]
    assert steps["subscribe write"]["text"]
    gets = [r for r in result["requests"] if r["method"] == "GET" and r["status"] == 200]
    assert {r["operationName"] for r in gets} == {"Tools", "Me"}
