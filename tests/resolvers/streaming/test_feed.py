"""The event log, the bus and following, against the real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from resolvers.core.bus import RESYNC, Bus, ResilientRedisBackend
from resolvers.core.errors import ServiceUnavailable
from resolvers.streaming.events import Event, EventKind, coalesce
from resolvers.streaming.feed import Feed
from resolvers.streaming.history import History, StaleProducer
from tests.conftest import free_port


@pytest.fixture
async def feed(redis: Redis) -> AsyncIterator[Feed]:
    bus = Bus(ResilientRedisBackend(redis), listener_maxsize=16)
    await bus.start()
    yield Feed(History(redis, maxlen=10_000, ttl_seconds=60), bus, poll_seconds=0.2)
    await bus.stop()


def delta(seq: int, text: str, creation_id: str = "c1") -> Event:
    return Event(creation_id, seq, EventKind.DELTA, text=text, completion_tokens=1)


async def collect(feed: Feed, creation_id: str = "c1", after: int = 0) -> list[Event]:
    return [event async for event in feed.follow(creation_id, after=after)]


async def produce(
    feed: Feed, count: int, *, pause: float = 0.0, creation_id: str = "c1", started: bool = True
) -> str:
    if started:
        await feed.publish(Event(creation_id, 1, EventKind.STARTED))
    words = [f"w{i} " for i in range(count)]
    for index, word in enumerate(words):
        await feed.publish(delta(index + 2, word, creation_id))
        if pause:
            await asyncio.sleep(pause)
    await feed.publish(Event(creation_id, count + 2, EventKind.COMPLETED))
    return "".join(words)


def text(events: list[Event]) -> str:
    return "".join(e.text for e in events if e.kind is EventKind.DELTA)


async def test_the_log_refuses_a_seq_twice(feed: Feed) -> None:
    await feed.publish(delta(1, "a"))
    with pytest.raises(StaleProducer):
        await feed.publish(delta(1, "again"))
    await feed.publish(delta(2, "b"))
    with pytest.raises(StaleProducer):
        await feed.publish(delta(1, "older"))
    with pytest.raises(ValueError):
        await feed.publish(delta(0, "zero"))
    assert [e.text for e in await feed.history.read("c1", after=0)] == ["a", "b"]


async def test_follow_replays_then_tails_without_gap_or_duplicate(feed: Feed) -> None:
    # a follower that re-reads the log only every 30 s: the live tail must come by pub/sub
    live_only = Feed(feed.history, feed.bus, poll_seconds=30)
    # given a creation that already streamed part of its text
    await feed.publish(Event("c1", 1, EventKind.STARTED))
    for seq in range(2, 12):
        await feed.publish(delta(seq, f"t{seq} "))
    stream = live_only.follow("c1")
    replayed = [await anext(stream)]  # the replay has begun: it is listening now
    # when it goes on while someone follows
    for seq in range(12, 40):
        await feed.publish(delta(seq, f"t{seq} "))
    await feed.publish(Event("c1", 40, EventKind.COMPLETED))
    events = replayed + await asyncio.wait_for(_rest(stream), 5)
    # then the follower has every piece once, in order, and one terminal event
    assert text(events) == "".join(f"t{seq} " for seq in range(2, 40))
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert events[-1].kind is EventKind.COMPLETED


async def _rest(stream: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in stream]


async def test_a_slow_follower_is_bounded_and_still_gets_everything(feed: Feed) -> None:
    # given a follower that does not read while 2,000 events are produced
    await feed.publish(Event("c1", 1, EventKind.STARTED))
    stream = feed.follow("c1")
    first = await anext(stream)  # listening now, buffer of 16
    expected = await produce(feed, 2000, started=False)
    # then its buffer never held more than 16 events
    channel = next(iter(feed.bus._channels.values()))
    assert all(len(listener._items) <= 16 for listener in channel.listeners)
    # and it catches up from the log, coalesced, with all of the text
    rest = [event async for event in stream]
    assert first.kind is EventKind.STARTED
    assert text(rest) == expected
    assert len(rest) < 100  # merged deltas, not 2,000 GraphQL events
    assert rest[-1].kind is EventKind.COMPLETED and rest[-1].seq == 2002


async def test_events_lost_on_pubsub_are_read_from_the_log(feed: Feed, redis: Redis) -> None:
    follower = asyncio.create_task(collect(feed))
    # events written to the log without any pub/sub message (as if pub/sub dropped them)
    history = History(redis, maxlen=100, ttl_seconds=60)
    await redis.xadd("ck:{c:c1}:log", {"e": Event("c1", 1, EventKind.STARTED).encode()}, id="0-1")
    await redis.xadd("ck:{c:c1}:log", {"e": delta(2, "quiet").encode()}, id="0-2")
    await redis.xadd("ck:{c:c1}:log", {"e": Event("c1", 3, EventKind.COMPLETED).encode()}, id="0-3")
    events = await asyncio.wait_for(follower, 5)
    assert [e.seq for e in events] == [1, 2, 3]
    assert await history.last_seq("c1") == 3


async def test_the_bus_reconnects_after_redis_drops_it_mid_stream(feed: Feed, redis: Redis) -> None:
    backend = feed.bus._broadcast._backend
    assert isinstance(backend, ResilientRedisBackend)
    await feed.publish(Event("c1", 1, EventKind.STARTED))
    stream = feed.follow("c1")
    first = await anext(stream)  # listening now

    async def killer() -> None:
        for _ in range(3):
            await asyncio.sleep(0.05)
            await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

    kill = asyncio.create_task(killer())
    follower = asyncio.create_task(_rest(stream))
    expected = await produce(feed, 300, pause=0.001, started=False)
    events = [first, *await asyncio.wait_for(follower, 10)]
    await kill
    assert text(events) == expected
    assert backend.reconnects >= 1
    # and live delivery works again afterwards, through pub/sub
    async with feed.bus.listen("after-reconnect") as listener:
        received = None
        async with asyncio.timeout(5):
            while received is None:  # SUBSCRIBE is not acknowledged synchronously: retry
                await redis.publish("after-reconnect", "hello")
                received = await listener.get(timeout=0.1)
        assert received == "hello"


def test_coalesce_merges_runs_of_deltas_only() -> None:
    events = [
        Event("c", 1, EventKind.STARTED),
        Event("c", 2, EventKind.DELTA, text="a", prompt_tokens=5, completion_tokens=1),
        delta(3, "b", "c"),
        Event("c", 4, EventKind.PROGRESS, fraction=0.5),
        delta(5, "c", "c"),
    ]
    merged = coalesce(events)
    assert [(e.kind, e.seq, e.first_seq, e.text) for e in merged] == [
        (EventKind.STARTED, 1, 0, ""),
        (EventKind.DELTA, 3, 2, "ab"),
        (EventKind.PROGRESS, 4, 0, ""),
        (EventKind.DELTA, 5, 0, "c"),
    ]
    assert (merged[1].prompt_tokens, merged[1].completion_tokens) == (5, 2)


def test_event_codec_round_trips_and_rejects_garbage() -> None:
    event = Event("c", 7, EventKind.FAILED, code="MODEL_UNAVAILABLE", message="down 中文")
    assert Event.decode(event.encode()) == event
    for garbage in ("{}", "[]", "not json", '{"c": "x", "s": 1, "k": "nope"}'):
        with pytest.raises(ValueError):
            Event.decode(garbage)


async def test_the_bus_recovers_when_redis_is_down_at_its_first_subscribe(
    tmp_path: Path,
) -> None:
    # given a bus whose Redis is not running yet
    port = free_port()
    client = Redis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.5)
    bus = Bus(ResilientRedisBackend(client, max_backoff=0.2))
    await bus.start()
    server = None
    try:
        async with bus.listen("ch") as listener:
            # when Redis comes up
            server = subprocess.Popen(
                ["redis-server", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL,
            )
            # then the subscription is made and messages arrive
            received = None
            async with asyncio.timeout(10):
                while received in (None, RESYNC):
                    with contextlib.suppress(OSError, redis_errors.ConnectionError):
                        await client.publish("ch", "hello")
                    received = await listener.get(timeout=0.2)
            assert received == "hello"
    finally:
        await bus.stop()
        await client.aclose()
        if server is not None:
            server.terminate()
            server.wait(10)


async def test_a_follower_stops_when_its_cancel_was_swallowed_by_a_read(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library call that eats the CancelledError (as redis-py's and wait_for's timeouts
    # can on Python 3.11) must not leave the follower waiting for a creation that may
    # never end: its client is gone.
    reading = asyncio.Event()
    real_read = feed.history.read

    async def swallowing_read(creation_id: str, *, after: int, count: int) -> list[Event]:
        reading.set()
        with contextlib.suppress(asyncio.CancelledError):  # the bug: the cancel is lost
            await asyncio.sleep(3600)
        return await real_read(creation_id, after=after, count=count)

    monkeypatch.setattr(feed.history, "read", swallowing_read)
    await feed.publish(Event("c1", 1, EventKind.STARTED))  # started, never ends
    follower = asyncio.create_task(collect(feed))
    await asyncio.wait_for(reading.wait(), 5)
    follower.cancel()
    done, _ = await asyncio.wait({follower}, timeout=5)
    assert follower in done, "the follower outlived its cancelled subscription"
    assert follower.cancelled()


async def test_a_listener_cancelled_during_its_first_subscribe_leaves_cleanly(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # broadcaster raised KeyError from its cleanup here, and a server whose startup failed
    # right away (its port taken) could not shut down.
    backend = ResilientRedisBackend(redis)
    bus = Bus(backend)
    await bus.start()
    subscribing = asyncio.Event()
    real_subscribe = backend.subscribe

    async def slow_subscribe(channel: str) -> None:
        subscribing.set()
        await asyncio.sleep(3600)
        await real_subscribe(channel)

    monkeypatch.setattr(backend, "subscribe", slow_subscribe)

    async def listen() -> None:
        async with bus.listen("c-slow"):
            pass

    listening = asyncio.create_task(listen())
    await asyncio.wait_for(subscribing.wait(), 5)
    listening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(listening, 5)
    await asyncio.wait_for(bus.stop(), 5)  # no KeyError, no hang
    assert "c-slow" not in backend._channels


async def test_quiet_checks_of_one_creation_are_shared_per_poll_interval(feed: Feed) -> None:
    # a thousand idle followers of one creation must not make a thousand checks per poll
    ran: list[str] = []
    release = asyncio.Event()

    async def check(name: str) -> None:
        ran.append(name)
        await release.wait()

    followers = [
        asyncio.create_task(feed.once_per_poll("c1", lambda: check("c1"))) for _ in range(50)
    ]
    other = asyncio.create_task(feed.once_per_poll("c2", lambda: check("c2")))
    await asyncio.sleep(0.05)
    assert sorted(ran) == ["c1", "c2"]  # one check per creation, the rest wait for it
    assert not any(f.done() for f in followers)
    release.set()
    await asyncio.wait_for(asyncio.gather(*followers, other), 5)
    await feed.once_per_poll("c1", lambda: check("c1"))  # within the interval: skipped
    assert ran.count("c1") == 1
    await asyncio.sleep(0.25)  # the feed's poll is 0.2 s
    await feed.once_per_poll("c1", lambda: check("c1"))
    assert ran.count("c1") == 2


async def test_a_failing_quiet_check_reaches_its_caller(feed: Feed) -> None:
    async def broken() -> None:
        raise ServiceUnavailable("the database is down")

    with pytest.raises(ServiceUnavailable):
        await feed.once_per_poll("c3", broken)


async def test_every_follower_here_gets_the_ending_before_any_of_them_ends(feed: Feed) -> None:
    """With many followers of one creation in a process, the last one's ending must not
    wait behind the others' teardowns (a `complete` message each, their slots)."""
    await feed.publish(Event("c-end", 1, EventKind.STARTED))
    order: list[str] = []

    async def follower(name: str) -> None:
        async for event in feed.follow("c-end", after=1):
            if event.terminal:
                order.append(f"{name} got the ending")
        order.append(f"{name} ended")

    followers = [asyncio.ensure_future(follower(name)) for name in ("a", "b", "c")]
    await asyncio.sleep(0.3)  # all three listen, quiet
    await feed.publish(Event("c-end", 2, EventKind.COMPLETED))
    await asyncio.wait_for(asyncio.gather(*followers), 5)
    assert sorted(order[:3]) == ["a got the ending", "b got the ending", "c got the ending"]
    assert sorted(order[3:]) == ["a ended", "b ended", "c ended"]


async def test_an_ending_written_between_a_read_and_the_ending_check_is_delivered(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower that finds nothing new in the log asks whether the log has ended; an
    ending appended in between (a cancel of a queued creation, from any process) must reach
    it, not end its stream without a terminal event (a CI failure of test_queued)."""
    await feed.publish(Event("c-race", 1, EventKind.STARTED))
    await feed.publish(delta(2, "queued", "c-race"))
    read = feed.history.read
    raced = False

    async def read_then_end(creation_id: str, *, after: int, count: int = 512) -> list[Event]:
        nonlocal raced
        page = await read(creation_id, after=after, count=count)
        if not page and not raced:
            raced = True
            await feed.history.append(Event("c-race", 3, EventKind.CANCELLED))
        return page

    monkeypatch.setattr(feed.history, "read", read_then_end)
    events = await asyncio.wait_for(collect(feed, "c-race", after=2), 10)
    assert raced
    assert [(e.seq, e.kind) for e in events] == [(3, EventKind.CANCELLED)]
