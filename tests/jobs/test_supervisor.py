"""SteadyWorker: arq's worker, polling on through Redis outages (jobs/supervisor.py).

Each test runs a worker in this process against the real Redis, mostly through a TcpProxy
that cuts every connection and refuses new ones, as a Redis blink does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from arq import func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from jobs.supervisor import REDIS_DOWN, Backoff, SteadyWorker
from tests.conftest import free_port
from tests.fault_support import TcpProxy, eventually

pytestmark = pytest.mark.services

QUEUE = "test:steady"


class Calls:
    """A job function that records its calls and, when told to, waits to be released."""

    def __init__(self, *, hold: bool = False) -> None:
        self.args: list[int] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def run(self, ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> int:
        value = int(args[0])
        self.args.append(value)
        await self.release.wait()
        return value * 2


def _worker(redis_url: str, calls: Calls, **options: Any) -> SteadyWorker:
    return SteadyWorker(
        functions=[func(calls.run, name="double")],
        redis_url=redis_url,
        redis_options={"socket_timeout": 2, "socket_connect_timeout": 1},
        queue_name=QUEUE,
        handle_signals=False,
        poll_delay=0.05,
        backoff=Backoff(first=0.05, most=0.2),
        keep_result=60,
        **options,
    )


@contextlib.asynccontextmanager
async def _running(worker: SteadyWorker) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.async_run())
    try:
        yield task
    finally:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def queue(redis_url: str, redis: Redis) -> AsyncIterator[ArqRedis]:
    """Enqueues straight on the real Redis (flushed by `redis`), not through any proxy."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE)
    yield pool
    await pool.aclose(close_connection_pool=True)


def _proxied(redis_url: str, proxy: TcpProxy) -> str:
    return f"redis://127.0.0.1:{proxy.port}{urlsplit(redis_url).path}"


async def _result(queue: ArqRedis, value: int) -> Any:
    job = await queue.enqueue_job("double", value)
    assert job is not None
    return await job.result(timeout=10, poll_delay=0.05)


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(first=0.25, most=2.0)
    assert [backoff.pause() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.pause() == 0.25


async def test_the_worker_polls_on_through_an_outage_and_takes_jobs_after_it(
    redis_url: str, queue: ArqRedis
) -> None:
    calls = Calls()
    async with TcpProxy("127.0.0.1", urlsplit(redis_url).port or 6379) as proxy:
        worker = _worker(_proxied(redis_url, proxy), calls)
        async with _running(worker) as task:
            assert await _result(queue, 1) == 2
            # given Redis cut off under the worker
            await proxy.cut()

            async def down() -> bool:
                return worker.outages == 1

            await eventually(down, timeout=10)
            await eventually(down, timeout=0.5)  # several failed polls: one outage, still up
            assert not task.done()
            # when it comes back and a job is queued
            await proxy.restore()
            # then the same worker runs it, with every job slot free again
            assert await _result(queue, 2) == 4
            assert not task.done()
            assert worker.outages == 1

            async def slots_free() -> bool:
                return worker.job_counter == 0

            await eventually(slots_free, timeout=5)
            assert calls.args == [1, 2]


async def test_a_silent_network_fails_polls_in_time_instead_of_hanging_them(
    redis_url: str, queue: ArqRedis
) -> None:
    calls = Calls()
    async with TcpProxy("127.0.0.1", urlsplit(redis_url).port or 6379) as proxy:
        worker = _worker(_proxied(redis_url, proxy), calls)  # socket timeout: 2 s
        async with _running(worker) as task:
            assert await _result(queue, 4) == 8
            # given a network path that silently drops everything
            await proxy.stall()

            async def noticed() -> bool:
                return worker.outages == 1

            # then a poll times out and counts as an outage, instead of waiting forever
            await eventually(noticed, timeout=10)
            await proxy.restore()
            assert await _result(queue, 5) == 10
            assert not task.done()


async def test_a_worker_started_during_an_outage_waits_for_redis(
    redis_url: str, queue: ArqRedis
) -> None:
    calls = Calls()
    async with TcpProxy("127.0.0.1", urlsplit(redis_url).port or 6379) as proxy:
        await proxy.cut()  # nothing listens on the port yet
        worker = _worker(_proxied(redis_url, proxy), calls)
        async with _running(worker) as task:

            async def waiting() -> bool:
                return worker.outages == 1

            await eventually(waiting, timeout=10)
            assert not task.done()
            await proxy.restore()
            assert await _result(queue, 3) == 6


async def test_a_start_that_loses_redis_gives_its_job_slot_back() -> None:
    # given a worker whose Redis refuses connections
    worker = _worker(f"redis://127.0.0.1:{free_port()}/0", Calls(), max_jobs=2)
    pool = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    worker._pool = pool
    try:
        # when arq takes a slot for a job, then fails to mark it as started
        for _ in range(3):
            with pytest.raises(REDIS_DOWN):
                await worker.start_jobs([b"some-job"])
        # then the slot is free again: arq alone would keep it, and stop picking jobs
        assert worker.job_counter == 0
        assert not worker.sem.locked()
        for _ in range(3):
            await asyncio.wait_for(worker.sem.acquire(), 1)
    finally:
        await pool.aclose(close_connection_pool=True)


async def test_a_job_still_running_here_is_not_started_twice(
    redis_url: str, redis: Redis, queue: ArqRedis
) -> None:
    calls = Calls(hold=True)
    worker = _worker(redis_url, calls)
    async with _running(worker):
        job = await queue.enqueue_job("double", 5)
        assert job is not None
        marker = in_progress_key_prefix + job.job_id

        async def started() -> bool:
            return calls.args == [5]

        await eventually(started, timeout=10)
        # given its in-progress marker dropped while it runs (the API does that when the
        # producer lease lapses during an outage)
        assert await redis.delete(marker) == 1

        # then the worker marks it again rather than starting it a second time
        async def marked() -> bool:
            return bool(await redis.exists(marker))

        await eventually(marked, timeout=10)
        calls.release.set()
        assert await job.result(timeout=10, poll_delay=0.05) == 10
        assert calls.args == [5]


async def test_a_job_whose_end_could_not_be_recorded_is_retried_once_redis_answers(
    redis_url: str, redis: Redis, queue: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls()
    worker = _worker(redis_url, calls)
    finish_job = worker.finish_job
    failures = [redis_errors.ConnectionError("Connection closed by server.")]

    async def flaky_finish(*args: Any) -> None:
        if failures:
            raise failures.pop()
        await finish_job(*args)

    monkeypatch.setattr(worker, "finish_job", flaky_finish)
    async with _running(worker) as task:
        # given a job whose end arq failed to record (a blink right as it finished)
        job = await queue.enqueue_job("double", 7)
        assert job is not None
        # then its in-progress marker is dropped and arq runs it again, now, not after the
        # job timeout; the poll loop never saw the error
        assert await job.result(timeout=10, poll_delay=0.05) == 14
        assert calls.args == [7, 7]
        assert not task.done()
        assert not await redis.exists(in_progress_key_prefix + job.job_id)


async def test_close_finishes_the_shutdown_when_redis_is_unreachable() -> None:
    stopped: list[bool] = []

    async def shutdown(_ctx: dict[str, Any]) -> None:
        stopped.append(True)

    worker = _worker(f"redis://127.0.0.1:{free_port()}/0", Calls(), on_shutdown=shutdown)
    worker._pool = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    await worker.close()
    assert stopped == [True]
    assert worker._pool is None
