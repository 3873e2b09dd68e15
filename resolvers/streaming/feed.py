"""Following a creation: replay its log after a cursor, then the live tail, with no gap.

A follower listens on the creation's channel *before* reading the log, so nothing published
between the two is missed. Live events are checked against the last delivered `seq`:
duplicates are skipped, a gap (or a reconnect, an overflow, or a quiet spell) triggers a read
of the log, which always holds every event. Catch-up reads coalesce consecutive deltas.

A log that lost events (Redis restarted empty) is never passed on with a hole: a rebuilt log
restates the text from the start, which a follower that counted the text it delivered cuts
where it stopped; any other hole raises `EventsLost`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache

from resolvers.core import keys
from resolvers.core.bus import OVERFLOW, RESYNC, Bus
from resolvers.core.errors import EventsLost
from resolvers.streaming.events import Event, EventKind, coalesce
from resolvers.streaming.history import EventLog

PAGE = 512  # log entries per catch-up read
_QUIET_CHECKS_KEPT = 1_024  # creations whose last quiet check is remembered, before pruning


class Feed:
    """The event log plus the bus: what producers write to and subscribers read from."""

    def __init__(
        self, history: EventLog, bus: Bus, *, poll_seconds: float, lease_seconds: float = 10.0
    ) -> None:
        self.history = history
        self.bus = bus
        self.lease_seconds = lease_seconds
        self._poll = poll_seconds
        self._quiet_checks: dict[str, tuple[float, asyncio.Future[None]]] = {}

    async def once_per_poll(self, creation_id: str, check: Callable[[], Awaitable[None]]) -> None:
        """Run `check` for a quiet creation at most once per poll interval in this process:
        a thousand idle followers of one creation share one check (and its Postgres read)
        instead of making a thousand. Followers arriving while it runs wait for it."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        ran = self._quiet_checks.get(creation_id)
        if ran is not None and (not ran[1].done() or now - ran[0] < self._poll):
            if not ran[1].done():
                await asyncio.shield(ran[1])
            return
        if len(self._quiet_checks) > _QUIET_CHECKS_KEPT:
            self._forget_old_checks(now)
        running = asyncio.ensure_future(check())
        running.add_done_callback(_retrieve)  # its caller may be gone when it fails
        self._quiet_checks[creation_id] = (now, running)
        await asyncio.shield(running)

    def _forget_old_checks(self, now: float) -> None:
        for creation_id, (began, check) in list(self._quiet_checks.items()):
            if check.done() and now - began >= self._poll:
                del self._quiet_checks[creation_id]

    async def publish(self, *events: Event, unclaimed: bool = False) -> None:
        """Append consecutive events of one creation to its log and notify live followers
        (one Redis round trip); this process's own followers get them at once, without
        waiting for their pub/sub copies. `unclaimed`: see `History.append`."""
        channel = keys.event_channel(events[0].creation_id)
        copy_follows = self.history.remote
        for message in await self.history.append(*events, unclaimed=unclaimed):
            self.bus.deliver_here(channel, message, copy_follows=copy_follows)

    async def follow(
        self,
        creation_id: str,
        *,
        after: int = 0,
        on_quiet: Callable[[int], Awaitable[None]] | None = None,
        fresh: bool = False,
    ) -> AsyncIterator[Event]:
        """Every event with seq > `after`, in order, ending with the terminal one.

        `on_quiet(last_seq)` runs whenever nothing arrived for a poll interval (a hook to
        notice a producer that died). `fresh`: the creation's run is produced in this process
        and has written nothing yet (see `creation.follow_started`). The follower then takes
        this process's deliveries at once, without waiting for Redis to confirm its
        subscription nor reading the empty log first; a gap or a quiet spell still sends it
        to the log, so a run that did write before the follower listened is followed all the
        same.
        """
        cursor = _Cursor(after)
        channel = keys.event_channel(creation_id)
        async with self.bus.listen(channel, subscribed=not fresh) as listener:
            read_first = not fresh
            while True:
                if read_first:
                    page = await self.history.read(creation_id, after=cursor.last, count=PAGE)
                    _raise_if_cancelled()
                    for stored in coalesce(page):
                        event = cursor.advance(stored)
                        yield event
                        if event.terminal:
                            return
                    if len(page) == PAGE:
                        continue  # the log may hold more
                    if not page and cursor.last > 0 and await self._ended(creation_id, cursor.last):
                        return  # the client already has the ending (after >= its seq)
                read_first = True
                while True:
                    message = await listener.get(timeout=self._poll)
                    _raise_if_cancelled()
                    if message is None and on_quiet is not None:
                        await on_quiet(cursor.last)
                    if message is None or message in (RESYNC, OVERFLOW):
                        break  # re-read the log: we may have missed something
                    event = _decoded(message)
                    if event.seq <= cursor.last:
                        continue
                    if event.seq != cursor.last + 1:
                        break  # a gap: the log has the missing events
                    yield cursor.advance(event)
                    if event.terminal:
                        # This process's other followers send the ending before this one
                        # ends its stream (a `complete` message, its slot, its listener):
                        # a thousand teardowns would otherwise come before the last one's.
                        await asyncio.sleep(0)
                        return

    async def _ended(self, creation_id: str, last: int) -> bool:
        """Whether the log ends with a terminal event the client has (seq <= `last`). Asked
        only after a cursor: from the start, an empty log has none (a new creation's follower
        goes straight to the live tail, one round trip fewer before its first event). An
        ending appended after the read that found nothing new is not the client's yet: it
        comes live, or from the log after a quiet spell."""
        tail = await self.history.last_event(creation_id)
        return tail is not None and tail.terminal and tail.seq <= last


class _Cursor:
    """Where a follower is: the last seq delivered and, when it followed from the start,
    how much text it delivered (what lets it cut a rebuilt log's restated text)."""

    def __init__(self, after: int) -> None:
        self.last = after
        self.chars: int | None = 0 if after <= 1 else None

    def advance(self, event: Event) -> Event:
        """`event` as the next one to deliver; EventsLost when the log lost what lies
        between it and the last one delivered."""
        start = event.first_seq or event.seq
        if start != self.last + 1:
            if not (start == 2 and self.chars is not None and event.kind is EventKind.DELTA):
                raise EventsLost(event.creation_id, after=self.last, chars=self.chars)
            # A rebuilt log's delta holds the whole text: pass on the part not delivered yet.
            event = dataclasses.replace(
                event, text=event.text[self.chars :], first_seq=self.last + 1
            )
        self.last = event.seq
        if self.chars is not None:
            self.chars += len(event.text)
        return event


def _raise_if_cancelled() -> None:
    """Stop a follower whose task was cancelled even if a library swallowed the
    CancelledError (redis-py's and asyncio.wait_for's timeouts can, on Python 3.11): a
    subscription must not outlive the client that left."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@lru_cache(maxsize=256)
def _decoded(message: str) -> Event:
    """A live message, decoded once for all the followers of this process (they are handed
    the same string; events are immutable)."""
    return Event.decode(message)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
