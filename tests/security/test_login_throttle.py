"""Issue 11, finding 5: no login throttle. 60 wrong passwords went through in 17.6 s and the
right one still worked. Now wrong passwords lock the account at that address (then the
account everywhere, and the address for every account, at higher caps) for a while that
doubles; the refusal says when to retry, and the owner elsewhere still gets in."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from resolvers.access.throttle import Throttle, account_of
from resolvers.core.errors import InvalidCredentials
from resolvers.core.models import AuditEntry
from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, Server, Socket, free_port, open_socket, serving
from tests.schema.test_sessions import PASSWORD, sign_up

LOGIN = """
mutation L($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    __typename ... on AuthSession { accessToken } ... on Error { code } } }
"""
# Small numbers keep the waits short: 2 failures allowed, locks of 1 s, then 2 s...
FAST = {"login_failures_allowed": 2, "login_lock_seconds": 1}


@contextlib.asynccontextmanager
async def client_at(server: Server, address: str) -> AsyncIterator[GraphQLClient]:
    """A GraphQL client whose requests come from `address` (any 127.x.y.z is loopback)."""
    graphql = GraphQLClient(server.url)
    await graphql.http.aclose()
    graphql.http = httpx.AsyncClient(
        timeout=30, transport=httpx.AsyncHTTPTransport(local_address=address)
    )
    try:
        yield graphql
    finally:
        await graphql.aclose()


async def login(graphql: GraphQLClient, email: str, password: str) -> str:
    """What a login answers: the result's __typename, its error code, or the GraphQL
    error's code with its retryAfter (`RATE_LIMITED:2`)."""
    body = (await graphql.raw(LOGIN, {"email": email, "password": password})).json()
    if body.get("errors"):
        extensions = body["errors"][0]["extensions"]
        return f"{extensions['code']}:{extensions.get('retryAfter')}"
    result = body["data"]["login"]
    return str(result.get("code") or result["__typename"])


def wrong(n: int) -> str:
    return f"wrong guess {n}"


async def test_wrong_passwords_lock_the_account_at_that_address_only_for_a_while(
    settings: Settings,
) -> None:
    async with serving(settings, **FAST) as (server, gql, _token):
        owner = await sign_up(gql)
        # when an attacker tries 20 wrong passwords from the owner's address
        answers = [await login(gql, owner.email, wrong(n)) for n in range(20)]
        # then two are checked, and the rest refused with when to retry
        assert answers[:2] == ["INVALID_CREDENTIALS"] * 2, answers
        assert answers[2:] == ["RATE_LIMITED:1"] * 18, answers
        # and the right password from there is refused while the lock holds
        assert await login(gql, owner.email, PASSWORD) == "RATE_LIMITED:1"
        # but the owner at another address gets in
        async with client_at(server, "127.0.0.2") as elsewhere:
            assert await login(elsewhere, owner.email, PASSWORD) == "AuthSession"
        # after the lock, guessing again locks for twice as long
        await asyncio.sleep(1.05)
        again = [await login(gql, owner.email, wrong(n)) for n in range(3)]
        assert again == ["INVALID_CREDENTIALS"] * 2 + ["RATE_LIMITED:2"], again
        await asyncio.sleep(2.05)
        # and once it ends the right password works from the attacked address too
        assert await login(gql, owner.email, PASSWORD) == "AuthSession"
        # which forgot the failures there: two more guesses are checked again
        assert [await login(gql, owner.email, wrong(n)) for n in range(2)] == [
            "INVALID_CREDENTIALS"
        ] * 2


async def test_concurrent_guesses_cannot_slip_past_the_cap(settings: Settings) -> None:
    async with serving(settings, **FAST) as (_server, gql, _token):
        owner = await sign_up(gql)
        answers = await asyncio.gather(*(login(gql, owner.email, wrong(n)) for n in range(30)))
    # failures plus attempts in flight never pass twice the cap
    checked = answers.count("INVALID_CREDENTIALS")
    assert 2 <= checked <= 4, answers
    assert answers.count("RATE_LIMITED:1") == 30 - checked, answers


async def test_guesses_from_many_addresses_lock_the_account_at_a_higher_cap(
    settings: Settings,
) -> None:
    async with serving(settings, **FAST) as (server, gql, _token):
        owner = await sign_up(gql)
        # 2 guesses allowed per address, 20 per account: ten addresses use them up
        for n in range(10):
            async with client_at(server, f"127.0.1.{n + 1}") as attacker:
                answers = [await login(attacker, owner.email, wrong(i)) for i in range(2)]
                assert answers == ["INVALID_CREDENTIALS"] * 2, answers
        async with client_at(server, "127.0.1.99") as attacker:
            assert await login(attacker, owner.email, wrong(99)) == "RATE_LIMITED:1"
        # the owner is refused too, told when to retry, and gets in after
        assert await login(gql, owner.email, PASSWORD) == "RATE_LIMITED:1"
        await asyncio.sleep(1.05)
        assert await login(gql, owner.email, PASSWORD) == "AuthSession"


