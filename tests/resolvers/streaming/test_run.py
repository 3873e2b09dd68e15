"""A run's production pieces on their own: the batch of deltas, its due time, the resume-skip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from inference.base import Delta
from resolvers.streaming.run import Batch, Diverged, Due, End, Production, Resume, Run


def test_a_batch_hands_out_what_waits_once() -> None:
    batch = Batch()
    batch.add(Delta("Once", tokens=1))
    batch.add(Delta(" upon", tokens=2))
    assert batch.take() == ("Once upon", 3)
    assert batch.take() == ("", 0) and batch.pending == []


def test_a_retry_skips_what_the_first_attempt_sent_across_batches() -> None:
    sent = "Once upon a time"
    resume = Resume(skip_chars=len(sent))
    assert resume.skip("Once up", sent) == ""
    assert resume.skip("on a time, a fox", sent) == ", a fox"
    assert resume.skip_chars == 0
    assert resume.skip(" ran", sent) == " ran"  # nothing left to skip


def test_a_retry_that_says_something_else_diverges() -> None:
    resume = Resume(skip_chars=4)
    with pytest.raises(Diverged):
        resume.skip("Twice", "Once")


async def test_the_pump_ends_its_queue_even_when_cancelled_before_a_step() -> None:
    async def pieces() -> AsyncIterator[Delta]:
        yield Delta("never")

    production = Production()
    queue = production.start(pieces())
    production.cancel_pump()
    item = await asyncio.wait_for(queue.get(), 2)
    assert isinstance(item, End) and isinstance(item.error, asyncio.CancelledError)


def test_a_run_streamed_text_includes_the_earlier_attempt() -> None:
    run = Run("c1", sent_text="Once ", text=["upon", " a time"])
    assert run.streamed() == "Once upon a time"


async def test_a_waiting_batch_is_due_once_and_a_batch_sent_before_makes_it_stale() -> None:
    production = Production(queue=asyncio.Queue())
    production.batch.add(Delta("a", tokens=1))
    # one timer per batch, however often it is asked for
    production.due_at(time.monotonic() + 0.05)
    production.due_at(time.monotonic() + 0.01)
    assert await asyncio.wait_for(production.next(), 2) == Due(0)
    assert production.queue is not None and production.queue.empty()
    # a batch sent before its due time: the Due that still comes names the batch that went
    production.due_at(time.monotonic())
    production.batch.take()
    assert await asyncio.wait_for(production.next(), 2) == Due(0) != Due(production.batch.number)
    # and a cancelled due time queues nothing
    production.batch.add(Delta("b", tokens=1))
    production.due_at(time.monotonic() + 0.01)
    production.cancel_due()
    await asyncio.sleep(0.05)
    assert production.queue.empty()
