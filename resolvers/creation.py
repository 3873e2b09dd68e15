"""Creation use cases: start, read, list, cancel and follow, always as the calling user."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from inference.base import Usage
from resolvers.access import scopes
from resolvers.access.auth import Principal, require_user
from resolvers.access.limits import store_admitted
from resolvers.core import metrics
from resolvers.core.errors import (
    AlreadyFinished,
    EventsLost,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from resolvers.core.models import Creation, CreationStatus
from resolvers.guard.inputs import Masking, mask, screen
from resolvers.guard.shield import Shield
from resolvers.storage.outputs import Outputs
from resolvers.streaming.cache import Cache, copy_of, reproducible
from resolvers.streaming.events import Event, EventKind, is_queue_notice, queue_notice
from resolvers.streaming.feed import Feed
from resolvers.streaming.history import LogLost, StaleProducer
from resolvers.streaming.queue import JobQueue
from resolvers.streaming.recovery import settle
from resolvers.streaming.runner import Prestart, Runner
from resolvers.tools import Mode, get_tool

MAX_PAGE = 100


@dataclass(frozen=True)
class Page:
    """A page of creations, newest first, with Relay-style cursors."""

    items: list[tuple[str, Creation]]
    has_next: bool
    end_cursor: str | None


async def start_creation(
    *,
    principal: Principal | None,
    tool_name: str,
    payload: Mapping[str, Any],
    runner: Runner,
    queue: JobQueue,
    cache: Cache,
    feed: Feed,
    outputs: Outputs,
    quota_per_day: int = 0,
    shield: Shield | None = None,
) -> Creation:
    """Validate, store and dispatch a creation: a copy of an identical answer (cached or in
    flight) when there is one, else a new run (fast: here; long: on a worker)."""
    tool = get_tool(tool_name)
    user = require_user(principal, scopes.tool_scope(tool.name))
    data = tool.parse(payload)
    if tool.prepare is not None:
        data = await tool.prepare(data, user, outputs.store)
        tool.validate(data)
    budget = tool.token_budget(data)
    variant, backend = runner.choose(tool.name)
    served_by = f"{variant.backend}/{variant.model}/{variant.version}/{variant.adapter}"
    key = cache.key(
        tool.name, data, served_by, owner=user.user_id, personal=tool.prepare is not None
    )
    # Fast runs are stored RUNNING and handed over: no second read before the model starts.
    fast = tool.mode_for(data) is Mode.FAST
    creation = Creation(
        id=uuid.uuid4(),
        owner_id=user.user_id,
        tool=tool.name,
        input=data,
        status=CreationStatus.RUNNING if fast else CreationStatus.QUEUED,
        model=backend,
        model_name=variant.model_name,
        variant=variant.name,
        cache_key=key,
        reserved_tokens=budget,
    )
    # The personal data masked in the model's input: kinds and counts on the row, and the
    # masked input itself for a model started here (its run masks it otherwise).
    masking = mask(data)
    creation.masked = masking.found
    # A fast request asks Redis for an answer to reuse or an identical run in flight
    # (claiming the run if there is none) while it is screened, admitted and stored, unless
    # an identical run is in flight in this process. Its model starts before the row is
    # stored (`_EarlyModel`): at once when no stored answer can serve it (it pins no seed,
    # or the tool's answers are not kept), else once the lookup found none, so a cache hit
    # costs no model work. The model reads the input as it is (screening refuses, it never
    # rewrites) and is abandoned if the request is refused or copies another run. Asking
    # first, then storing, then starting would put two round trips before every model's
    # start.
    early = lookup = None
    if fast and not cache.running_here(key):
        early = _EarlyModel(runner, creation, masking)
        may_reuse = reproducible(data) and cache.keeps_answers(tool.name)
        if not may_reuse:
            early.start()  # its task first: it runs before the lookup's
        lookup = cache.source_soon(key, data, str(creation.id))
        if may_reuse:
            early.start_unless_found(lookup)
        await asyncio.sleep(0)  # the model's task hands its work to the engine before we go on
    try:
        await screen(shield, data)
        # The row is the reservation: admission stores it.
        await store_admitted(creation, per_day=quota_per_day)
        source = await (lookup or cache.source_for(key, data, str(creation.id)))
    except BaseException:
        if early is not None:
            early.abandon()
        if lookup is not None:
            cache.withdraw(lookup, key, str(creation.id))
        raise
    if source is not None and await _copies(creation, source):
        if early is not None:
            early.abandon()
        metrics.CACHE_HITS.labels(tool.name).inc()
        runner.spawn(
            creation, copy_of(source, feed=feed, outputs=outputs, queue=queue, cache=cache)
        )
    elif fast:
        runner.spawn(creation, prestarted=early.take() if early is not None else None)
    else:
        try:
            await queue.enqueue(str(creation.id))
        except ServiceUnavailable:
            # Never leave a QUEUED row that nothing will run.
            await creation.delete()
            raise
        await announce_queue(str(creation.id), creation.model, feed=feed, queue=queue)
    return creation


class _EarlyModel:
    """The model of a fast request, started before its row is stored: at once (`start`), or
    when the cache lookup finds nothing to reuse (`start_unless_found`). `take` it for the
    run, or `abandon` it."""

    def __init__(self, runner: Runner, creation: Creation, masking: Masking) -> None:
        self._runner = runner
        self._creation = creation
        self._masking = masking
        self._settled = False
        self._started: Prestart | None = None

    def start(self) -> None:
        self._started = self._runner.prestart(self._creation, masking=self._masking)

    def start_unless_found(self, lookup: asyncio.Task[str | None]) -> None:
        lookup.add_done_callback(self._on_lookup)

    def _on_lookup(self, lookup: asyncio.Task[str | None]) -> None:
        # Runs before the request's own `await lookup` resumes (registered first).
        if self._settled or lookup.cancelled() or lookup.exception() is not None:
            return
        if lookup.result() is None:  # nothing to reuse: this request's run is the one
            self.start()

    def take(self) -> Prestart | None:
        """The started model, for `Runner.spawn` (None: spawn starts it)."""
        self._settled = True
        return self._started

    def abandon(self) -> None:
        """The request failed or copies another run: stop the model if it started."""
        self._settled = True
        if self._started is not None:
            self._runner.abandon(self._started)
            self._started = None


async def _copies(creation: Creation, source: str) -> bool:
    """Make `creation` a copy of `source`, whose run it shares. False when `source`'s row is
    not stored: its request claimed the run in flight and then failed, or is still being
    admitted (`Cache.source_soon`); this creation then runs on its own."""
    try:
        await Creation.filter(id=creation.id).update(
            status=CreationStatus.RUNNING, source_id=source, cache_key=None
        )
    except IntegrityError:
        return False
    creation.status, creation.source_id = CreationStatus.RUNNING, uuid.UUID(source)
    creation.cache_key = None
    return True


async def announce_queue(creation_id: str, model: str, *, feed: Feed, queue: JobQueue) -> None:
    """While a long creation waits for a worker, its log says so: `started`, then a Progress
    "queued (position N)" whenever its place changes. Appended only until a runner claims
    the creation (the runner's own events follow on); anything that goes wrong here only
    means one notice fewer."""
    try:
        position = await queue.position(creation_id)
        if position is None:
            return
        tail = await feed.history.last_event(creation_id)
        if tail is None:
            started = Event(creation_id, 1, EventKind.STARTED, model=model)
            await feed.publish(started, unclaimed=True)
            tail = started
        if is_queue_notice(tail) and tail.stage == queue_notice("", 0, position).stage:
            return
        if tail.kind is EventKind.STARTED or is_queue_notice(tail):
            notice = queue_notice(creation_id, tail.seq + 1, position)
            await feed.publish(notice, unclaimed=True)
    except (StaleProducer, LogLost, ServiceUnavailable):
        return


async def wait_until_finished(
    creation: Creation, *, feed: Feed, queue: JobQueue, outputs: Outputs
) -> Creation:
    """Follow the creation's log to its terminal event, then reload the row."""
    async for _event in _follow(creation, 0, feed, queue, outputs):
        pass
    await creation.refresh_from_db()
    return creation


async def get_creation(
    *, principal: Principal | None, creation_id: str, scope: str = scopes.CREATIONS_READ
) -> Creation:
    """The caller's creation (an admin: anyone's); NotFound for unknown ids and for other
    users' creations."""
    user = require_user(principal, scope)
    creation = await Creation.get_or_none(id=_uuid(creation_id))
    if creation is None or not (user.admin or str(creation.owner_id) == user.user_id):
        raise NotFound(f"no creation {creation_id}")
    return creation


async def list_creations(
    *,
    principal: Principal | None,
    first: int,
    after: str | None,
    tool: str | None = None,
    owner_id: str | None = None,
) -> Page:
    """The caller's creations, newest first, `first` at most MAX_PAGE per page. An admin
    sees everyone's, or one user's with `owner_id`."""
    user = require_user(principal, scopes.CREATIONS_READ)
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first: must be between 1 and {MAX_PAGE}", field="first")
    query = Creation.filter(**user.owner_filter())
    if owner_id is not None:
        if not user.admin:
            raise Forbidden("only admins list other users' creations")
        query = query.filter(owner_id=_uuid(owner_id))
    if tool is not None:
        query = query.filter(tool=get_tool(tool).name)
    if after is not None:
        created_at, last_id = _decode_cursor(after)
        query = query.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=last_id)
        )
    rows = await query.order_by("-created_at", "-id").limit(first + 1)
    items = [(_encode_cursor(row), row) for row in rows[:first]]
    return Page(items=items, has_next=len(rows) > first, end_cursor=items[-1][0] if items else None)


