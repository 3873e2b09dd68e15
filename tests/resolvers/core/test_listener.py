"""The bus's per-subscriber listener: bounded, woken by an offer, ends a wait on time or cancel."""

from __future__ import annotations

import asyncio

import pytest

from resolvers.core.bus import OVERFLOW, Listener


async def test_messages_come_in_order_and_a_quiet_wait_ends_with_none() -> None:
    listener = Listener(maxsize=4)
    listener.offer("a")
    listener.offer("b")
    assert [await listener.get(timeout=1), await listener.get(timeout=1)] == ["a", "b"]
    assert await listener.get(timeout=0.05) is None
    assert await listener.get(timeout=0.05) is None  # a second quiet wait, no leftover state


async def test_an_offer_wakes_a_waiting_reader() -> None:
    listener = Listener(maxsize=4)
    waiting = asyncio.ensure_future(listener.get(timeout=30))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    listener.offer("m")
    assert await asyncio.wait_for(waiting, 2) == "m"


async def test_a_reader_that_falls_behind_gets_overflow_not_a_growing_queue() -> None:
    listener = Listener(maxsize=3)
    for n in range(5):
        listener.offer(str(n))
    # 0, 1, 2 filled it; 3 found it full and replaced it by the marker; 4 came after.
    assert [await listener.get(timeout=1) for _ in range(2)] == [OVERFLOW, "4"]
    assert await listener.get(timeout=0.05) is None


async def test_a_cancelled_wait_raises_and_the_listener_still_works() -> None:
    listener = Listener(maxsize=4)
    waiting = asyncio.ensure_future(listener.get(timeout=30))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    listener.offer("after")
    assert await listener.get(timeout=1) == "after"
