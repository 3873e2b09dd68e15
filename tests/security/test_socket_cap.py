"""Issue 11, finding 10: one user opened 500 websockets in 3.4 s. Sockets are capped per user
and per client address, each process; the one over is closed with 4429 and says why."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving


async def refused(ws_url: str, token: str | None, protocol: str) -> websockets.ConnectionClosed:
    """What closes a socket that the server refuses at or before `connection_init`."""
    async with websockets.connect(ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        init = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            while True:
                message = json.loads(await ws.recv())
                assert message["type"] not in ("connection_ack",), message
        except websockets.ConnectionClosed as closed:
            return closed
    raise AssertionError("the socket was not closed")


async def opens(ws_url: str, token: str | None, protocol: str) -> None:
    """A socket is accepted again once the server has seen the others close (it releases
    their places as it notices, a moment after the client's close handshake)."""
    async with asyncio.timeout(10):
        while True:
            try:
                async with open_socket(ws_url, token, protocol=protocol):
                    return
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4429, closed


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_users_socket_over_the_cap_is_closed_with_a_reason(
    settings: Settings, protocol: str
) -> None:
    async with serving(settings, max_sockets_per_user=2) as (server, gql, token):
        async with (
            open_socket(server.ws_url, token, protocol=protocol),
            open_socket(server.ws_url, token, protocol=protocol),
        ):
            # when the same user opens one more
            closed = await refused(server.ws_url, token, protocol)
            # while another user is not affected
            async with open_socket(server.ws_url, await gql.register(), protocol=protocol):
                pass
        # and a closed socket frees its place
        await opens(server.ws_url, token, protocol)

    assert closed.rcvd is not None
    assert closed.rcvd.code == 4429
    assert "too many open sockets for this account" in closed.rcvd.reason


async def test_an_addresss_socket_over_the_cap_is_closed_with_a_reason(
    settings: Settings,
) -> None:
    async with serving(settings, max_sockets_per_address=2) as (server, _gql, token):
        async with open_socket(server.ws_url), open_socket(server.ws_url, token):
            closed = await refused(server.ws_url, None, "graphql-transport-ws")
        await opens(server.ws_url, None, "graphql-transport-ws")

    assert closed.rcvd is not None
    assert closed.rcvd.code == 4429
    assert "too many open sockets from this address" in closed.rcvd.reason
