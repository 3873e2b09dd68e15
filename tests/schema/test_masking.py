"""Unexpected errors are masked on every transport before they leave: a subscription whose
stream breaks mid-way (both websocket protocols) and a query over graphql-transport-ws, as
over HTTP (tests/schema/test_http.py). The masking runs where strawberry hands every result's
errors over (`Schema.process_errors`), not in a per-result extension hook."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest

from resolvers import creation as use_cases
from resolvers.streaming.events import Event, EventKind
from tests.conftest import Server, open_socket

SECRET = "secret database detail"
EVENTS = """subscription E($id: ID!) {
  creationEvents(id: $id) { __typename seq ... on TokenDelta { text } }
}"""
CREATIONS = "query { creations(first: 1) { edges { node { id } } } }"


def _assert_masked(errors: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    assert len(errors) == 1 and SECRET not in str(errors)
    error = errors[0]
    assert error["extensions"]["code"] == "INTERNAL"
    reference = error["extensions"]["reference"]
    assert reference in error["message"]
    logged = [r for r in caplog.records if SECRET in str(r.exc_info)]
    assert len(logged) == 1 and reference in logged[0].getMessage()


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_stream_that_breaks_mid_way_sends_a_masked_error(
    server: Server,
    token: str,
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def breaking(**kwargs: Any) -> AsyncGenerator[Event, None]:
        async def events() -> AsyncGenerator[Event, None]:
            yield Event(str(kwargs["creation_id"]), 1, EventKind.STARTED, model="m")
            raise RuntimeError(SECRET)

        return events()

    monkeypatch.setattr(use_cases, "follow_creation", breaking)
    creation_id = "00000000-0000-4000-8000-000000000001"
    async with open_socket(server.ws_url, token, protocol) as sock:
        op = await sock.subscribe(EVENTS, {"id": creation_id})
        first = await sock.receive()
        assert first["id"] == op and first["payload"]["data"]["creationEvents"]["seq"] == 1
        broken = await sock.receive()
    assert broken["id"] == op and broken["type"] in ("next", "data")
    _assert_masked(broken["payload"]["errors"], caplog)


async def test_a_query_over_the_websocket_gets_a_masked_error(
    server: Server, token: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(**_kwargs: Any) -> None:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(use_cases, "list_creations", broken)
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(CREATIONS)
        message = await sock.receive()
    assert message["id"] == op and message["type"] == "next"
    _assert_masked(message["payload"]["errors"], caplog)
