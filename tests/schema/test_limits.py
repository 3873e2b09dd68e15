"""Limits: request rate (token bucket in Redis), daily token quota, open subscriptions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from resolvers.access.limits import RateLimiter
from resolvers.core import keys
from resolvers.core.errors import RateLimited
from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving

ME = "{ me { id } }"
START = """
mutation W($input: WriteInput!) { write(input: $input) {
  __typename ... on Creation { id status } ... on RateLimitedError { code retryAfter message } } }
"""
CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { __typename } }"
STATUS = "query S($id: ID!) { creation(id: $id) { status } }"
FOLLOW = "subscription F($id: ID!) { creationEvents(id: $id) { __typename seq } }"


async def test_the_bucket_allows_a_burst_then_the_rate(redis: Redis) -> None:
    limiter = RateLimiter(redis, per_minute=6, burst=3)  # one token per 10 s
    for _ in range(3):
        await limiter.hit("user:a")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("user:a")
    assert 9 <= refused.value.retry_after <= 10
    await limiter.hit("user:b")  # buckets are per subject
    # when 25 s pass (the bucket's clock is moved back instead of sleeping)
    bucket = keys.rate_bucket("user:a")
    at = int(await redis.hget(bucket, "at") or 0)
    await redis.hset(bucket, "at", str(at - 25_000))
    # then 2.5 tokens came back: two requests pass, the third does not
    await limiter.hit("user:a")
    await limiter.hit("user:a")
    with pytest.raises(RateLimited):
        await limiter.hit("user:a")


async def test_concurrent_hits_never_overspend(redis: Redis) -> None:
    limiter = RateLimiter(redis, per_minute=1, burst=20)  # no refill to speak of
    results = await asyncio.gather(
        *(limiter.hit("user:c") for _ in range(50)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 20
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


async def test_a_broken_redis_does_not_block_requests() -> None:
    broken = Redis(port=1, socket_connect_timeout=0.2)
    limiter = RateLimiter(broken, per_minute=1, burst=1)
    for _ in range(3):
        await limiter.hit("user:d")
    await broken.aclose()


async def test_over_the_rate_is_429_with_retry_after(settings: Settings) -> None:
    async with serving(settings, rate_limit_per_minute=60, rate_limit_burst=3) as (_, gql, token):
        # registering spent one request of this address, not of the user
        codes = [(await gql.raw(ME, token=token)).status_code for _ in range(4)]
        refused = await gql.raw(ME, token=token)
        other = await gql.register()
        other_ok = await gql.raw(ME, token=other)
    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["retryAfter"] >= 1
    assert other_ok.status_code == 200  # another user has their own bucket


async def test_the_quota_reserves_the_maximum_and_refunds_what_was_not_used(
    settings: Settings,
) -> None:
    async with serving(settings, token_quota_per_day=100, dev_token_delay=0.02) as (
        _server,
        gql,
        token,
    ):
        first = await gql.query(START, {"input": {"prompt": "long", "maxTokens": 80}}, token)
        assert first["write"]["status"] == "RUNNING"
        # 80 are held while it runs: 30 more do not fit
        refused = await gql.query(START, {"input": {"prompt": "b", "maxTokens": 30}}, token)
        assert refused["write"]["__typename"] == "RateLimitedError"
        assert refused["write"]["retryAfter"] > 0 and "80" not in refused["write"]["message"]
        # cancelled after a few tokens: the unused part goes back
        await asyncio.sleep(0.1)
        await gql.query(CANCEL, {"id": first["write"]["id"]}, token)
        # the row ends CANCELLED (this test is about the quota, so it polls the row)
        status = "RUNNING"
        for _ in range(200):
            read = await gql.query(STATUS, {"id": first["write"]["id"]}, token)
            status = read["creation"]["status"]
            if status != "RUNNING":
                break
            await asyncio.sleep(0.05)
        assert status == "CANCELLED"
        again = await gql.query(START, {"input": {"prompt": "c", "maxTokens": 60}}, token)
        assert again["write"]["__typename"] == "Creation", again
        # another user has their own quota
        other = await gql.register()
        theirs = await gql.query(START, {"input": {"prompt": "d", "maxTokens": 90}}, other)
        assert theirs["write"]["__typename"] == "Creation"


async def test_open_subscriptions_are_capped_per_user(settings: Settings) -> None:
    async with serving(settings, max_subscriptions_per_user=2, dev_token_delay=0.05) as (
        server,
        gql,
        token,
    ):
        created = await gql.query(START, {"input": {"prompt": "slow", "maxTokens": 400}}, token)
        creation_id = created["write"]["id"]
        async with open_socket(server.ws_url, token) as sock:
            ops = [await sock.subscribe(FOLLOW, {"id": creation_id}) for _ in range(3)]
            # The three start at once: which one is refused is up to the scheduler.
            answers: dict[str, dict[str, Any]] = {}
            while len(answers) < len(ops):
                message = await sock.receive()
                if message.get("id") in ops and message["type"] in ("error", "next"):
                    answers.setdefault(message["id"], message)
        refused = [
            m for m in answers.values() if m["type"] == "error" or m["payload"].get("errors")
        ]
        assert len(refused) == 1, answers
        payload = refused[0]["payload"]
        errors = payload if refused[0]["type"] == "error" else payload["errors"]
        assert errors[0]["extensions"]["code"] == "RATE_LIMITED"
        # closing the socket frees the slots
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(FOLLOW, {"id": creation_id})
            first = await sock.receive()
        assert first["id"] == op and first["type"] == "next"
        await gql.query(CANCEL, {"id": creation_id}, token)
