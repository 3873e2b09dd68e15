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


async def test_a_wait_gets_its_full_timeout_though_an_earlier_wait_armed_the_timer() -> None:
    # The timer armed by the first wait outlives it; the second wait began later and must
    # not end at the first one's deadline.
    listener = Listener(maxsize=4)
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(listener.get(timeout=0.3))
    await asyncio.sleep(0.2)
    listener.offer("m")
    assert await first == "m"
    began = loop.time()
    assert await listener.get(timeout=0.3) is None
    assert loop.time() - began >= 0.29  # not ended by the first wait's deadline (at ~0.1 s)


async def test_a_closed_listener_leaves_no_timer_behind() -> None:
    listener = Listener(maxsize=4)
    waiting = asyncio.ensure_future(listener.get(timeout=30))
    await asyncio.sleep(0.01)
    listener.offer("m")
    assert await waiting == "m"
    handles = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    armed = [h for h in handles if not h.cancelled() and "Listener._expire" in repr(h)]
    assert len(armed) == 1  # the wait's timer outlives it, until the reader leaves
    listener.close()
    assert not [h for h in handles if not h.cancelled() and "Listener._expire" in repr(h)]


async def test_a_shorter_wait_after_a_longer_one_ends_on_its_own_time() -> None:
    listener = Listener(maxsize=4)
    first = asyncio.ensure_future(listener.get(timeout=30))
    await asyncio.sleep(0.01)
    listener.offer("m")
    assert await first == "m"  # its 30 s timer stays armed
    assert await asyncio.wait_for(listener.get(timeout=0.05), 5) is None