async def cancel_creation(
    *,
    principal: Principal | None,
    creation_id: str,
    runner: Runner,
    queue: JobQueue,
    feed: Feed,
    outputs: Outputs,
) -> Creation:
    """Stop a creation wherever it runs; it ends with `cancelled` and the usage so far.

    Answers the row once the cancel took effect: its producer saves the row before it writes
    the terminal event, which is awaited for half a producer lease at most (long enough for a
    producer that missed the control message to read the cancel flag on its next heartbeat,
    every third of a lease). A row still running then is being cancelled (`cancel_pending`).
    """
    creation = await get_creation(
        principal=principal, creation_id=creation_id, scope=scopes.CREATIONS_CANCEL
    )
    if creation.status.terminal:
        raise AlreadyFinished(f"creation {creation_id} is already {creation.status.value}")
    # Not started yet: cancel it here (the compare-and-set loses to a runner that claims it),
    # after the queue notices it may have in its log.
    if creation.status is CreationStatus.QUEUED:
        await feed.history.claim(str(creation.id))
    ending_seq = await feed.history.last_seq(str(creation.id)) + 1
    cancelled = await Creation.filter(id=creation.id, status=CreationStatus.QUEUED).update(
        status=CreationStatus.CANCELLED, finished_at=datetime.now(UTC), last_seq=ending_seq
    )
    if cancelled:
        await feed.publish(Event(str(creation.id), ending_seq, EventKind.CANCELLED))
        await queue.abort(str(creation.id))
    else:
        # The runner's signal stops the model mid-stream and still writes the terminal event;
        # an arq abort here could kill the job while it writes that event.
        await runner.request_cancel(str(creation.id))
        await _until_ended(creation, feed.lease_seconds / 2, feed, queue, outputs)
    await creation.refresh_from_db()
    return creation


