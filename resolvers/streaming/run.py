"""A run of a creation as the runner holds it: what the run *is* (`Run`: its creation, the
events it wrote, their text and usage) apart from how it is *produced* (`Production`: the
model's pump, the batch of deltas waiting to go out, what a retried job skips, cancel)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from inference.base import QUEUE_POSITION, Delta, Piece, Usage
from resolvers.core.models import Creation
from resolvers.core.routing import RoutedEngine
from resolvers.streaming.events import Event


class Diverged(Exception):
    """A retried run's model did not reproduce the text the first attempt sent."""


class End:
    """Queued last: the model's pieces ended, with `error` or without."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class HandOver:
    """Queued to wake the producer: its creation was cancelled while others share its run."""


@dataclass(frozen=True)
class Queued:
    """The engine keeps the run waiting for a free model: `position` 1 is next."""

    position: int


@dataclass(frozen=True)
class Due:
    """Queued when a waiting batch's interval ends: time to send it. `batch` is the batch
    it was set for (`Batch.number`): one sent meanwhile makes it stale."""

    batch: int


PieceQueue = asyncio.Queue[Piece | End | HandOver | Queued | Due]
# Items that may wait for the producer: there, the pump stops reading the model (an upstream's
# burst then waits in its socket, not in our memory) until half of them are taken.
PIECES_AHEAD = 64


@dataclass
class Batch:
    """Deltas waiting to go out as one event (see `runner.Batching`)."""

    pending: list[Delta] = field(default_factory=list)
    tokens: int = 0
    last_flush: float = 0.0  # time.monotonic() of the last flush
    number: int = 0  # of the batch that waits: `take` moves it on

    def add(self, delta: Delta) -> None:
        self.pending.append(delta)
        self.tokens += delta.tokens

    def take(self) -> tuple[str, int]:
        """The text and token count of what waits, which no longer waits."""
        text, tokens = "".join(d.text for d in self.pending), self.tokens
        self.pending.clear()
        self.tokens = 0
        self.number += 1
        return text, tokens


@dataclass
class Resume:
    """What a retried job's model says again and must not be sent twice."""

    skip_chars: int = 0  # of the text an earlier attempt streamed, still to skip
    skip_fraction: float = -1.0  # progress stages up to this one were sent already

    def skip(self, text: str, sent_text: str) -> str:
        """`text` without what the earlier attempt already sent; raises Diverged if the model
        did not say it again (no seed): splicing two different texts would garble both."""
        dropped = min(self.skip_chars, len(text))
        offset = len(sent_text) - self.skip_chars
        if text[:dropped] != sent_text[offset : offset + dropped]:
            raise Diverged
        self.skip_chars -= dropped
        return text[dropped:]


@dataclass
class Production:
    """How a run is produced: the pump moving the model's pieces into `queue`, the batch,
    the resume-skip, and the cancel and hand-over flags."""

    queue: PieceQueue | None = None
    pump: asyncio.Task[None] | None = None
    batch: Batch = field(default_factory=Batch)
    resume: Resume = field(default_factory=Resume)
    cancel_requested: bool = False
    hand_over: bool = False  # cancelled while copies follow: go on for them (`_hand_over`)
    shared: bool = False  # producing the run that went on for the copies of a cancelled source
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set: the pump may read on
    due: asyncio.TimerHandle | None = None  # queues the waiting batch's `Due`

    def start(self, pieces: AsyncIterator[Piece]) -> PieceQueue:
        """Start the pump: the tool's pieces go into a new `queue` as they come, at most
        `PIECES_AHEAD` of them waiting."""
        self.queue = asyncio.Queue()
        self.pump = _start_pump(pieces, self.queue, self.room)
        return self.queue

    def due_at(self, when: float) -> None:
        """Queue a `Due` for the waiting batch at `when` (a time.monotonic), unless one is
        set already: one timer per batch, not a timeout around every wait for a piece."""
        if self.due is not None or self.queue is None:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + (when - time.monotonic())
        self.due = loop.call_at(at, self._queue_due, self.queue, self.batch.number)

    def _queue_due(self, queue: PieceQueue, batch: int) -> None:
        self.due = None
        queue.put_nowait(Due(batch))

    def cancel_due(self) -> None:
        if self.due is not None:
            self.due.cancel()
            self.due = None

    async def next(self) -> Piece | End | HandOver | Queued | Due:
        """The next item of the queue; once half of a full queue is taken, the pump goes on."""
        assert self.queue is not None, "start the pump (or make the queue) first"
        item = await self.queue.get()
        if self.queue.qsize() <= PIECES_AHEAD // 2:
            self.room.set()
        return item

    def ready(self) -> bool:
        """Whether an item waits in the queue (`next` would not wait)."""
        return self.queue is not None and not self.queue.empty()

    def cancel_pump(self) -> None:
        self.cancel_due()
        if self.pump is not None and not self.pump.done():
            self.pump.cancel()


@dataclass
class Run:
    """What a run is: its creation, the events it wrote (up to `seq`), their text and usage."""

    creation_id: str
    creation: Creation | None = None
    engine: RoutedEngine | None = None
    seq: int = 0
    text: list[str] = field(default_factory=list)  # only what was sent, this attempt
    sent_text: str = ""  # what an earlier attempt already streamed (a retried job)
    usage: Usage = field(default_factory=Usage)
    prompt_streamed: int = 0  # prompt tokens already put on delta events
    completion_streamed: int = 0  # completion tokens already put on delta events
    fraction: float = 0.0  # of the last progress event
    result: dict[str, Any] | None = None
    unconfirmed: Event | None = None  # written to the log, its answer not yet read
    # `started`, held to go out in one write with the next event: the model's first piece
    # was already waiting when the run began (`Runner._start`).
    held: Event | None = None
    began: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    # (seq, monotonic time) last saved in the row; the claim saved it RUNNING at seq 0
    checkpoint: tuple[int, float] = field(default_factory=lambda: (0, time.monotonic()))
    production: Production = field(default_factory=Production)

    def streamed(self) -> str:
        """Every text this creation has streamed, an earlier attempt's included."""
        return self.sent_text + "".join(self.text)


def _start_pump(
    pieces: AsyncIterator[Piece], queue: PieceQueue, room: asyncio.Event
) -> asyncio.Task[None]:
    """Move the tool's pieces into `queue`, waiting for `room` whenever it is full; however
    the task ends (even cancelled before it ran a step), an `End` follows, so the producer
    loop never waits forever. The first token goes to the producer before the next piece is
    read: a burst that arrived in one read does not hold back its first token."""

    async def pump() -> None:
        # An engine that makes this run wait for a free model says where it is in line.
        QUEUE_POSITION.set(lambda position: queue.put_nowait(Queued(position)))
        try:
            first_token = True
            async for piece in pieces:
                queue.put_nowait(piece)
                if queue.qsize() >= PIECES_AHEAD:
                    room.clear()
                    await room.wait()
                if first_token and isinstance(piece, Delta) and piece.text:
                    first_token = False
                    await asyncio.sleep(0)  # the producer sends it out now
        finally:
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()

    def ended(task: asyncio.Task[None]) -> None:
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        queue.put_nowait(End(error))

    task = asyncio.create_task(pump())
    task.add_done_callback(ended)
    return task
