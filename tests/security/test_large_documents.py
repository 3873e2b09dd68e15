"""Issue 11, finding 3: anonymous documents grew memory without bound (150 distinct ~1 MB
documents, a public query behind a long comment, added 407 MiB to the parse and validation
caches). Callers without credentials now send at most 16K characters, on every transport,
and no cache keeps a large document."""

from __future__ import annotations

import json
from typing import Any

import pytest

from resolvers.core.settings import Settings
from schema.parsing import CACHE_CHARS, cache_stats
from tests.conftest import open_socket, serving

TOOLS = "query Tools { tools { name } }"


def _padded(i: int, chars: int) -> str:
    return f"{TOOLS}\n# {i} " + "x" * chars  # distinct each time, as in the attack


async def test_anonymous_large_documents_are_refused_over_http(settings: Settings) -> None:
    async with serving(settings) as (_server, client, token):
        refused = (await client.raw(_padded(0, 20_000))).json()
        signed_in = (await client.raw(_padded(0, 20_000), token=token)).json()

    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "DOCUMENT_TOO_LARGE"
    assert signed_in == {"data": {"tools": signed_in["data"]["tools"]}}
    assert signed_in["data"]["tools"]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_anonymous_large_documents_are_refused_over_websockets(
    settings: Settings, protocol: str
) -> None:
    subscription = 'subscription { write(input: {prompt: "x"}) { seq } }\n#' + "x" * 20_000
    async with (
        serving(settings) as (server, _client, _token),
        open_socket(server.ws_url, None, protocol=protocol) as sock,
    ):
        op_id = await sock.subscribe(subscription)
        message = await _first_for(sock, op_id)

    assert "DOCUMENT_TOO_LARGE" in json.dumps(message["payload"])


async def test_many_large_documents_leave_the_caches_within_their_budget(
    settings: Settings,
) -> None:
    async with serving(settings) as (_server, client, token):
        before = cache_stats()
        for i in range(40):
            await client.raw(_padded(i, 20_000))  # anonymous: refused before any parse
            body = (await client.raw(_padded(i, 100_000), token=token)).json()
            assert body["data"]["tools"], body
        stats = cache_stats()

    # 4 MB of signed-in documents ran, none was kept (each is over the cacheable size)
    assert stats["parse_chars"] - before["parse_chars"] < 20_000
    assert stats["validation_chars"] - before["validation_chars"] < 20_000
    assert stats["parse_chars"] <= CACHE_CHARS


async def _first_for(sock: Any, op_id: str) -> dict[str, Any]:
    while True:
        message = await sock.receive()
        if message.get("id") == op_id and message["type"] != "complete":
            return message
