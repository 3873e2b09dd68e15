"""The daily token quota under a burst (issue 11, item 6): 20 concurrent writes of 512 tokens
against a 3,000-token quota once admitted 6 to 8. Admission is atomic per user on Postgres,
on embedded SQLite, and over both websocket protocols; refunds after the burst are exact."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, Server, Socket, open_socket, serving

QUOTA = 3_000
BUDGET = 512
BURST = 20
FITS = QUOTA // BUDGET  # 5: a sixth reservation would go over
PACE = 0.05  # seconds per dev-engine token: no admitted write ends during the burst

START = """
mutation W($input: WriteInput!) { write(input: $input) {
  __typename ... on Creation { id status } ... on RateLimitedError { code retryAfter message } } }
"""
CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { __typename } }"
USAGE = "query U($id: ID!) { creation(id: $id) { status usage { completionTokens } } }"
EVENTS = "subscription E($id: ID!) { creationEvents(id: $id, after: 0) { __typename seq } }"
STREAM = """
subscription S($input: WriteInput!) { write(input: $input) { __typename creationId seq } }
"""
TERMINAL = {"CreationCompleted", "CreationFailed", "CreationCancelled"}


def _write(index: int, max_tokens: int = BUDGET) -> dict[str, Any]:
    # Distinct prompts: identical ones would share one generation.
    return {"input": {"prompt": f"burst {index}", "maxTokens": max_tokens}}


async def test_a_burst_over_http_on_postgres_admits_only_what_fits(settings: Settings) -> None:
    await _burst_over_http(settings)


async def test_a_burst_over_http_embedded_admits_only_what_fits(
    embedded_settings: Settings,
) -> None:
    await _burst_over_http(embedded_settings)


async def test_a_burst_of_mutations_over_a_socket_admits_only_what_fits(
    settings: Settings,
) -> None:
    # given a user with a 3,000-token quota and one graphql-transport-ws socket
    async with (
        serving(settings, token_quota_per_day=QUOTA, dev_token_delay=PACE) as (server, gql, token),
        open_socket(server.ws_url, token) as sock,
    ):
        # when 20 write mutations of 512 tokens are sent on it at once
        ops = [await sock.subscribe(START, _write(i)) for i in range(BURST)]
        answers = await _first_answers(sock, ops)
        # then five are admitted and the others refused with a typed error
        writes = [answer["data"]["write"] for answer in answers.values()]
        admitted = [w["id"] for w in writes if w["__typename"] == "Creation"]
        refused = [w for w in writes if w["__typename"] == "RateLimitedError"]
        assert len(admitted) == FITS and len(refused) == BURST - FITS, writes
        assert all(w["code"] == "RATE_LIMITED" and w["retryAfter"] > 0 for w in refused)
        # and once they end, the day's usage is exactly what they used
        used = await _end_all(server, gql, token, admitted)
        await _assert_left(gql, token, QUOTA - used)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_burst_of_streamed_writes_over_a_socket_admits_only_what_fits(
    settings: Settings, protocol: str
) -> None:
    # given a user with a 3,000-token quota and one socket
    async with (
        serving(settings, token_quota_per_day=QUOTA, dev_token_delay=PACE) as (server, gql, token),
        open_socket(server.ws_url, token, protocol=protocol) as sock,
    ):
        # when 20 `write` subscriptions of 512 tokens start at once
        ops = [await sock.subscribe(STREAM, _write(i)) for i in range(BURST)]
        answers = await _first_answers(sock, ops)
        # then five stream and the others are refused with RATE_LIMITED and a retryAfter
        started = [a["data"]["write"] for a in answers.values() if a.get("data")]
        refused = [a["errors"][0]["extensions"] for a in answers.values() if a.get("errors")]
        assert len(started) == FITS and len(refused) == BURST - FITS, answers
        assert all(e["code"] == "RATE_LIMITED" and e["retryAfter"] > 0 for e in refused)
        # and once they end, the day's usage is exactly what they used
        used = await _end_all(server, gql, token, [event["creationId"] for event in started])
        await _assert_left(gql, token, QUOTA - used)


async def _burst_over_http(settings: Settings) -> None:
    # given a user with a 3,000-token quota
    async with serving(settings, token_quota_per_day=QUOTA, dev_token_delay=PACE) as (
        server,
        gql,
        token,
    ):
        # when 20 write mutations of 512 tokens arrive at once
        results = await asyncio.gather(*(gql.query(START, _write(i), token) for i in range(BURST)))
        # then five are admitted and the others refused with a typed error
        writes = [result["write"] for result in results]
        admitted = [w["id"] for w in writes if w["__typename"] == "Creation"]
        refused = [w for w in writes if w["__typename"] == "RateLimitedError"]
        assert len(admitted) == FITS and len(refused) == BURST - FITS, writes
        assert all(w["code"] == "RATE_LIMITED" and w["retryAfter"] > 0 for w in refused)
        # and once they end, the day's usage is exactly what they used
        used = await _end_all(server, gql, token, admitted)
        await _assert_left(gql, token, QUOTA - used)


async def _first_answers(sock: Socket, ops: list[str]) -> dict[str, dict[str, Any]]:
    """Each operation's first result payload (`data` or `errors`), errors included."""
    answers: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        while len(answers) < len(ops):
            message = await sock.receive()
            if message.get("id") not in ops or message["id"] in answers:
                continue
            if message["type"] in ("next", "data"):
                answers[message["id"]] = message["payload"]
            elif message["type"] == "error":
                payload = message["payload"]
                answers[message["id"]] = {
                    "errors": payload if isinstance(payload, list) else [payload]
                }
    return answers


async def _end_all(server: Server, gql: GraphQLClient, token: str, ids: list[str]) -> int:
    """Cancel the creations, wait for each one's terminal event, and sum what they used."""
    await asyncio.gather(*(gql.query(CANCEL, {"id": creation_id}, token) for creation_id in ids))
    async with open_socket(server.ws_url, token) as sock:
        for creation_id in ids:
            op = await sock.subscribe(EVENTS, {"id": creation_id})
            events = await sock.collect(op)
            assert events[-1]["creationEvents"]["__typename"] in TERMINAL, events
    used = 0
    for creation_id in ids:
        row = (await gql.query(USAGE, {"id": creation_id}, token))["creation"]
        assert row["status"] == "CANCELLED", row
        used += row["usage"]["completionTokens"]
    return used


async def _assert_left(gql: GraphQLClient, token: str, left: int) -> None:
    """Exactly `left` tokens are left today: one more is refused, `left` is admitted."""
    over = await gql.query(START, _write(BURST, left + 1), token)
    assert over["write"]["__typename"] == "RateLimitedError", over
    fits = await gql.query(START, _write(BURST + 1, left), token)
    assert fits["write"]["__typename"] == "Creation", fits
    await gql.query(CANCEL, {"id": fits["write"]["id"]}, token)
