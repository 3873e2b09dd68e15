"""Issue 11, finding 1: a logout or a key revocation reached no open socket. Sockets kept
running queries and mutations (`createApiKey` minted a 366-day key after the logout) for up
to 15 minutes, and OAuth client-credentials tokens outlived their revoked key over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import websockets
from redis.asyncio import Redis

from resolvers.access.sockets import Sockets
from resolvers.core.bus import Bus, ResilientRedisBackend
from resolvers.core.models import ApiKey
from resolvers.core.settings import Settings
from schema.app import Resources, create_app
from tests.conftest import Server, Socket, open_socket, serving
from tests.schema.test_apikeys import REVOKE, make_key
from tests.schema.test_oauth import request_token
from tests.schema.test_sessions import LOGOUT, sign_in, sign_up
from tests.schema.test_subscriptions import CANCEL, EVENTS, WRITE

ME = "{ me { id } }"
MINT = """
mutation { createApiKey(input: {name: "after logout", scopes: ["creations:read"]}) {
  __typename ... on NewApiKey { secret } ... on Error { code } } }
"""
KEYS = "{ apiKeys { id } }"
# 6 s at the test's pace: still streaming when the revocation lands, ended by teardown.
SLOW = {"input": {"prompt": "a long story", "maxTokens": 120}}


async def answer(
    sock: Socket, document: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one operation on the socket; its first message (next or error)."""
    op_id = await sock.subscribe(document, variables)
    while True:
        message = await sock.receive()
        if message.get("id") == op_id:
            return message


def error_code(message: dict[str, Any]) -> str | None:
    payload = message["payload"]
    errors = payload if message["type"] == "error" else payload.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def close_code(sock: Socket, timeout: float = 10) -> tuple[int, list[dict[str, Any]]]:
    """Wait for the server to close the socket: its close code, and what came before."""
    seen: list[dict[str, Any]] = []
    try:
        while True:
            seen.append(await sock.receive(timeout))
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, closed
        return closed.rcvd.code, seen


async def started(sock: Socket) -> tuple[str, str]:
    """A slow creation streaming on the socket (its first event arrived): the operation's
    id and the creation's."""
    op_id = await sock.subscribe(WRITE, SLOW)
    while True:
        message = await sock.receive()
        if message.get("id") == op_id:
            assert message["type"] == "next", message
            return op_id, message["payload"]["data"]["write"]["creationId"]


async def follows(sock: Socket, creation_id: str, timeout: float = 10) -> None:
    """Subscribe to the creation's events until a subscription slot is free for it."""
    async with asyncio.timeout(timeout):
        while True:
            message = await answer(sock, EVENTS, {"id": creation_id, "after": 0})
            if message["type"] == "next" and not message["payload"].get("errors"):
                return
            assert error_code(message) == "RATE_LIMITED", message


async def test_logout_over_http_closes_the_sessions_socket_and_its_subscription(
    settings: Settings,
) -> None:
    changes = {"dev_token_delay": 0.05, "max_subscriptions_per_user": 1}
    async with serving(settings, **changes) as (server, gql, _token):
        # given a session's socket that runs a subscription and queries
        person = await sign_up(gql)
        other = await sign_in(gql, person.email)
        async with open_socket(server.ws_url, person.access) as sock:
            op_id, creation_id = await started(sock)
            # when the session logs out over HTTP
            assert (await gql.query(LOGOUT, token=person.access))["logout"]["ok"] is True
            # then the socket is closed as revoked, and its subscription ends unfinished
            code, seen = await close_code(sock)
        assert code == 4403
        ours = [m for m in seen if m.get("id") == op_id]
        assert not [m for m in ours if m["type"] == "complete"], ours
        assert "CreationCompleted" not in str(ours)
        # and the server ended it: its subscription slot is free for the user's other session
        async with open_socket(server.ws_url, other.access) as again:
            await follows(again, creation_id)
        await gql.query(CANCEL, {"id": creation_id}, other.access)


async def test_a_socket_mints_no_key_after_its_session_logged_out(settings: Settings) -> None:
    async with serving(settings) as (server, gql, _token):
        person = await sign_up(gql)
        other = await sign_in(gql, person.email)
        async with open_socket(server.ws_url, person.access) as sock:
            assert (await answer(sock, ME))["payload"]["data"]["me"]["id"] == person.id
            await gql.query(LOGOUT, token=person.access)
            # the attack: mint a long-lived key on the socket after the logout
            try:
                refused = error_code(await answer(sock, MINT))
            except websockets.ConnectionClosed as closed:
                refused = f"closed {closed.rcvd.code if closed.rcvd else None}"
        assert refused in ("UNAUTHENTICATED", "closed 4403")
        assert (await gql.query(KEYS, token=other.access))["apiKeys"] == []