async def cancel_pending(creation_id: str, *, feed: Feed) -> bool:
    """True when a cancel was asked of a running creation: it ends soon, with `cancelled`
    (or with the ending it reached first)."""
    return await feed.history.cancel_flagged(creation_id)


async def usage_so_far(creation_id: str, *, feed: Feed) -> Usage:
    """What a creation that has not ended has spent so far: the tokens of the text it has
    streamed and of the prompts behind them, as its log's appends counted them (the row
    gets its usage when it ends)."""
    prompt, completion = await feed.history.usage(creation_id)
    return Usage(prompt, completion)


async def follow_creation(
    *,
    principal: Principal | None,
    creation_id: str,
    after: int,
    feed: Feed,
    queue: JobQueue,
    outputs: Outputs,
    scope: str = scopes.CREATIONS_READ,
) -> AsyncGenerator[Event, None]:
    """Events of the caller's creation with seq > `after`, then the live tail."""
    if after < 0:
        raise InvalidInput("after: must be 0 or more", field="after")
    creation = await get_creation(principal=principal, creation_id=creation_id, scope=scope)
    return _follow(creation, after, feed, queue, outputs)


def follow_started(
    creation: Creation, *, feed: Feed, queue: JobQueue, outputs: Outputs
) -> AsyncGenerator[Event, None]:
    """Every event of a creation the caller has just started: the row in hand is theirs, so
    there is no second read of it on the way to the first token.

    A fast run (RUNNING: spawned by `start_creation` in this process) is followed `fresh`:
    begun before the event loop's next turn, the follower listens before the run writes its
    first event, and takes every event from this process at once (no subscribe or log read
    first). Begun later, it finds the gap and reads the log: slower, never wrong."""
    fresh = creation.status is CreationStatus.RUNNING
    return _follow(creation, 0, feed, queue, outputs, fresh=fresh)


