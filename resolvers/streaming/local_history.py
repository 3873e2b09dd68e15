"""The event log of embedded mode: `History`'s contract over this process's memory.

An embedded server is one process, and its Redis (fakeredis) lives in it: every reader and
writer of the logs is here. A log in fakeredis cost about 0.7 ms of the event loop per append
(seven commands through redis-py's client and fakeredis's parser), on the way to every first
token too; a list does it in microseconds.

It answers as the Lua scripts answer on Redis (tests/resolvers/core/test_embedded_redis.py
runs the same scenarios on both): entries are kept in seq order, a seq must grow
(`StaleProducer`), an append past the first must follow the newest entry (`LogLost`), a queue
notice is refused once a runner claimed the creation, and a log, its usage and its flags
expire `ttl_seconds` after their last write. It publishes nothing itself: `Feed.publish`
hands each appended event to this process's followers (`Bus.deliver_here`), and there is no
other process to tell.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from resolvers.streaming.events import Event
from resolvers.streaming.history import LogLost, StaleProducer, consecutive, counted

_TRIM_SLACK = 100  # a log is cut back to maxlen once it holds this many more (XADD's `~`)


@dataclass(slots=True)
class _Log:
    seqs: list[int] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Expiring:
    """Keys that live for a while after their last write, oldest write first, so expired
    ones are dropped from the front as writes come."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._deadlines: OrderedDict[str, float] = OrderedDict()

    def touch(self, key: str, seconds: float) -> None:
        now = self._clock()
        self._deadlines[key] = now + seconds
        self._deadlines.move_to_end(key)
        while self._deadlines:
            oldest, deadline = next(iter(self._deadlines.items()))
            if deadline > now:
                break
            del self._deadlines[oldest]
            self.expired(oldest)

    def alive(self, key: str) -> bool:
        deadline = self._deadlines.get(key)
        if deadline is None:
            return False
        if deadline > self._clock():
            return True
        del self._deadlines[key]
        self.expired(key)
        return False

    def expired(self, key: str) -> None:
        """Hook: `key` is gone."""


class _Logs(_Expiring):
    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.logs: dict[str, _Log] = {}

    def get(self, creation_id: str) -> _Log | None:
        return self.logs.get(creation_id) if self.alive(creation_id) else None

    def expired(self, key: str) -> None:
        self.logs.pop(key, None)


class LocalHistory:
    """Append to and read from creations' event logs held in this process (embedded mode)."""

    remote = False  # no pub/sub copy of an appended event follows (see `Feed.publish`)

    def __init__(
        self, *, maxlen: int, ttl_seconds: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._maxlen = maxlen
        self._ttl = ttl_seconds
        self._logs = _Logs(clock)
        self._claimed = _Expiring(clock)
        self._cancels = _Expiring(clock)
        self._leases = _Expiring(clock)

    async def append(self, *events: Event, unclaimed: bool = False) -> list[str]:
        """As `History.append`: store consecutive `events` of one creation and return them
        encoded; StaleProducer when the first seq was taken (or, `unclaimed`, once a runner
        claimed the creation), LogLost when the log lacks the event before the first."""
        first = consecutive(events)[0]
        creation_id = first.creation_id
        payloads = [event.encode() for event in events]
        if unclaimed and self._claimed.alive(creation_id):
            raise StaleProducer(f"{creation_id} was claimed by a runner")
        log = self._logs.get(creation_id) or _Log()
        top = log.seqs[-1] if log.seqs else 0
        if top >= first.seq:
            raise StaleProducer(f"seq {first.seq} of {creation_id} exists")
        if first.seq > 1 and top < first.seq - 1:
            raise LogLost(creation_id, top)
        for event, payload in zip(events, payloads, strict=True):
            log.seqs.append(event.seq)
            log.payloads.append(payload)
            prompt, completion = counted(event)
            log.prompt_tokens += prompt
            log.completion_tokens += completion
        if len(log.seqs) > self._maxlen + _TRIM_SLACK:
            del log.seqs[: -self._maxlen], log.payloads[: -self._maxlen]
        self._logs.logs[creation_id] = log
        self._logs.touch(creation_id, self._ttl)
        return payloads

    async def rebuild(self, events: list[Event], usage: tuple[int, int]) -> bool:
        """As `History.rebuild` (a log here is never lost, but the contract is kept)."""
        creation_id = events[0].creation_id
        log = self._logs.get(creation_id)
        if log is not None and log.seqs and log.seqs[-1] >= events[-1].seq:
            return False
        self._logs.logs[creation_id] = _Log(
            [event.seq for event in events], [event.encode() for event in events], *usage
        )
        self._logs.touch(creation_id, self._ttl)
        return True

    async def holds(self, event: Event) -> bool:
        """True if the log holds exactly `event`."""
        log = self._logs.get(event.creation_id)
        if log is None:
            return False
        index = bisect.bisect_left(log.seqs, event.seq)
        return (
            index < len(log.seqs)
            and log.seqs[index] == event.seq
            and log.payloads[index] == event.encode()
        )

    async def last_event(self, creation_id: str) -> Event | None:
        """The newest event of the log, None when it is empty or expired."""
        log = self._logs.get(creation_id)
        return Event.decode(log.payloads[-1]) if log is not None and log.payloads else None

    async def read(self, creation_id: str, *, after: int, count: int = 512) -> list[Event]:
        """Up to `count` events with seq > `after`, in order."""
        log = self._logs.get(creation_id)
        if log is None:
            return []
        start = bisect.bisect_right(log.seqs, after)
        return [Event.decode(payload) for payload in log.payloads[start : start + count]]

    async def usage(self, creation_id: str) -> tuple[int, int]:
        """Prompt and completion tokens of the deltas appended so far."""
        log = self._logs.get(creation_id)
        return (0, 0) if log is None else (log.prompt_tokens, log.completion_tokens)

    async def claim(self, creation_id: str) -> None:
        """A runner produces this creation from now on: `unclaimed` appends are refused."""
        self._claimed.touch(creation_id, self._ttl)

    async def flag_cancel(self, creation_id: str) -> None:
        """Remember that a cancel was asked, for a producer that has not started yet."""
        self._cancels.touch(creation_id, self._ttl)

    async def cancel_flagged(self, creation_id: str) -> bool:
        """True when `flag_cancel` was called for this creation."""
        return self._cancels.alive(creation_id)

    async def hold_lease(self, creation_id: str, seconds: float) -> None:
        """Say for `seconds` that this process produces the creation."""
        self._leases.touch(creation_id, seconds)

    async def lease_held(self, creation_id: str) -> bool:
        """True while the creation's producer lease is held."""
        return self._leases.alive(creation_id)

    async def last_seq(self, creation_id: str) -> int:
        """The seq of the newest event, 0 when the log is empty or expired."""
        log = self._logs.get(creation_id)
        return log.seqs[-1] if log is not None and log.seqs else 0
