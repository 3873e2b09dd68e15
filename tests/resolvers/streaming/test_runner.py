"""The runner against the real Postgres and Redis, with scripted engines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from inference.base import Completion, Delta, GenerationRequest, ModelUnavailable, collect
from inference.dev import DevEngine
from resolvers.access.auth import Principal
from resolvers.core.errors import ServiceUnavailable
from resolvers.core.models import Creation, CreationStatus, User
from resolvers.core.settings import Settings
from resolvers.creation import follow_creation, usage_so_far
from resolvers.resources import Core, open_core
from resolvers.streaming.events import Event, EventKind
from resolvers.tools import get_tool


class _NoJobs:
    """A job queue with nothing in it (these tests run fast tools)."""

    async def enqueue(self, creation_id: str) -> None:
        raise AssertionError("no jobs here")

    async def abort(self, creation_id: str) -> None:
        pass

    async def pending(self, creation_id: str) -> bool:
        return False

    async def aclose(self) -> None:
        pass


NO_JOBS = _NoJobs()


class ScriptedEngine:
    """Yields `tokens` deltas, then raises `error` (if any)."""

    name = "scripted"

    def __init__(self, tokens: int, error: BaseException | None = None) -> None:
        self.tokens = tokens
        self.error = error

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        for index in range(self.tokens):
            yield Delta(f" t{index}")
            await asyncio.sleep(0)
        if self.error is not None:
            raise self.error

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


@contextlib.asynccontextmanager
async def core_with(settings: Settings, engine: object) -> AsyncIterator[Core]:
    async with open_core(settings, engine=engine) as core:  # type: ignore[arg-type]
        await Creation.all().delete()
        await User.all().delete()
        yield core


async def new_creation(prompt: str = "p", max_tokens: int = 20) -> Creation:
    user = await User.create(email=f"{prompt}-{max_tokens}@example.com", password_hash="x")
    data = get_tool("write").parse({"prompt": prompt, "max_tokens": max_tokens, "seed": 1})
    return await Creation.create(owner=user, tool="write", input=data)


async def logged(core: Core, creation_id: str) -> list[Event]:
    return await core.feed.history.read(creation_id, after=0)


async def test_a_model_error_ends_the_stream_with_its_code(settings: Settings) -> None:
    async with core_with(settings, ScriptedEngine(3, ModelUnavailable("gpu node lost"))) as core:
        creation = await new_creation()
        status = await core.runner.run(str(creation.id))
        events = await logged(core, str(creation.id))
        await creation.refresh_from_db()
    assert status is CreationStatus.FAILED
    assert events[-1].kind is EventKind.FAILED and events[-1].code == "MODEL_UNAVAILABLE"
    assert events[-1].completion_tokens == 3
    assert creation.error_code == "MODEL_UNAVAILABLE"
    assert creation.output == " t0 t1 t2"


async def test_an_unexpected_error_is_masked_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with core_with(settings, ScriptedEngine(2, RuntimeError("secret detail"))) as core:
        creation = await new_creation()
        status = await core.runner.run(str(creation.id))
        events = await logged(core, str(creation.id))
    assert status is CreationStatus.FAILED
    assert events[-1].code == "INTERNAL" and "secret" not in events[-1].message
    assert "secret detail" in caplog.text


async def test_a_retried_job_does_not_repeat_text(settings: Settings) -> None:
    engine = DevEngine(token_delay=0.005)  # paced, so the first attempt dies midway
    async with core_with(settings, engine) as core:
        creation = await new_creation("retry", 60)
        cid = str(creation.id)
        # given a first attempt that streamed part of the text and died (no terminal event)
        first_attempt = asyncio.create_task(core.runner.run(cid))
        seen = 0
        async for _event in core.feed.follow(cid):
            seen += 1
            if seen == 3:  # started and two deltas are in the log
                break
        first_attempt.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first_attempt
        partial = await logged(core, cid)
        assert not any(e.terminal for e in partial)
        # when the job runs again
        status = await core.runner.run(cid)
        events = await logged(core, cid)
        await creation.refresh_from_db()
    # then the log reads as one clean run: one start, the whole text once, one terminal event
    assert status is CreationStatus.COMPLETED
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events].count(EventKind.STARTED) == 1
    assert sum(e.terminal for e in events) == 1
    text = "".join(e.text for e in events if e.kind is EventKind.DELTA)
    assert len(text.split()) == 60
    assert creation.output == text and creation.status is CreationStatus.COMPLETED


async def test_the_deltas_in_the_log_add_up_to_the_usage_so_far(settings: Settings) -> None:
    async with core_with(settings, DevEngine(token_delay=0)) as core:
        creation = await new_creation("count my prompt", 40)
        cid = str(creation.id)
        assert await core.runner.run(cid) is CreationStatus.COMPLETED
        events = await logged(core, cid)
        running = await usage_so_far(cid, feed=core.feed)
        await creation.refresh_from_db()
    # the prompt's tokens travel with the first delta, each delta's text with its own
    deltas = [e for e in events if e.kind is EventKind.DELTA]
    assert deltas[0].prompt_tokens == creation.prompt_tokens > 0
    assert sum(e.prompt_tokens for e in deltas) == creation.prompt_tokens
    assert sum(e.completion_tokens for e in deltas) == creation.completion_tokens == 40
    # what the appends counted is what the creation spent
    assert (running.prompt_tokens, running.completion_tokens) == (
        creation.prompt_tokens,
        creation.completion_tokens,
    )


async def test_the_usage_so_far_survives_a_trimmed_log(settings: Settings) -> None:
    # given a log that keeps about 100 entries and a delta per token
    small = settings.model_copy(update={"event_log_maxlen": 100, "batch_max_tokens": 1})
    async with core_with(small, DevEngine(token_delay=0)) as core:
        creation = await new_creation("long", 400)
        cid = str(creation.id)
        # when 400 tokens stream through it
        assert await core.runner.run(cid) is CreationStatus.COMPLETED
        kept = await core.feed.history.read(cid, after=0, count=1000)
        prompt, completion = await core.feed.history.usage(cid)
        await creation.refresh_from_db()
    # then the log lost its first deltas, yet the running usage counted every one
    assert sum(e.completion_tokens for e in kept if e.kind is EventKind.DELTA) < 400
    assert (prompt, completion) == (creation.prompt_tokens, 400)


async def test_a_finished_creation_is_not_run_twice(settings: Settings) -> None:
    async with core_with(settings, DevEngine(token_delay=0)) as core:
        creation = await new_creation()
        assert await core.runner.run(str(creation.id)) is CreationStatus.COMPLETED
        before = await logged(core, str(creation.id))
        assert await core.runner.run(str(creation.id)) is CreationStatus.COMPLETED
        assert await logged(core, str(creation.id)) == before


async def test_a_fast_creation_whose_producer_died_ends_for_its_followers(
    settings: Settings,
) -> None:
    quick = settings.model_copy(update={"producer_lease_seconds": 1})
    async with core_with(quick, DevEngine(token_delay=0)) as core:
        creation = await new_creation("orphan", 20)
        cid = str(creation.id)
        # given a run that streamed a little and whose process vanished (no lease, no ending)
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        await Creation.filter(id=cid).update(status=CreationStatus.RUNNING, created_at=an_hour_ago)
        await core.feed.publish(Event(cid, 1, EventKind.STARTED))
        await core.feed.publish(Event(cid, 2, EventKind.DELTA, text="half", completion_tokens=1))
        principal = Principal(user_id=str(creation.owner_id), expires_at=2**31)
        # when someone follows it
        events = await follow_creation(
            principal=principal,
            creation_id=cid,
            after=0,
            feed=core.feed,
            queue=NO_JOBS,
            outputs=core.outputs,
        )
        received = [event async for event in events]
        await creation.refresh_from_db()
    # then the stream ends with one typed failure and the row agrees
    assert [e.kind for e in received] == [EventKind.STARTED, EventKind.DELTA, EventKind.FAILED]
    assert received[-1].code == "INTERRUPTED" and received[-1].seq == 3
    assert creation.status is CreationStatus.FAILED and creation.output == "half"


async def test_a_live_producer_keeps_its_lease(settings: Settings) -> None:
    quick = settings.model_copy(update={"producer_lease_seconds": 1})
    async with core_with(quick, DevEngine(token_delay=0.01)) as core:
        creation = await new_creation("alive", 250)  # 2.5 s, longer than the lease
        cid = str(creation.id)
        await Creation.filter(id=cid).update(status=CreationStatus.RUNNING)
        core.runner.spawn(creation)
        principal = Principal(user_id=str(creation.owner_id), expires_at=2**31)
        events = await follow_creation(
            principal=principal,
            creation_id=cid,
            after=0,
            feed=core.feed,
            queue=NO_JOBS,
            outputs=core.outputs,
        )
        received = [event async for event in events]
    assert received[-1].kind is EventKind.COMPLETED


async def test_a_failing_log_write_still_ends_the_stream(settings: Settings) -> None:
    async with core_with(settings, DevEngine(token_delay=0)) as core:
        creation = await new_creation("flaky", 50)
        history = core.feed.history
        real_append = history.append
        calls = 0

        async def flaky_append(*events: Event, unclaimed: bool = False) -> list[str]:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise ServiceUnavailable("redis hiccup")
            return await real_append(*events, unclaimed=unclaimed)

        history.append = flaky_append  # type: ignore[method-assign]
        status = await core.runner.run(str(creation.id))
        events = await logged(core, str(creation.id))
        await creation.refresh_from_db()
    assert status is CreationStatus.FAILED
    # a log that stays unreachable interrupts the run; the row keeps what was streamed
    assert events[-1].kind is EventKind.FAILED and events[-1].code == "INTERRUPTED"
    assert creation.status is CreationStatus.FAILED
    assert creation.output == "".join(e.text for e in events if e.kind is EventKind.DELTA)


async def test_a_cancel_flagged_before_the_model_starts_ends_at_once(settings: Settings) -> None:
    async with core_with(settings, DevEngine(token_delay=0.01)) as core:
        creation = await new_creation("early", 500)
        await core.feed.history.flag_cancel(str(creation.id))
        status = await asyncio.wait_for(core.runner.run(str(creation.id)), 5)
        events = await logged(core, str(creation.id))
    assert status is CreationStatus.CANCELLED
    assert [e.kind for e in events] == [EventKind.STARTED, EventKind.CANCELLED]


async def test_a_lost_cancel_signal_is_caught_by_the_heartbeat(settings: Settings) -> None:
    quick = settings.model_copy(update={"producer_lease_seconds": 1})
    async with core_with(quick, DevEngine(token_delay=0.01)) as core:
        creation = await new_creation("deaf", 1000)  # 10 s unless stopped
        await Creation.filter(id=creation.id).update(status=CreationStatus.RUNNING)
        task = core.runner.spawn(creation)
        # only the flag, as if the control message had been lost
        await core.feed.history.flag_cancel(str(creation.id))
        status = await asyncio.wait_for(task, 5)
    assert status is CreationStatus.CANCELLED


async def test_a_log_missing_the_rows_ending_is_repaired_for_followers(
    settings: Settings,
) -> None:
    async with core_with(settings, DevEngine(token_delay=0)) as core:
        creation = await new_creation("repair", 5)
        cid = str(creation.id)
        # a producer that saved the row and died before appending its ending
        await core.feed.publish(Event(cid, 1, EventKind.STARTED))
        await core.feed.publish(Event(cid, 2, EventKind.DELTA, text="done", completion_tokens=1))
        await Creation.filter(id=cid).update(
            status=CreationStatus.COMPLETED, output="done", completion_tokens=1, last_seq=3
        )
        principal = Principal(user_id=str(creation.owner_id), expires_at=2**31)
        events = await follow_creation(
            principal=principal,
            creation_id=cid,
            after=0,
            feed=core.feed,
            queue=NO_JOBS,
            outputs=core.outputs,
        )
        received = [event async for event in events]
    assert [e.kind for e in received] == [EventKind.STARTED, EventKind.DELTA, EventKind.COMPLETED]
    assert received[-1].seq == 3 and received[-1].completion_tokens == 1


async def test_following_after_the_ending_returns_at_once(settings: Settings) -> None:
    async with core_with(settings, DevEngine(token_delay=0)) as core:
        creation = await new_creation("over", 5)
        await core.runner.run(str(creation.id))
        last = (await logged(core, str(creation.id)))[-1].seq
        principal = Principal(user_id=str(creation.owner_id), expires_at=2**31)
        for after in (last, last + 10):
            events = await follow_creation(
                principal=principal,
                creation_id=str(creation.id),
                after=after,
                feed=core.feed,
                queue=NO_JOBS,
                outputs=core.outputs,
            )
            assert await asyncio.wait_for(_drain(events), 2) == []


async def _drain(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


async def test_a_retry_that_cannot_reproduce_the_text_fails_instead_of_splicing(
    settings: Settings,
) -> None:
    async with core_with(settings, ScriptedEngine(10)) as core:
        creation = await new_creation("diverge", 10)
        cid = str(creation.id)
        await Creation.filter(id=cid).update(status=CreationStatus.RUNNING)
        # an earlier attempt streamed text this engine will not produce again
        await core.feed.publish(Event(cid, 1, EventKind.STARTED))
        await core.feed.publish(Event(cid, 2, EventKind.DELTA, text=" other", completion_tokens=1))
        status = await core.runner.run(cid)
        events = await logged(core, cid)
        await creation.refresh_from_db()
    assert status is CreationStatus.FAILED
    assert [e.kind for e in events] == [EventKind.STARTED, EventKind.DELTA, EventKind.FAILED]
    assert creation.output == " other" and creation.error_code == "INTERRUPTED"


@pytest.mark.parametrize(
    ("how", "ending", "status"),
    [
        ("shutdown", EventKind.FAILED, CreationStatus.FAILED),
        ("cancel", EventKind.CANCELLED, CreationStatus.CANCELLED),
    ],
)
async def test_a_write_cut_off_by_a_cancel_is_kept_and_the_ending_follows_it(
    settings: Settings, how: str, ending: EventKind, status: CreationStatus
) -> None:
    # A delta is in flight when the run is cancelled (the server stops, or the user
    # cancels): Redis stored it, but the cancel came before its answer. The ending must
    # follow it, not collide with its seq (that lost the ending, and on shutdown left the
    # database open), and its text is part of the output.
    async with core_with(settings, DevEngine(token_delay=0.001)) as core:
        creation = await new_creation("cut", 400)
        await Creation.filter(id=creation.id).update(status=CreationStatus.RUNNING)
        creation.status = CreationStatus.RUNNING
        history = core.feed.history
        real_append = history.append
        landed = asyncio.Event()

        async def answer_lost(*events: Event, unclaimed: bool = False) -> list[str]:
            written = await real_append(*events, unclaimed=unclaimed)
            if events[-1].kind is EventKind.DELTA and not landed.is_set():
                landed.set()
                await asyncio.sleep(3600)  # the answer never comes before the cancel
            return written

        history.append = answer_lost  # type: ignore[method-assign]
        core.runner.spawn(creation)
        await asyncio.wait_for(landed.wait(), 10)
        if how == "cancel":
            await core.runner.request_cancel(str(creation.id))
            for _ in range(200):
                if (await logged(core, str(creation.id)))[-1].terminal:
                    break
                await asyncio.sleep(0.02)
        await asyncio.wait_for(core.runner.stop(), 10)  # no StaleProducer escapes
        events = await logged(core, str(creation.id))
        await creation.refresh_from_db()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events] == [EventKind.STARTED, EventKind.DELTA, ending]
    assert creation.status is status
    assert creation.last_seq == events[-1].seq
    assert creation.output == events[1].text != ""


class PacedEngine(ScriptedEngine):
    """Yields `tokens` deltas, one every `pace` seconds."""

    def __init__(self, tokens: int, pace: float) -> None:
        super().__init__(tokens)
        self.pace = pace

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        for index in range(self.tokens):
            await asyncio.sleep(self.pace)
            yield Delta(f" t{index}")


async def test_batches_grow_when_log_writes_slow_down(settings: Settings) -> None:
    async with core_with(settings, PacedEngine(60, 0.002)) as core:
        creation = await new_creation("slow-log", 100)
        history = core.feed.history
        real_append = history.append

        async def slow_append(*events: Event, unclaimed: bool = False) -> list[str]:
            if any(event.kind is EventKind.DELTA for event in events):
                await asyncio.sleep(0.06)  # longer than the 40 ms batching interval
            return await real_append(*events, unclaimed=unclaimed)

        history.append = slow_append  # type: ignore[method-assign]
        assert await core.runner.run(str(creation.id)) is CreationStatus.COMPLETED
        events = await logged(core, str(creation.id))
    deltas = [e for e in events if e.kind is EventKind.DELTA]
    # one event per interval after each write ends: the 60 tokens go in a handful of events
    # (sent one token each, as they did while the interval was counted from a write's start,
    # they would take 60)
    assert len(deltas) <= 10
    assert "".join(e.text for e in deltas) == "".join(f" t{i}" for i in range(60))


class PausingEngine(ScriptedEngine):
    """Yields two deltas at once, pauses `pause` seconds, then yields a third."""

    def __init__(self, pause: float) -> None:
        super().__init__(3)
        self.pause = pause
        self.yielded = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        for index in range(3):
            if index == 2:
                await asyncio.sleep(self.pause)
            self.yielded += 1
            yield Delta(f" t{index}")


async def test_a_waiting_batch_goes_out_when_its_interval_ends(settings: Settings) -> None:
    engine = PausingEngine(pause=1.0)
    async with core_with(settings, engine) as core:
        creation = await new_creation("pause", 10)
        history = core.feed.history
        real_append = history.append
        written: list[tuple[str, int]] = []

        async def noting_append(*events: Event, unclaimed: bool = False) -> list[str]:
            for event in events:
                if event.kind is EventKind.DELTA:
                    written.append((event.text, engine.yielded))
            return await real_append(*events, unclaimed=unclaimed)

        history.append = noting_append  # type: ignore[method-assign]
        assert await core.runner.run(str(creation.id)) is CreationStatus.COMPLETED
    # the first token at once; the second, which waited for the batch interval, goes out
    # when that interval ends, not when the next token comes a second later
    assert [text for text, _ in written] == [" t0", " t1", " t2"]
    assert written[1] == (" t1", 2)
