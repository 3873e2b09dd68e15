"""The response cache and in-flight sharing, counting real inference calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from inference.base import Completion, Delta, GenerationRequest, collect
from inference.dev import DevEngine
from resolvers.access.auth import Principal
from resolvers.core import keys
from resolvers.core.errors import RateLimited
from resolvers.core.models import Creation, CreationStatus, User
from resolvers.core.settings import Settings
from resolvers.creation import cancel_creation, follow_creation, start_creation
from resolvers.resources import Core
from resolvers.streaming.events import Event, EventKind
from tests.resolvers.streaming.test_runner import NO_JOBS, core_with


class CountingEngine:
    """The dev engine, counting the generations it was asked for."""

    name = "dev-engine"

    def __init__(self, delay: float = 0.0) -> None:
        self.inner = DevEngine(token_delay=delay)
        self.calls = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.calls += 1
        async for delta in self.inner.stream(request):
            yield delta

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


async def write(
    core: Core, principal: Principal, quota_per_day: int = 0, **fields: object
) -> Creation:
    return await start_creation(
        principal=principal,
        tool_name="write",
        payload={"prompt": "the same request", "max_tokens": 40, **fields},
        runner=core.runner,
        queue=NO_JOBS,
        cache=core.cache,
        feed=core.feed,
        outputs=core.outputs,
        quota_per_day=quota_per_day,
    )


async def events(core: Core, principal: Principal, creation: Creation) -> list[Event]:
    stream = await follow_creation(
        principal=principal,
        creation_id=str(creation.id),
        after=0,
        feed=core.feed,
        queue=NO_JOBS,
        outputs=core.outputs,
    )
    return [event async for event in stream]


def text(log: list[Event]) -> str:
    return "".join(e.text for e in log if e.kind is EventKind.DELTA)


async def a_user() -> Principal:
    user = await User.create(email="cache@example.com", password_hash="x")
    return Principal(user_id=str(user.id), expires_at=2**31)


async def test_a_seeded_request_is_answered_once_then_from_the_cache(settings: Settings) -> None:
    engine = CountingEngine()
    async with core_with(settings, engine) as core:
        principal = await a_user()
        first = await write(core, principal, seed=5)
        first_log = await events(core, principal, first)
        second = await write(core, principal, seed=5)
        second_log = await events(core, principal, second)
        await second.refresh_from_db()
        other = await write(core, principal, seed=6)
        await events(core, principal, other)
    assert engine.calls == 2  # seed 5 once, seed 6 once
    assert text(second_log) == text(first_log) != ""
    assert second_log[-1].kind is EventKind.COMPLETED
    assert second_log[-1].completion_tokens == 0  # no model tokens spent on a cached answer
    assert str(second.source_id) == str(first.id) and second.output == text(first_log)


async def test_without_a_seed_each_request_is_a_new_generation(settings: Settings) -> None:
    engine = CountingEngine()
    async with core_with(settings, engine) as core:
        principal = await a_user()
        for _ in range(2):
            await events(core, principal, await write(core, principal))
    assert engine.calls == 2


async def test_identical_requests_in_flight_share_one_generation(settings: Settings) -> None:
    engine = CountingEngine(delay=0.005)
    async with core_with(settings, engine) as core:
        principal = await a_user()
        creations = [await write(core, principal) for _ in range(3)]
        logs = await asyncio.gather(*(events(core, principal, c) for c in creations))
    assert engine.calls == 1
    assert len({text(log) for log in logs}) == 1 and len(text(logs[0]).split()) == 40
    assert [log[-1].kind for log in logs] == [EventKind.COMPLETED] * 3


async def test_cancelling_a_copy_leaves_the_shared_run_alone(settings: Settings) -> None:
    engine = CountingEngine(delay=0.02)  # 4 s: the cancel lands mid-run even on a busy machine
    async with core_with(settings, engine) as core:
        principal = await a_user()
        source = await write(core, principal, max_tokens=200)
        copy = await write(core, principal, max_tokens=200)
        assert str(copy.source_id) == str(source.id)
        await cancel_creation(
            principal=principal,
            creation_id=str(copy.id),
            runner=core.runner,
            queue=NO_JOBS,
            feed=core.feed,
            outputs=core.outputs,
        )
        copy_log = await events(core, principal, copy)
        source_log = await events(core, principal, source)
        await source.refresh_from_db()
    assert copy_log[-1].kind is EventKind.CANCELLED
    assert source_log[-1].kind is EventKind.COMPLETED
    assert source.status is CreationStatus.COMPLETED


async def claims(redis: Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=keys.in_flight("*"))]


async def test_a_request_refused_after_claiming_its_run_frees_the_claim(
    settings: Settings, redis: Redis
) -> None:
    """An unseeded request claims its run in flight while it is admitted: refused by the
    quota, it must not leave the claim behind for identical requests to find."""
    engine = CountingEngine()
    async with core_with(settings, engine) as core:
        principal = await a_user()
        with pytest.raises(RateLimited):
            await write(core, principal, quota_per_day=10)  # 40 tokens asked
        for _ in range(200):
            if not await claims(redis):
                break
            await asyncio.sleep(0.01)
        assert await claims(redis) == []
        assert await Creation.all().count() == 0


async def test_a_claim_whose_row_is_not_stored_is_run_around(
    settings: Settings, redis: Redis
) -> None:
    """A request that finds an identical run in flight whose creation has no row (its
    request is still being admitted, or failed) runs on its own instead of failing."""
    engine = CountingEngine()
    async with core_with(settings, engine) as core:
        principal = await a_user()
        first = await write(core, principal)
        first_log = await events(core, principal, first)
        await first.refresh_from_db()
        assert first.cache_key and await claims(redis) == []
        await redis.set(keys.in_flight(first.cache_key), str(uuid.uuid4()))
        second = await write(core, principal)
        second_log = await events(core, principal, second)
        await second.refresh_from_db()
    assert engine.calls == 2
    assert second.source_id is None and second.status is CreationStatus.COMPLETED
    assert second_log[-1].kind is EventKind.COMPLETED
    assert len(text(second_log).split()) == len(text(first_log).split()) == 40
