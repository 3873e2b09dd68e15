"""Frames that are not JSON text, on both websocket protocols: the socket's reader
(`schema.websocket.WebSocketAdapter`) answers them as strawberry does, and a socket that
goes on after a bad frame on the legacy protocol still runs its operations."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import Server, open_socket

WRITE = "subscription W($input: WriteInput!) { write(input: $input) { __typename seq } }"


async def _closed(ws: websockets.ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    received = closed.value.rcvd
    assert received is not None
    return received.code, received.reason


@pytest.mark.parametrize(
    ("frame", "reason"),
    [("{not json", "WebSocket message must be valid JSON"), (b"\x00\x01", "must be text")],
)
async def test_graphql_transport_ws_closes_on_a_frame_that_is_not_json_text(
    server: Server, token: str, frame: str | bytes, reason: str
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        await sock.ws.send(frame)
        code, said = await _closed(sock.ws)
    assert code == 4400 and reason in said


async def test_the_legacy_protocol_skips_bad_json_and_closes_on_binary(
    server: Server, token: str
) -> None:
    async with open_socket(server.ws_url, token, "graphql-ws") as sock:
        await sock.ws.send("{not json")  # ignored, as strawberry ignores it
        op = await sock.subscribe(WRITE, {"input": {"prompt": "a kite", "maxTokens": 3}})
        events = await sock.collect(op)
        assert events[0]["write"]["__typename"] == "CreationStarted"
        assert events[-1]["write"]["__typename"] == "CreationCompleted"
        await sock.ws.send(b"\x00")
        code, said = await _closed(sock.ws)
    assert code == 1002 and "must be text" in said
