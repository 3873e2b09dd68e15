"""Apollo Client 4 (graphql-ws, APQ over GET, InMemoryCache) against a running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.conftest import run_node
from tests.conftest import Server

pytestmark = [pytest.mark.services, pytest.mark.clients]


async def test_apollo_client_queries_streams_pages_cancels_with_apq_and_no_warnings(
    api: Server, node_modules: Path
) -> None:
    # Apollo's development build: the one that warns about cache misuse
    result = await run_node(
        "apollo.mjs", node_options=("--conditions=development",), env={"CK_URL": api.url}
    )
    steps = result["steps"]
    assert "write" in steps["query tools"]["tools"]
    assert steps["me signed out"]["me"] is None
    stream = steps["subscribe write"]
    assert stream["terminal"] == "CreationCompleted" and stream["text"]
    assert {"CreationStarted", "TokenDelta", "CreationCompleted"} <= set(stream["types"])
    assert steps["paginate creations"]["pages"] == [2, 2, 1]
    cancel = steps["cancel updates the cache"]
    assert cancel["statuses"][-1] == "CANCELLED"
    assert set(cancel["requestsAfterCancel"]) == {"Cancel"}
    assert steps["apq over GET"]["hashedGets"] >= 1
    assert result["console"] == []
