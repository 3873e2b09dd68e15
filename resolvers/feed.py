"""Following a creation: replay its log after a cursor, then the live tail, with no gap.

A follower listens on the creation's channel *before* reading the log, so nothing published
between the two is missed. Live events are checked against the last delivered `seq`:
duplicates are skipped, a gap (or a reconnect, an overflow, or a quiet spell) triggers a read
of the log, which always holds every event. Catch-up reads coalesce consecutive deltas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache

from resolvers import keys
from resolvers.bus import OVERFLOW, RESYNC, Bus
from resolvers.events import Event, coalesce
from resolvers.history import History

PAGE = 512  # log entries per catch-up read
_QUIET_CHECKS_KEPT = 1_024  # creations whose last quiet check is remembered, before pruning


class Feed:
    """The event log plus the bus: what producers write to and subscribers read from."""

    def __init__(
        self, history: History, bus: Bus, *, poll_seconds: float, lease_seconds: float = 10.0
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

    async def publish(self, event: Event) -> None:
        """Append to the log and notify live followers (one Redis round trip)."""
        await self.history.append(event)

    async def follow(
        self,
        creation_id: str,
        *,
        after: int = 0,
        on_quiet: Callable[[int], Awaitable[None]] | None = None,
    ) -> AsyncIterator[Event]:
        """Every event with seq > `after`, in order, ending with the terminal one.

        `on_quiet(last_seq)` runs whenever nothing arrived for a poll interval (a hook to
        notice a producer that died).
        """
        last = after
        async with self.bus.listen(keys.event_channel(creation_id)) as listener:
            while True:
                page = await self.history.read(creation_id, after=last, count=PAGE)
                _raise_if_cancelled()
                for event in coalesce(page):
                    yield event
                    last = event.seq
                    if event.terminal:
                        return
                if len(page) == PAGE:
                    continue  # the log may hold more
                if not page:
                    tail = await self.history.last_event(creation_id)
                    if tail is not None and tail.terminal:
                        return  # the client already has the ending (after >= its seq)
                while True:
                    message = await listener.get(timeout=self._poll)
                    _raise_if_cancelled()
                    if message is None and on_quiet is not None:
                        await on_quiet(last)
                    if message is None or message in (RESYNC, OVERFLOW):
                        break  # re-read the log: we may have missed something
                    event = _decoded(message)
                    if event.seq <= last:
                        continue
                    if event.seq != last + 1:
                        break  # a gap: the log has the missing events
                    yield event
                    last = event.seq
                    if event.terminal:
                        return


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
