"""The CPU pool runs work off the event loop and bounds what it admits (resolvers/core/cpu.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from resolvers.core.cpu import CpuPool
from resolvers.core.errors import ServiceUnavailable

WORKERS, QUEUE = 2, 3


async def wait_for(condition: threading.Semaphore, times: int) -> None:
    """Take `condition` `times` times without blocking the loop."""
    for _ in range(times):
        assert await asyncio.to_thread(condition.acquire, True, 10)


async def test_a_job_runs_on_a_pool_thread() -> None:
    pool = CpuPool(workers=WORKERS, queue=QUEUE)
    try:
        name = await pool.run(lambda: threading.current_thread().name)
    finally:
        pool.close()

    assert name.startswith("ck-cpu") and name != threading.current_thread().name


async def test_the_job_past_workers_plus_queue_is_refused_with_a_typed_error() -> None:
    pool = CpuPool(workers=WORKERS, queue=QUEUE)
    gate, started = threading.Event(), threading.Semaphore(0)

    def job(n: int) -> int:
        started.release()
        assert gate.wait(10)
        return n

    try:
        # given WORKERS jobs running and QUEUE waiting
        admitted = [asyncio.create_task(pool.run(job, n)) for n in range(WORKERS + QUEUE)]
        await wait_for(started, WORKERS)

        # when one more comes, it is refused at once, retryably
        with pytest.raises(ServiceUnavailable, match="busy"):
            await pool.run(job, 99)

        # then the admitted ones all finish, and the pool takes work again
        gate.set()
        assert await asyncio.gather(*admitted) == list(range(WORKERS + QUEUE))
        assert await pool.run(job, 7) == 7
    finally:
        gate.set()
        pool.close()


async def test_a_caller_that_gives_up_keeps_its_slot_until_its_job_ends() -> None:
    pool = CpuPool(workers=1, queue=0)
    gate, started = threading.Event(), threading.Semaphore(0)

    def job() -> None:
        started.release()
        assert gate.wait(10)

    try:
        task = asyncio.create_task(pool.run(job))
        await wait_for(started, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # the thread still works for the caller that left: no room for more yet
        with pytest.raises(ServiceUnavailable):
            await pool.run(job)

        gate.set()
        async with asyncio.timeout(10):
            while True:  # the slot comes back when the thread finishes
                try:
                    await pool.run(lambda: None)
                    break
                except ServiceUnavailable:
                    await asyncio.sleep(0.01)
    finally:
        gate.set()
        pool.close()
