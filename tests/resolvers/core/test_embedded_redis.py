"""The embedded twins of the Redis scripts on the way to the first token (fakeredis commands
run inline, or plain structures of the process): each gives the answers its Lua script gives
on the real Redis, step for step."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

from resolvers.access import limits
from resolvers.access.limits import RateLimiter
from resolvers.core import keys
from resolvers.core.bus import Bus, ResilientRedisBackend
from resolvers.core.embedded_redis import inline_twin
from resolvers.core.errors import RateLimited
from resolvers.streaming.cache import Cache
from resolvers.streaming.events import Event, EventKind
from resolvers.streaming.feed import Feed
from resolvers.streaming.history import EventLog, History, LogLost, StaleProducer
from resolvers.streaming.local_history import LocalHistory

Scenario = Callable[[Redis], Awaitable[list[Any]]]


@pytest.fixture
async def fake() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield client
    await client.aclose()


async def _both(redis: Redis, fake: Redis, scenario: Scenario) -> list[Any]:
    """What `scenario` sees on the real Redis (Lua) and on fakeredis (the inline twin)."""
    assert inline_twin(redis) is None and inline_twin(fake) is not None
    real = await scenario(redis)
    assert await scenario(fake) == real
    return real


async def _outcome(append: Awaitable[None]) -> str:
    try:
        await append
    except StaleProducer:
        return "stale"
    except LogLost as lost:
        return f"lost at {lost.top}"
    return "ok"


def _log(client: Redis) -> EventLog:
    """The event log `open_core` gives a server on `client`."""
    if inline_twin(client) is None:
        return History(client, maxlen=100, ttl_seconds=60)
    return LocalHistory(maxlen=100, ttl_seconds=60)


async def test_appends_store_publish_count_and_refuse_alike(redis: Redis, fake: Redis) -> None:
    """The embedded log (this process's memory) against the Lua script on Redis, through
    `Feed.publish` as the runners and the queue notices write."""

    async def scenario(client: Redis) -> list[Any]:
        history = _log(client)
        bus = Bus(ResilientRedisBackend(client))
        feed = Feed(history, bus, poll_seconds=1)
        await bus.start()
        try:
            async with bus.listen(keys.event_channel("c")) as listener:
                outcomes = [
                    await _outcome(feed.publish(Event("c", 1, EventKind.STARTED, model="m"))),
                    await _outcome(
                        feed.publish(
                            Event(
                                "c",
                                2,
                                EventKind.DELTA,
                                text="a",
                                prompt_tokens=5,
                                completion_tokens=1,
                            )
                        )
                    ),
                    await _outcome(feed.publish(Event("c", 2, EventKind.DELTA, text="x"))),
                    await _outcome(feed.publish(Event("c", 5, EventKind.DELTA, text="y"))),
                    await _outcome(feed.publish(Event("d", 1, EventKind.STARTED), unclaimed=True)),
                ]
                started = Event("e", 1, EventKind.STARTED, model="m")
                first = Event("e", 2, EventKind.DELTA, text="z", completion_tokens=2)
                outcomes += [
                    await _outcome(feed.publish(started, first)),  # one write for both
                    await _outcome(feed.publish(first, Event("e", 3, EventKind.COMPLETED))),
                    await _outcome(
                        feed.publish(
                            Event("e", 7, EventKind.DELTA, text="q", completion_tokens=1),
                            Event("e", 8, EventKind.COMPLETED),
                        )
                    ),
                ]
                await history.claim("d")
                outcomes.append(
                    await _outcome(feed.publish(Event("d", 2, EventKind.PROGRESS), unclaimed=True))
                )
                heard = [await listener.get(timeout=2) for _ in range(2)]
                assert await listener.get(timeout=0.05) is None  # refused events are not sent
        finally:
            await bus.stop()
        ttl = (
            history._logs._deadlines["c"] - time.monotonic()
            if isinstance(history, LocalHistory)
            else await client.ttl(keys.event_log("c"))
        )
        return [
            outcomes,
            [Event.decode(m) for m in heard if m is not None],
            await history.read("c", after=0),
            await history.usage("c"),
            await history.read("d", after=0),
            0 < ttl <= 60,
            await history.read("e", after=0),
            await history.usage("e"),
        ]

    outcomes, heard, logged, usage, other, expiring, both, both_usage = await _both(
        redis, fake, scenario
    )
    assert outcomes == ["ok", "ok", "stale", "lost at 2", "ok", "ok", "stale", "lost at 2", "stale"]
    assert [(e.seq, e.kind) for e in both] == [(1, EventKind.STARTED), (2, EventKind.DELTA)]
    assert both_usage == (0, 2)
    assert heard == logged and [e.seq for e in logged] == [1, 2]
    assert usage == (5, 1) and [e.seq for e in other] == [1] and expiring


async def test_an_append_takes_only_consecutive_events_of_one_creation() -> None:
    history = LocalHistory(maxlen=100, ttl_seconds=60)
    for events in (
        [Event("c", 1, EventKind.STARTED), Event("c", 3, EventKind.COMPLETED)],
        [Event("c", 1, EventKind.STARTED), Event("d", 2, EventKind.COMPLETED)],
    ):
        with pytest.raises(ValueError, match="consecutive"):
            await history.append(*events)
    assert await history.read("c", after=0) == [] and await history.read("d", after=0) == []


async def test_the_rate_limit_counts_alike(redis: Redis, fake: Redis) -> None:
    async def scenario(client: Redis) -> list[Any]:
        limiter = RateLimiter(client, per_minute=60, burst=3)
        answers = []
        for _ in range(4):
            try:
                await limiter.hit("someone")
                answers.append("allowed")
            except RateLimited as exc:
                answers.append(f"limited {0 < exc.retry_after <= 1}")
        await limiter.hit("someone else")  # a bucket per subject
        return answers

    assert await _both(redis, fake, scenario) == ["allowed"] * 3 + ["limited True"]
    # Redis forgets a bucket after it would have refilled (plus a second); embedded, a dict of
    # this process holds the buckets and forgets them alike (test_rate_limit_local below).
    assert 0 < await redis.pttl(keys.rate_bucket("someone")) <= 4_000
    assert not await fake.exists(keys.rate_bucket("someone"))


async def test_rate_limit_local_buckets_are_shared_forgotten_and_pruned(
    fake: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000_000_000]  # ms
    monkeypatch.setattr(limits.time, "time_ns", lambda: now[0] * 1_000_000)
    first, second = (RateLimiter(fake, per_minute=60, burst=2) for _ in range(2))
    await first.hit("a")
    await second.hit("a")  # a limiter made per request (the OAuth token endpoint) shares it
    with pytest.raises(RateLimited, match=r"try again in 1\.0 s"):
        await first.hit("a")
    now[0] += 500  # half a token refilled
    with pytest.raises(RateLimited, match=r"try again in 0\.5 s"):
        await second.hit("a")
    buckets = limits.local_state(fake, "rate-buckets", OrderedDict)
    assert buckets is not None and list(buckets) == [keys.rate_bucket("a")]
    now[0] += 3_001  # past the bucket's life (2 s to refill, plus 1 s): full again, and
    await first.hit("b")  # a later request drops it from memory
    assert list(buckets) == [keys.rate_bucket("b")]
    await first.hit("a")
    await first.hit("a")


async def test_the_cache_lookup_answers_alike(redis: Redis, fake: Redis) -> None:
    async def scenario(client: Redis) -> list[Any]:
        cache = Cache(client, ttl_seconds={}, default_ttl=60)
        seeded, unseeded = {"seed": 1}, {"seed": None}
        answers = [
            await cache.source_for("k", seeded, "first"),  # runs it
            await cache.source_for("k", seeded, "second"),  # shares the run in flight
            await cache.source_for("u", unseeded, "third"),
        ]
        await client.set(keys.cache_entry("k"), "done")
        answers.append(await cache.source_for("k", seeded, "fourth"))  # a cached answer
        answers.append(await cache.source_for("k", unseeded, "fifth"))  # not for unseeded
        return answers

    assert await _both(redis, fake, scenario) == [None, "first", None, "done", "first"]


async def test_releasing_a_run_in_flight_frees_only_ones_own_alike(
    redis: Redis, fake: Redis
) -> None:
    async def scenario(client: Redis) -> list[Any]:
        cache = Cache(client, ttl_seconds={}, default_ttl=60)
        await cache.source_for("k", {"seed": None}, "first")  # claims the key
        mine_before = cache.running_here("k")
        await cache.release("k", "second")  # not its run: nothing changes
        held = await client.get(keys.in_flight("k"))
        await cache.release("k", "first")
        return [
            mine_before,
            held,
            await client.exists(keys.in_flight("k")),
            cache.running_here("k"),
        ]

    assert await _both(redis, fake, scenario) == [True, b"first", 0, False]


async def test_an_embedded_append_does_not_wait_for_the_loop() -> None:
    # Nothing else runs between its steps: it is as atomic as the script it replaces.
    history = LocalHistory(maxlen=100, ttl_seconds=60)
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    await asyncio.sleep(0)
    before = ticks
    await history.append(Event("c", 1, EventKind.STARTED))
    await history.append(Event("c", 2, EventKind.DELTA, text="a", completion_tokens=1))
    assert ticks == before
    ticker.cancel()


async def test_the_embedded_log_trims_expires_and_rebuilds_as_redis_would() -> None:
    now = [1_000.0]
    history = LocalHistory(maxlen=100, ttl_seconds=60, clock=lambda: now[0])
    await history.append(Event("c", 1, EventKind.STARTED))
    for seq in range(2, 302):
        await history.append(Event("c", seq, EventKind.DELTA, text=f"{seq} ", completion_tokens=1))
    # bounded like XADD MAXLEN ~: the newest `maxlen` at least, never more than 100 over
    kept = await history.read("c", after=0, count=1_000)
    assert 100 <= len(kept) <= 200 and kept[-1].seq == 301
    assert [e.seq for e in kept] == list(range(kept[0].seq, 302))
    assert await history.usage("c") == (0, 300)  # the usage counts what was trimmed too
    assert [e.seq for e in await history.read("c", after=299)] == [300, 301]
    assert await history.holds(kept[-1]) and not await history.holds(
        Event("c", 301, EventKind.COMPLETED)
    )
    # a lease lives its seconds, flags and logs `ttl_seconds` after their last write
    await history.hold_lease("c", 2)
    await history.claim("c")
    await history.flag_cancel("c")
    now[0] += 2.5
    assert not await history.lease_held("c")
    assert await history.cancel_flagged("c") and await history.last_seq("c") == 301
    now[0] += 58
    await history.append(Event("other", 1, EventKind.STARTED))  # expired entries are dropped
    assert history._logs.logs.keys() == {"other"}
    assert await history.read("c", after=0) == [] and await history.usage("c") == (0, 0)
    assert not await history.cancel_flagged("c")
    # an expired log takes seq 1 again; a later event needs the one before it
    await history.append(Event("c", 1, EventKind.STARTED))
    with pytest.raises(LogLost):
        await history.append(Event("c", 5, EventKind.DELTA, text="x"))
    # a rebuild writes a lost log only while it ends before what replaces it
    rebuilt = [
        Event("c", 1, EventKind.STARTED),
        Event("c", 9, EventKind.DELTA, text="all", first_seq=2),
    ]
    assert await history.rebuild(rebuilt, (3, 8))
    assert not await history.rebuild(rebuilt, (3, 8))
    assert [e.seq for e in await history.read("c", after=0)] == [1, 9]
    assert await history.usage("c") == (3, 8)