async def test_every_operation_on_a_socket_rechecks_its_key(settings: Settings) -> None:
    async with serving(settings) as (server, gql, token):
        secret, key_id = await make_key(gql, token, "creations:read")
        async with open_socket(server.ws_url, secret) as sock:
            assert "data" in (await answer(sock, ME))["payload"]
            # given a revocation no replica announced (as if pub/sub lost it)
            await ApiKey.filter(id=key_id).update(revoked_at=datetime.now(UTC))
            # then the next query is refused, and the socket is closed after it
            assert error_code(await answer(sock, ME)) == "UNAUTHENTICATED"
            code, _ = await close_code(sock)
        assert code == 4403


async def test_revoking_a_key_closes_its_sockets(settings: Settings) -> None:
    async with serving(settings, dev_token_delay=0.05) as (server, gql, token):
        secret, key_id = await make_key(gql, token, "tools:write", "creations:read")
        async with open_socket(server.ws_url, secret) as sock:
            _, creation_id = await started(sock)
            await gql.query(REVOKE, {"id": key_id}, token)
            code, _ = await close_code(sock)
        await gql.query(CANCEL, {"id": creation_id}, token)
        assert code == 4403


async def test_an_oauth_token_stops_working_when_its_key_is_revoked(
    settings: Settings,
) -> None:
    async with serving(settings) as (server, gql, token):
        secret, key_id = await make_key(gql, token, "creations:read")
        client_id = "_".join(secret.split("_")[:2])
        issued = await request_token(server, client_id, secret)
        assert issued.status_code == 200, issued.text
        access = issued.json()["access_token"]
        assert (await gql.query(ME, token=access))["me"]["id"]
        async with open_socket(server.ws_url, access) as sock:
            await gql.query(REVOKE, {"id": key_id}, token)
            # its socket is closed, and over HTTP it is refused at once
            code, _ = await close_code(sock)
            errors = await gql.errors(ME, token=access)
        assert code == 4403
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


@contextlib.asynccontextmanager
async def another_replica(first: Server, redis_url: str) -> AsyncIterator[Server]:
    """A second API replica: its own socket registry and its own pub/sub connection to
    Redis, sharing the first one's database and clients (Tortoise allows one ORM context
    per process, so two full apps cannot run in one test process)."""
    core = first.app.state.core
    redis = Redis.from_url(redis_url)
    bus = Bus(ResilientRedisBackend(redis))
    await bus.start()
    sockets = Sockets(per_user=20, per_address=100)
    sockets.listen(bus)
    own = dataclasses.replace(core, bus=bus, sockets=sockets)
    try:
        async with Server(create_app(core.settings, Resources(own, first.app.state.queue))) as s:
            yield s
    finally:
        await bus.stop()
        await redis.aclose()


async def test_a_logout_on_one_replica_closes_the_socket_on_another(
    settings: Settings, redis_url: str
) -> None:
    async with (
        serving(settings, dev_token_delay=0.05) as (first, gql, _token),
        another_replica(first, redis_url) as second,
    ):
        person = await sign_up(gql)
        other = await sign_in(gql, person.email)
        async with open_socket(second.ws_url, person.access) as sock:
            _, creation_id = await started(sock)
            # when the session logs out on the first replica
            assert (await gql.query(LOGOUT, token=person.access))["logout"]["ok"] is True
            # then the second closes the socket it holds
            code, _ = await close_code(sock)
        await gql.query(CANCEL, {"id": creation_id}, other.access)
        assert code == 4403


async def test_a_key_revoked_on_one_replica_closes_its_socket_on_another(
    settings: Settings, redis_url: str
) -> None:
    async with (
        serving(settings) as (first, gql, token),
        another_replica(first, redis_url) as second,
    ):
        secret, key_id = await make_key(gql, token, "creations:read")
        async with open_socket(second.ws_url, secret) as sock:
            assert "data" in (await answer(sock, ME))["payload"]
            await gql.query(REVOKE, {"id": key_id}, token)
            code, _ = await close_code(sock)
        assert code == 4403


async def test_other_sessions_sockets_stay_open(settings: Settings) -> None:
    async with serving(settings) as (server, gql, _token):
        person = await sign_up(gql)
        other = await sign_in(gql, person.email)
        async with (
            open_socket(server.ws_url, other.access) as kept,
            open_socket(server.ws_url, person.access) as ended,
        ):
            await gql.query(LOGOUT, token=person.access)
            assert (await close_code(ended))[0] == 4403
            assert (await answer(kept, ME))["payload"]["data"]["me"]["id"] == person.id