async def test_spraying_many_accounts_from_one_address_locks_that_address(
    settings: Settings,
) -> None:
    async with serving(settings, login_failures_allowed=1, login_lock_seconds=30) as (
        server,
        gql,
        _token,
    ):
        owner = await sign_up(gql)
        async with client_at(server, "127.0.2.1") as sprayer:
            # 1 guess per account and address, 20 per address: one each for 20 accounts
            for n in range(20):
                email = f"someone-{uuid.uuid4().hex[:8]}@example.com"
                assert await login(sprayer, email, wrong(n)) == "INVALID_CREDENTIALS"
            assert await login(sprayer, owner.email, wrong(20)) == "RATE_LIMITED:30"
        # the owner's own address is not affected
        assert await login(gql, owner.email, PASSWORD) == "AuthSession"


async def socket_login(sock: Socket, email: str, password: str) -> str:
    op_id = await sock.subscribe(LOGIN, {"email": email, "password": password})
    while True:
        message = await sock.receive()
        if message.get("id") != op_id:
            continue
        payload: dict[str, Any] = message["payload"]
        errors = payload if message["type"] == "error" else payload.get("errors")
        if isinstance(errors, dict):  # the legacy protocol sends one error
            errors = [errors]
        if errors:
            extensions = errors[0]["extensions"]
            return f"{extensions['code']}:{extensions.get('retryAfter')}"
        result = payload["data"]["login"]
        return str(result.get("code") or result["__typename"])


async def test_guesses_over_the_websocket_are_locked_the_same(settings: Settings) -> None:
    async with serving(settings, **FAST) as (server, gql, _token):
        owner = await sign_up(gql)
        async with open_socket(server.ws_url) as sock:
            answers = [await socket_login(sock, owner.email, wrong(n)) for n in range(10)]
            on_socket = await socket_login(sock, owner.email, PASSWORD)
        assert answers == ["INVALID_CREDENTIALS"] * 2 + ["RATE_LIMITED:1"] * 8, answers
        assert on_socket == "RATE_LIMITED:1"
        # one lock for every transport of that address
        assert await login(gql, owner.email, PASSWORD) == "RATE_LIMITED:1"
        async with client_at(server, "127.0.0.2") as elsewhere:
            assert await login(elsewhere, owner.email, PASSWORD) == "AuthSession"


async def test_the_legacy_protocol_runs_no_login_at_all(settings: Settings) -> None:
    async with serving(settings, **FAST) as (server, gql, _token):
        owner = await sign_up(gql)
        async with open_socket(server.ws_url, protocol="graphql-ws") as sock:
            answers = [await socket_login(sock, owner.email, wrong(n)) for n in range(5)]
        assert answers == ["BAD_REQUEST:None"] * 5, answers
        # no password was tried, so nothing is locked
        assert await login(gql, owner.email, PASSWORD) == "AuthSession"


async def test_a_hundred_failures_leave_a_bounded_audit_trail(settings: Settings) -> None:
    async with serving(settings, login_lock_seconds=30) as (_server, gql, _token):
        owner = await sign_up(gql)
        last = await AuditEntry.all().order_by("-id").first()
        answers = [await login(gql, owner.email, wrong(n)) for n in range(100)]
        since = last.id if last is not None else 0
        rows = await AuditEntry.filter(operation="login", id__gt=since).order_by("id")
    assert answers.count("INVALID_CREDENTIALS") == 5, answers
    # the five checked guesses, then one entry when the lock began; the 94 refusals are
    # only counted (the next lock's entry would say how many)
    assert [row.outcome for row in rows] == ["INVALID_CREDENTIALS"] * 5 + ["RATE_LIMITED"]
    assert rows[-1].detail == "locked 30 s (account and address); 0 attempts refused before"
    assert all(row.client == "127.0.0.1" for row in rows)


async def test_an_unknown_account_is_throttled_like_a_known_one(settings: Settings) -> None:
    async with serving(settings, login_failures_allowed=1) as (_server, gql, _token):
        answers = [await login(gql, "nobody@example.com", wrong(n)) for n in range(3)]
    assert answers == ["INVALID_CREDENTIALS", "RATE_LIMITED:30", "RATE_LIMITED:30"]


async def test_the_owners_concurrent_sign_ins_are_not_taken_for_guesses(
    settings: Settings,
) -> None:
    async with serving(settings) as (_server, gql, _token):
        owner = await sign_up(gql)
        answers = await asyncio.gather(*(login(gql, owner.email, PASSWORD) for _ in range(8)))
    assert answers == ["AuthSession"] * 8, answers


async def test_a_redis_outage_lets_sign_ins_through() -> None:
    # limits must not take the API down: the throttle fails open, as the request limiter
    down = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    throttle = Throttle(down, allowed=1, lock_seconds=30)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            async with throttle.attempt(account_of("a@example.com"), "127.0.0.1"):
                raise InvalidCredentials("wrong e-mail or password")
    async with throttle.attempt(account_of("a@example.com"), "127.0.0.1"):
        pass
    await down.aclose()
