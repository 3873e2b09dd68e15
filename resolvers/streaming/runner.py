"""Producing a creation: run its tool, batch tokens into events, persist the result.

The same `Runner.run` serves fast tools (a task in the API process) and long ones (the arq
job calls it). It claims the creation (QUEUED -> RUNNING), appends `started`, then deltas
batched on a leading edge (the first token goes out at once, later ones at most once every
`batch_interval` after the previous write ended, or when `max_tokens` wait), `progress`
events, and exactly one terminal event after the row is saved.
A cancel signal from any process stops the model and still reports the usage so far.

The row never forgets what was streamed: a heartbeat renews the producer lease and, about
every `CHECKPOINT_SECONDS`, saves the text and seq streamed so far into the row. If Redis
loses the event log meanwhile, the next append finds it lost and the log is rebuilt from the
text this run holds (`History.rebuild`); a retried job resumes from the row when the log
lacks its beginning.

What a run holds is in `run.py`: what the run is (`Run`: its creation, seq, text, usage) apart
from how it is produced (`Production`: the pump, the batch, the resume-skip, cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from inference.base import (
    Delta,
    InferenceError,
    Piece,
    Stage,
    Structured,
    Usage,
    close_stream,
)
from resolvers.core import keys, metrics, tracing
from resolvers.core.bus import Bus
from resolvers.core.errors import ServiceUnavailable
from resolvers.core.logcontext import CREATION_ID
from resolvers.core.models import Creation, CreationStatus
from resolvers.core.routing import RoutedEngine, Router, Variant
from resolvers.storage.outputs import Outputs
from resolvers.streaming.cache import HANDED_OVER, Cache, sharers
from resolvers.streaming.events import Event, EventKind, complete, is_queue_notice, queue_notice
from resolvers.streaming.feed import Feed
from resolvers.streaming.history import LogLost, StaleProducer
from resolvers.streaming.run import Diverged, Due, End, HandOver, Queued, Resume, Run
from resolvers.tools import TOOLS, Masking

log = logging.getLogger(__name__)
CHECKPOINT_SECONDS = 1.0  # how stale the row's copy of a running creation's text may be

# What clients read in CreationFailed.message; the details stay in the log.
_PUBLIC_MESSAGES = {
    "MODEL_UNAVAILABLE": "the model is unavailable, try again later",
    "INFERENCE_TIMEOUT": "the model did not answer in time",
    "BAD_INPUT": "the model refused the request",
    "INFERENCE_ERROR": "the model failed",
    "UNSUPPORTED_LANGUAGE": "the speech model does not know this language",
}


@dataclass(frozen=True)
class Batching:
    """How deltas are grouped into events: every `interval` seconds or `max_tokens`."""

    interval: float = 0.04
    max_tokens: int = 32


class Runner:
    """Runs creations in this process and obeys cancel signals sent from any process."""

    def __init__(
        self,
        *,
        feed: Feed,
        bus: Bus,
        router: Router,
        batching: Batching,
        cache: Cache,
        outputs: Outputs,
    ) -> None:
        self._feed = feed
        self._bus = bus
        self._router = router
        self._batching = batching
        self._cache = cache
        self._outputs = outputs
        self._runs: dict[str, Run] = {}
        self._tasks: set[asyncio.Task[CreationStatus | None]] = set()

    async def start(self) -> None:
        """Listen for cancel signals addressed to creations running here."""
        self._bus.on_message(keys.CONTROL_CHANNEL, self._on_control)

    async def stop(self) -> None:
        """Stop local fast runs; they end with a `failed` event (INTERRUPTED)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # one run's failure must not stop the shutdown (and the rest)
                log.exception("a run failed while the server stopped")

    def choose(self, tool: str) -> tuple[Variant, str]:
        """A routing variant for a new creation, and the label of the backend it uses."""
        variant = self._router.choose(tool)
        return variant, self._router.engine(tool, variant.name).name

    def spawn(
        self,
        creation: Creation,
        pieces: AsyncIterator[Piece] | None = None,
        *,
        prestarted: Prestart | None = None,
    ) -> asyncio.Task[CreationStatus | None]:
        """Run a creation this process just stored as RUNNING (fast tools), in the background.

        The row is handed over, so nothing is read again before the model starts: this is the
        time-to-first-token path. `prestarted` is its model, started before the row was
        stored (`prestart`).
        """
        start = prestarted or self.prestart(creation, pieces)
        task = asyncio.create_task(
            self._run_spawned(creation, start.state, start.span), context=start.context
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # The pump stops with the run, even one cancelled before it ran a step.
        task.add_done_callback(lambda _task: start.state.production.cancel_pump())
        return task

    def prestart(
        self,
        creation: Creation,
        pieces: AsyncIterator[Piece] | None = None,
        *,
        masking: Masking | None = None,
    ) -> Prestart:
        """Start the model of a fast creation, which need not be stored yet; `spawn` it once
        it is, or `abandon` it. Until then its tokens wait in the run's queue. `masking`:
        the creation's input already masked (`mask(creation.input)`), if the caller has it."""
        state = self._register(str(creation.id))
        state.creation = creation
        # The model's task is queued first, ahead of all this request and the run do next:
        # until the model is in its own native code, every step the event loop takes delays
        # its Python (the GIL). It runs in the run's context (span, log fields) all the same.
        context = contextvars.copy_context()
        span = context.run(self._enter_run, creation, state, pieces, masking)
        return Prestart(state, context, span)

    def abandon(self, start: Prestart) -> None:
        """Stop a prestarted model whose creation will not run (refused, or a copy)."""
        start.state.production.cancel_pump()
        self._runs.pop(start.state.creation_id, None)
        start.span.set_attribute("creation.status", "abandoned")
        start.span.end()

    def _enter_run(
        self,
        creation: Creation,
        state: Run,
        pieces: AsyncIterator[Piece] | None,
        masking: Masking | None,
    ) -> trace.Span:
        """In the spawned run's context: open its span, name it in the log, start the model."""
        span = tracing.tracer().start_span(
            "creation.run", attributes=_run_attributes(creation, True)
        )
        otel_context.attach(trace.set_span_in_context(span))
        CREATION_ID.set(state.creation_id)
        if pieces is None:
            pieces = self._model_pieces(creation, state, masking)
        state.production.start(pieces)
        return span

    async def _run_spawned(
        self, creation: Creation, state: Run, span: trace.Span
    ) -> CreationStatus | None:
        with trace.use_span(span, end_on_exit=True):
            status = await self._drive(creation, state, fresh=True, retry=False)
            span.set_attribute("creation.status", "none" if status is None else status.value)
            return status

    async def request_cancel(self, creation_id: str) -> None:
        """Ask whichever process runs the creation to stop it."""
        await self._feed.history.flag_cancel(creation_id)
        if not self._cancel_local(creation_id):
            await self._bus.publish(keys.CONTROL_CHANNEL, json.dumps({"cancel": creation_id}))

    async def run(self, creation_id: str) -> CreationStatus | None:
        """Produce a queued (or interrupted) creation's events; its final status, None if
        it is not ours. A worker that stops midway lets CancelledError through: arq retries."""
        if creation_id in self._runs:
            return None  # already produced here (a retry of a job this worker still runs)
        creation = await Creation.get_or_none(id=creation_id)
        if creation is None or creation.status.terminal:
            return None if creation is None else creation.status
        claimed = await Creation.filter(id=creation_id, status=CreationStatus.QUEUED).update(
            status=CreationStatus.RUNNING
        )
        if not claimed and creation.status is not CreationStatus.RUNNING:
            return None
        # From here the log is ours: the queue notices written while it waited stop now
        # (they could otherwise land between our read of the log and our next append).
        await self._feed.history.claim(creation_id)
        return await self._run(creation, self._register(creation_id), fresh=False, retry=True)

    def _register(self, creation_id: str) -> Run:
        state = Run(creation_id)
        self._runs[creation_id] = state
        return state

    async def _run(
        self, creation: Creation, state: Run, *, fresh: bool, retry: bool
    ) -> CreationStatus | None:
        """One run of a creation, as a span of the trace that started it."""
        with tracing.span("creation.run", _run_attributes(creation, fresh)) as current:
            status = await self._drive(creation, state, fresh=fresh, retry=retry)
            current.set_attribute("creation.status", "none" if status is None else status.value)
            return status

    async def _drive(
        self, creation: Creation, state: Run, *, fresh: bool, retry: bool
    ) -> CreationStatus | None:
        creation_id = state.creation_id
        state.creation = creation
        CREATION_ID.set(creation_id)  # this task's log lines name the creation
        # A new row counts as alive for a lease (`recovery.settle`): its first beat can wait
        # one period, off the way to the first token. A resumed run renews its lease at once.
        heartbeat = asyncio.create_task(self._heartbeat(state, first_beat=not fresh))
        try:
            await self._start(creation, state, fresh=fresh)
            return await self._produce(state)
        except asyncio.CancelledError:
            if state.production.cancel_requested:
                # A job abort arriving after the user's cancel: still end the stream properly.
                _uncancel()
                await self._finish(state, CreationStatus.CANCELLED)
                return CreationStatus.CANCELLED
            if retry:
                raise  # the worker is stopping: arq runs the job again
            await self._finish(state, CreationStatus.FAILED, "INTERRUPTED", "the server stopped")
            raise
        except StaleProducer:
            log.warning("creation %s: another producer owns the log, stopping", creation_id)
            return None
        except Diverged:
            log.warning("creation %s: the retry did not reproduce the text sent", creation_id)
            await self._finish(
                state,
                CreationStatus.FAILED,
                "INTERRUPTED",
                "the run was interrupted and could not be resumed exactly",
            )
            return CreationStatus.FAILED
        except ServiceUnavailable:
            # The event log stayed unreachable: the row keeps what was streamed, and its
            # followers write the ending into the log once Redis is back.
            log.warning("creation %s: the event log is unreachable, ending the run", creation_id)
            with contextlib.suppress(Exception):
                await self._finish(
                    state, CreationStatus.FAILED, "INTERRUPTED", "the event log was unreachable"
                )
            return CreationStatus.FAILED
        except Exception:  # the outermost layer of a run: it must still end its stream
            log.exception("creation %s: the run failed", creation_id)
            # If even this fails (database down), followers settle the creation later.
            with contextlib.suppress(Exception):
                await self._finish(
                    state, CreationStatus.FAILED, "INTERNAL", "the generation failed"
                )
            return CreationStatus.FAILED
        finally:
            heartbeat.cancel()
            self._runs.pop(creation_id, None)
            state.production.cancel_pump()

    async def _start(self, creation: Creation, state: Run, *, fresh: bool) -> None:
        """Start the model and write `started`; the run's queue receives the tool's pieces."""
        if not fresh:
            resume = state.production.resume
            state.seq, state.sent_text, resume.skip_fraction = await self._resume_point(creation)
            resume.skip_chars = len(state.sent_text)
            # A cancel may have come between the claim and the registration.
            if await self._feed.history.cancel_flagged(state.creation_id):
                state.production.cancel_requested = True
        if state.production.queue is None:  # not spawned: the model has not started yet
            if state.production.cancel_requested:
                state.production.queue = asyncio.Queue()
                state.production.queue.put_nowait(End(asyncio.CancelledError()))
            else:
                # Start the model first: `started` is written while it makes the first token.
                state.production.start(self._model_pieces(creation, state))
        if state.seq == 0:
            if state.production.ready():
                # The model was quicker than the start path (a prestarted fast run): `started`
                # goes out with the first delta, in one write.
                state.held = Event(state.creation_id, 1, EventKind.STARTED, model=creation.model)
            else:
                await self._emit(state, EventKind.STARTED, model=creation.model)

    async def _model_pieces(
        self, creation: Creation, state: Run, masking: Masking | None = None
    ) -> AsyncIterator[Piece]:
        """The tool's pieces from the creation's engine, chosen once the pump runs (a failure
        there ends the run like any failure of the model)."""
        engine = state.engine = self._router.engine(creation.tool, creation.variant)
        pieces = TOOLS[creation.tool].pieces(
            engine,
            creation.input,
            engine.variant.model,
            state.creation_id,
            self._outputs.store,
            masking=masking,
        )
        try:
            async for piece in pieces:
                yield piece
        finally:
            await close_stream(pieces)

    async def _produce(self, state: Run) -> CreationStatus:
        batch = state.production.batch
        while True:
            await self._emit_held(state, unless_ready=True)
            if batch.pending:
                state.production.due_at(batch.last_flush + self._batching.interval)
            item = await state.production.next()
            if state.production.hand_over:
                await self._hand_over(state)
            if isinstance(item, End):
                await self._flush(state)
                return await self._end(state, item.error)
            await self._take(state, item)

    async def _take(self, state: Run, item: Piece | HandOver | Queued | Due) -> None:
        """One item of the run's queue that does not end it."""
        batch = state.production.batch
        if isinstance(item, Due):
            if item.batch == batch.number:  # else that batch went out meanwhile
                await self._flush(state)
        elif isinstance(item, Delta):
            state.usage += Usage(item.prompt_tokens, item.tokens)
            batch.add(item)
            leading = time.monotonic() - batch.last_flush >= self._batching.interval
            if leading or batch.tokens >= self._batching.max_tokens:
                await self._flush(state)
        elif isinstance(item, Stage):
            await self._flush(state)
            # a retry passes the stages already sent
            if item.fraction > state.production.resume.skip_fraction:
                state.fraction = item.fraction
                await self._emit(state, EventKind.PROGRESS, fraction=item.fraction, stage=item.name)
        elif isinstance(item, Queued):
            await self._flush(state)
            notice = queue_notice(state.creation_id, 0, item.position, state.fraction)
            await self._emit(
                state, EventKind.PROGRESS, fraction=notice.fraction, stage=notice.stage
            )
        elif isinstance(item, Structured):
            state.result = dict(item.data)
        elif isinstance(item, Usage):
            state.usage += item
        # a HandOver only woke the loop: `_produce` handed the run over already

    async def _end(self, state: Run, error: BaseException | None) -> CreationStatus:
        if error is None:
            await self._finish(state, CreationStatus.COMPLETED)
            return CreationStatus.COMPLETED
        if isinstance(error, asyncio.CancelledError) and state.production.cancel_requested:
            await self._finish(state, CreationStatus.CANCELLED)
            return CreationStatus.CANCELLED
        if isinstance(error, InferenceError | asyncio.CancelledError):
            # A CancelledError nobody asked for leaked from the model client (tritonclient
            # does that): the model stream broke.
            code = error.code if isinstance(error, InferenceError) else "MODEL_UNAVAILABLE"
            log.warning("creation %s: model failed (%s): %s", state.creation_id, code, error)
            await self._finish(
                state, CreationStatus.FAILED, code, _PUBLIC_MESSAGES.get(code, "the model failed")
            )
            return CreationStatus.FAILED
        log.error("creation %s failed", state.creation_id, exc_info=error)
        await self._finish(state, CreationStatus.FAILED, "INTERNAL", "the generation failed")
        return CreationStatus.FAILED

    async def _flush(self, state: Run) -> None:
        batch = state.production.batch
        state.production.cancel_due()
        batch.last_flush = time.monotonic()
        if not batch.pending:
            return
        text, tokens = batch.take()
        resume = state.production.resume
        if resume.skip_chars:
            # A retried job regenerates text already in the log: do not send it twice, and
            # give up rather than splice if the model does not reproduce it (no seed).
            text = resume.skip(text, state.sent_text)
        if not text:
            return  # all of it sent before, or a usage correction alone (in state.usage)
        # The prompt tokens counted since the last delta go with it: the log then tells what
        # a running creation has spent so far (`resolvers.creation.usage_so_far`).
        prompt = max(state.usage.prompt_tokens - state.prompt_streamed, 0)
        await self._emit(
            state,
            EventKind.DELTA,
            text=text,
            prompt_tokens=prompt,
            completion_tokens=max(tokens, 0),
        )
        # The next batch waits an interval from the end of this write, not its start: when
        # writes slow down under load, batches grow instead of shrinking to one token each.
        batch.last_flush = time.monotonic()
        state.prompt_streamed += prompt
        state.completion_streamed += max(tokens, 0)
        state.text.append(text)  # only what was sent: the stored output never holds more
        if state.first_token is None:
            state.first_token = time.monotonic()
            tool, backend = _labels(state)
            metrics.TIME_TO_FIRST_TOKEN.labels(tool, backend).observe(
                state.first_token - state.began
            )
        # This process's followers were handed the delta (`Feed.publish`): they send it before
        # the run goes on with what waits (the rest of a burst, or the row's final save).
        await asyncio.sleep(0)

    async def _finish(
        self,
        state: Run,
        status: CreationStatus,
        code: str = "",
        message: str = "",
        *,
        log_code: str = "",
    ) -> None:
        """Save the row, then write the ending (its code is `log_code` when one is given)."""
        await self._confirm_interrupted_write(state)
        if state.production.shared:
            await self._finish_shared(state, status, code, message)
            return
        terminal_seq = state.seq + 1
        output, output_key = await self._outputs.keep(state.creation_id, state.streamed())
        # Conditional: a follower may have ended this run as orphaned (lease lost).
        ended = await Creation.filter(id=state.creation_id, status=CreationStatus.RUNNING).update(
            status=status,
            output=output,
            output_key=output_key,
            result=state.result,
            **_served(state.engine),
            prompt_tokens=state.usage.prompt_tokens,
            completion_tokens=state.usage.completion_tokens,
            error_code=code or None,
            error_message=message or None,
            last_seq=terminal_seq,
            finished_at=datetime.now(UTC),
        )
        if not ended:
            log.warning("creation %s was ended elsewhere; not writing an ending", state.creation_id)
            return
        _count(state, status, code)
        if state.creation is not None and state.creation.cache_key:
            state.creation.status = status
            fell_back = state.engine is not None and state.engine.fell_back
            await self._cache.finished(state.creation, state.creation.tool, reusable=not fell_back)
        kind = {
            CreationStatus.COMPLETED: EventKind.COMPLETED,
            CreationStatus.CANCELLED: EventKind.CANCELLED,
        }.get(status, EventKind.FAILED)
        await self._emit(
            state,
            kind,
            prompt_tokens=state.usage.prompt_tokens,
            completion_tokens=state.usage.completion_tokens,
            code=log_code or code,
            message=message,
        )

    async def _hand_over(self, state: Run) -> None:
        """End this creation as cancelled for its owner while the run goes on for the
        creations copying it, in the log of `keys.shared_run(<this creation>)`."""
        state.production.hand_over = False
        await self._flush(state)
        run_id = keys.shared_run(state.creation_id)
        await self._feed.history.hold_lease(run_id, self._feed.lease_seconds)
        await self._finish(state, CreationStatus.CANCELLED, log_code=HANDED_OVER)
        log.info("creation %s: cancelled; its run goes on for the copies", state.creation_id)
        state.creation_id = run_id
        state.production.shared, state.production.cancel_requested = True, False
        state.production.resume = Resume()
        state.seq, state.text, state.sent_text = 0, [], ""
        state.usage, state.prompt_streamed, state.completion_streamed = Usage(), 0, 0
        model = state.creation.model if state.creation is not None else ""
        await self._emit(state, EventKind.STARTED, model=model)

    async def _finish_shared(
        self, state: Run, status: CreationStatus, code: str, message: str
    ) -> None:
        """End a run that went on for copies: its result for them, then its ending."""
        if status is CreationStatus.COMPLETED and state.result is not None:
            source_id = str(state.creation.id) if state.creation is not None else ""
            with contextlib.suppress(Exception):  # the copies then end without it
                await self._cache.keep_shared_result(source_id, state.result)
        kind = {
            CreationStatus.COMPLETED: EventKind.COMPLETED,
            CreationStatus.CANCELLED: EventKind.CANCELLED,
        }.get(status, EventKind.FAILED)
        await self._emit(state, kind, code=code, message=message)

    async def _emit(self, state: Run, kind: EventKind, **fields: Any) -> None:
        """Write the next event (after the held `started`, if any, in the same write)."""
        held = [state.held] if state.held is not None else []
        # The seq moves only once the event is in the log: a failed write leaves no hole.
        event = Event(
            creation_id=state.creation_id, seq=state.seq + len(held) + 1, kind=kind, **fields
        )
        state.unconfirmed = event  # until the log says so: a cancel may cut the answer off
        try:
            await self._feed.publish(*held, event)
        except LogLost as lost:  # never with `started` held: it is seq 1, which needs no top
            await self._rebuild_log(state, lost.top)
            await self._feed.publish(event)
        state.seq, state.held = event.seq, None
        state.unconfirmed = None

    async def _emit_held(self, state: Run, *, unless_ready: bool = False) -> None:
        """Write the held `started` alone (`unless_ready`: unless an item waits, which it
        can go out with)."""
        if state.held is None or (unless_ready and state.production.ready()):
            return
        held, state.held = state.held, None
        await self._emit(state, held.kind, model=held.model)

    async def _rebuild_log(self, state: Run, top: int) -> None:
        """Write the lost log again from this run's memory: `started`, then one delta with
        all the text so far, ending on the last seq confirmed."""
        log.warning(
            "creation %s: the event log lost seqs %d-%d; rebuilding it",
            state.creation_id,
            top + 1,
            state.seq,
        )
        model = state.creation.model if state.creation is not None else ""
        events = [Event(state.creation_id, 1, EventKind.STARTED, model=model)]
        if state.seq >= 2:
            events.append(
                Event(
                    state.creation_id,
                    state.seq,
                    EventKind.DELTA,
                    text=state.streamed(),
                    prompt_tokens=state.prompt_streamed,
                    completion_tokens=state.completion_streamed,
                    first_seq=2,
                )
            )
        usage = (state.prompt_streamed, state.completion_streamed)
        if not await self._feed.history.rebuild(events[: state.seq], usage):
            raise StaleProducer(f"{state.creation_id}: another producer wrote the log meanwhile")

    async def _confirm_interrupted_write(self, state: Run) -> None:
        """A write cut off by a cancel may have landed: if it did, it is part of the run
        (the ending must follow it, and its text belongs to the output)."""
        event, state.unconfirmed = state.unconfirmed, None
        if event is None:
            return
        try:
            if not await self._feed.history.holds(event):
                return
        except ServiceUnavailable:
            return  # unknown: the row keeps only what is known to be streamed
        state.seq, state.held = event.seq, None  # a held `started` went with it
        if event.kind is EventKind.DELTA:
            state.text.append(event.text)

    async def _resume_point(self, creation: Creation) -> tuple[int, str, float]:
        """(last seq, text streamed, last progress) of a creation started before: from its
        log, or from the row's checkpoint when the log lost its beginning or its end."""
        earlier = await self._feed.history.read(str(creation.id), after=0, count=1_000_000)
        if complete(earlier) and (earlier[-1].seq if earlier else 0) >= creation.last_seq:
            if not earlier:
                return 0, "", -1.0
            text = "".join(e.text for e in earlier if e.kind is EventKind.DELTA)
            fractions = [
                e.fraction
                for e in earlier
                if e.kind is EventKind.PROGRESS and not is_queue_notice(e)
            ]
            return earlier[-1].seq, text, max(fractions, default=-1.0)
        log.warning("creation %s: resuming from the row, the log lost events", creation.id)
        return creation.last_seq, await self._outputs.full(creation), -1.0

    async def _heartbeat(self, state: Run, *, first_beat: bool = True) -> None:
        """Renew the producer lease and checkpoint the row; also re-read the cancel flag, in
        case a cancel signal was lost on pub/sub (a reconnect, or a replica that missed the
        control channel). Without `first_beat`, the first renewal comes one period later."""
        lease = self._feed.lease_seconds
        if not first_beat:
            await asyncio.sleep(min(lease / 3, CHECKPOINT_SECONDS))
        while True:
            try:
                await self._feed.history.hold_lease(state.creation_id, lease)
                if (
                    not state.production.cancel_requested
                    and await self._feed.history.cancel_flagged(state.creation_id)
                ):
                    self._cancel_local(state.creation_id)
            except ServiceUnavailable:
                log.warning("creation %s: could not renew the producer lease", state.creation_id)
            if state.production.shared and state.creation is not None:
                with contextlib.suppress(Exception):  # the database is down: try next beat
                    if not await sharers(str(state.creation.id)):
                        self._stop(state)  # every copy was cancelled
            await self._checkpoint(state, lease / 2)
            await asyncio.sleep(min(lease / 3, CHECKPOINT_SECONDS))

    async def _checkpoint(self, state: Run, at_least_every: float) -> None:
        """Save what was streamed so far into the row, when it moved on (and at least every
        `at_least_every` s: a fresh `updated_at` tells followers the producer lives)."""
        seq, saved_at = state.checkpoint
        now = time.monotonic()
        if state.production.shared or (state.seq == seq and now - saved_at < at_least_every):
            return
        try:
            output, output_key = await self._outputs.keep(state.creation_id, state.streamed())
            await Creation.filter(id=state.creation_id, status=CreationStatus.RUNNING).update(
                output=output,
                output_key=output_key,
                last_seq=state.seq,
                prompt_tokens=state.prompt_streamed,
                completion_tokens=state.completion_streamed,
                updated_at=datetime.now(UTC),
            )
        except Exception:  # the database may be down for a moment: the next beat retries
            log.warning("creation %s: could not checkpoint the row", state.creation_id)
            return
        state.checkpoint = (state.seq, now)

    def _cancel_local(self, creation_id: str) -> bool:
        state = self._runs.get(creation_id)
        if state is None:
            return False
        if state.production.cancel_requested or state.production.shared:
            return True  # a shared run stops once no copy follows it (`_heartbeat`)
        if state.creation is not None and state.creation.cache_key and not state.production.shared:
            state.production.cancel_requested = True
            task = asyncio.create_task(self._cancel_shareable(state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._stop(state)
        return True

    def _stop(self, state: Run) -> None:
        state.production.cancel_requested = True
        state.production.cancel_pump()

    async def _cancel_shareable(self, state: Run) -> None:
        """Cancel a run that identical requests may copy: if some do, it goes on for them
        (`_hand_over`); else its model stops."""
        shared = False
        if state.creation is not None and state.creation.cache_key:
            with contextlib.suppress(Exception):  # unknown: stop it, as with no copies
                await self._cache.release(state.creation.cache_key, state.creation_id)
                shared = await sharers(state.creation_id)
        pump, queue = state.production.pump, state.production.queue
        if shared and pump is not None and not pump.done() and queue is not None:
            state.production.hand_over = True
            queue.put_nowait(HandOver())
        else:
            self._stop(state)

    async def _on_control(self, message: str) -> None:
        data = json.loads(message)
        if isinstance(data, dict) and isinstance(data.get("cancel"), str):
            self._cancel_local(data["cancel"])


@dataclass(frozen=True)
class Prestart:
    """A fast creation's model, started before its row was stored (`Runner.prestart`)."""

    state: Run
    context: contextvars.Context
    span: trace.Span


def _run_attributes(creation: Creation, fresh: bool) -> dict[str, str | bool]:
    return {
        "creation.id": str(creation.id),
        "creation.tool": creation.tool,
        "creation.variant": creation.variant or "",
        "creation.resumed": not fresh,
    }


def _labels(state: Run) -> tuple[str, str]:
    tool = state.creation.tool if state.creation is not None else "unknown"
    backend = state.engine.name if state.engine is not None else "copy"
    return tool, backend


def _count(state: Run, status: CreationStatus, code: str) -> None:
    """Metrics of a run that ended (written once: by the process that ended it)."""
    tool, backend = _labels(state)
    metrics.RUNS.labels(tool, backend, code or status.value).inc()
    metrics.TOKENS.labels(tool, backend).inc(max(state.usage.completion_tokens, 0))
    metrics.PROMPT_TOKENS.labels(tool, backend).inc(max(state.usage.prompt_tokens, 0))
    elapsed = time.monotonic() - state.began
    if status is CreationStatus.COMPLETED and elapsed > 0 and state.usage.completion_tokens > 0:
        metrics.TOKENS_PER_SECOND.labels(tool).observe(state.usage.completion_tokens / elapsed)
    if code in _MODEL_CODES and state.engine is not None:
        metrics.MODEL_ERRORS.labels(backend, code).inc()


_MODEL_CODES = frozenset({"MODEL_UNAVAILABLE", "INFERENCE_TIMEOUT", "INFERENCE_ERROR"})


def _served(engine: RoutedEngine | None) -> dict[str, str]:
    """The backend and variant that really served a run (a fallback may have taken over)."""
    if engine is None:
        return {}
    served = engine.served_by
    return {"model": engine.name, "model_name": served.model_name, "variant": served.name}


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
