"""Issue 11, finding 4: operations over the websocket skipped the request limiter: 150 `{me}`
queries in 0.1 s against a 120/min limit, and 90 anonymous `login` guesses in 10 s on one
socket. Every operation counts against the one limiter, whatever the transport."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.core.settings import Settings
from tests.conftest import Socket, open_socket, serving

ME = "{ me { id } }"
GUESS = """
mutation { login(input: {email: "victim@example.com", password: "guess-number-n"}) {
  __typename ... on Error { code } } }
"""
# One request per 10 s after a burst of 3: nothing refills during a test.
SLOW_LIMIT = {"rate_limit_per_minute": 6, "rate_limit_burst": 3}


async def answer(sock: Socket, document: str) -> dict[str, Any]:
    """Run one operation; its first message (next, data or error)."""
    op_id = await sock.subscribe(document)
    while True:
        message = await sock.receive()
        if message.get("id") == op_id:
            return message


def refusal(message: dict[str, Any]) -> dict[str, Any] | None:
    """The RATE_LIMITED error of an answer, in either protocol's shape."""
    payload = message["payload"]
    if message["type"] == "error":
        errors = payload if isinstance(payload, list) else [payload]
    else:
        errors = payload.get("errors") or []
    for error in errors:
        if error.get("extensions", {}).get("code") == "RATE_LIMITED":
            return dict(error)
    return None


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_queries_on_one_socket_are_rate_limited(settings: Settings, protocol: str) -> None:
    async with serving(settings, **SLOW_LIMIT) as (server, gql, token):
        async with open_socket(server.ws_url, token, protocol=protocol) as sock:
            answers = [await answer(sock, ME) for _ in range(6)]
        # and the socket used up the bucket HTTP requests draw from too
        over_http = await gql.raw(ME, token=token)

    refused = [refusal(message) for message in answers]
    assert refused[:3] == [None, None, None], answers
    assert all(r is not None and r["extensions"]["retryAfter"] >= 1 for r in refused[3:]), answers
    if protocol == "graphql-transport-ws":
        assert all(m["payload"]["data"]["me"]["id"] for m in answers[:3])
    assert over_http.status_code == 429


async def test_anonymous_login_guesses_over_the_socket_are_counted(settings: Settings) -> None:
    async with serving(settings, **SLOW_LIMIT) as (server, gql, _token):
        # (registering the fixture's user took one of the address's three requests)
        async with open_socket(server.ws_url) as sock:
            answers = [await answer(sock, GUESS) for _ in range(8)]
        over_http = await gql.raw(ME)

    guessed = [m for m in answers if refusal(m) is None]
    assert guessed, answers
    assert all(m["payload"]["data"]["login"]["code"] == "INVALID_CREDENTIALS" for m in guessed)
    assert len(guessed) <= 2, answers  # the rest were refused before any password was tried
    assert over_http.status_code == 429