async def _follow(
    creation: Creation,
    after: int,
    feed: Feed,
    queue: JobQueue,
    outputs: Outputs,
    *,
    fresh: bool = False,
) -> AsyncGenerator[Event, None]:
    creation_id = str(creation.id)
    if creation.status.terminal and await feed.history.last_seq(creation_id) < creation.last_seq:
        # The log expired or was lost: replay what the row remembers, ending on its seq.
        for event in _from_row(creation, await outputs.full(creation), after, None):
            yield event
        return

    # A follower lives as long as its subscription: it keeps no row (a hole in the log has
    # it read again), only what its quiet check needs.
    on_quiet = _QuietCheck(creation, feed, queue)
    del creation
    while True:
        try:
            events = feed.follow(creation_id, after=after, on_quiet=on_quiet, fresh=fresh)
            async for event in events:
                yield event
            return
        except EventsLost as lost:
            # The log has a hole (Redis lost it, or trimmed a very long run's head): the row
            # holds an ended creation's whole story, and a running one's checkpoint.
            creation = await Creation.get(id=creation_id)
            output = await outputs.full(creation)
            if creation.status.terminal:
                for event in _from_row(creation, output, lost.after, lost.chars):
                    yield event
                return
            if lost.chars is None or creation.last_seq <= max(lost.after, 1):
                raise
            for event in _checkpointed(creation, output, lost.after, lost.chars):
                yield event
            after, fresh = creation.last_seq, False  # the log goes on from the checkpoint


class _QuietCheck:
    """A follower's `on_quiet`: the recovery check (`settle`) once per poll interval per
    creation in this process, and a queued creation's place in the queue. An object, not
    closures: an idle subscription keeps it for its whole life."""

    __slots__ = ("_creation_id", "_feed", "_model", "_queue", "_queued")

    def __init__(self, creation: Creation, feed: Feed, queue: JobQueue) -> None:
        self._creation_id = str(creation.id)
        self._model = creation.model
        self._queued = creation.status is CreationStatus.QUEUED
        self._feed = feed
        self._queue = queue

    async def __call__(self, _last: int) -> None:
        await self._feed.once_per_poll(self._creation_id, self._check)

    async def _check(self) -> None:
        await settle(self._creation_id, feed=self._feed, queue=self._queue)
        if self._queued:
            await announce_queue(self._creation_id, self._model, feed=self._feed, queue=self._queue)


async def _until_ended(
    creation: Creation, seconds: float, feed: Feed, queue: JobQueue, outputs: Outputs
) -> None:
    """Follow a creation's log until its terminal event, for `seconds` at most."""
    after = await feed.history.last_seq(str(creation.id))
    events = _follow(creation, after, feed, queue, outputs)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds), contextlib.aclosing(events):
            async for _event in events:
                pass


def _from_row(creation: Creation, output: str, after: int, chars: int | None) -> list[Event]:
    """The events after seq `after` of an ended creation, as its row tells them: `started`,
    one delta with the whole output, the ending. A follower inside that delta gets the rest
    of its text when it counted the `chars` it has, else EventsLost."""
    events = [e for e in _row_events(creation, output) if e.seq > after]
    if events and events[0].first_seq and events[0].first_seq <= after:
        if chars is None:
            raise EventsLost(str(creation.id), after=after, chars=chars)
        rest = dataclasses.replace(events[0], text=output[chars:], first_seq=after + 1)
        events[0] = rest
    return events


def _checkpointed(creation: Creation, output: str, after: int, chars: int) -> list[Event]:
    """A running creation's events after seq `after` up to its row's checkpoint, for a
    follower that has delivered `chars` of its text: `started` if due, then one delta."""
    creation_id = str(creation.id)
    events = [Event(creation_id, 1, EventKind.STARTED, model=creation.model)] if after < 1 else []
    if creation.last_seq >= 2:
        events.append(
            Event(
                creation_id,
                creation.last_seq,
                EventKind.DELTA,
                text=output[chars:],
                first_seq=max(after + 1, 2),
            )
        )
    return events


def _row_events(creation: Creation, output: str) -> list[Event]:
    creation_id, last = str(creation.id), creation.last_seq
    kind = {
        CreationStatus.COMPLETED: EventKind.COMPLETED,
        CreationStatus.CANCELLED: EventKind.CANCELLED,
    }.get(creation.status, EventKind.FAILED)
    events = [Event(creation_id, 1, EventKind.STARTED, model=creation.model)]
    if output and last > 2:
        events.append(
            Event(
                creation_id,
                last - 1,
                EventKind.DELTA,
                text=output,
                completion_tokens=creation.completion_tokens,
                first_seq=2,
            )
        )
    terminal = Event(
        creation_id,
        last,
        kind,
        prompt_tokens=creation.prompt_tokens,
        completion_tokens=creation.completion_tokens,
        code=creation.error_code or "",
        message=creation.error_message or "",
    )
    return [e for e in events if e.seq < last] + [terminal]


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no creation {value}") from None


def _encode_cursor(row: Creation) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created_at, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None or not 2000 <= moment.year <= 9000:
            raise ValueError("cursor time out of range")
        return moment, uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidInput("after: not a cursor from this API", field="after") from None
