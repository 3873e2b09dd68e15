"""The per-creation event log: a bounded, expiring Redis Stream, the source of truth.

Entry ids are `0-<seq>`, so Redis itself refuses a stale or duplicate producer (an id must
grow) and a reader resumes with an exclusive range `(0-<after>`. Appending also publishes the
event on the creation's channel, in one atomic script, for the live subscribers.

An append must follow the log's newest entry: a log that lost its entries (a Redis restarted
empty) refuses the next event with `LogLost`, and its producer `rebuild`s it from what it
holds before going on. A rebuilt log says the same with fewer events: `started`, then one
delta with `first_seq` 2 that holds the whole text so far.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import Any, Protocol, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from resolvers.core import keys
from resolvers.core.errors import ServiceUnavailable
from resolvers.streaming.events import Event, EventKind

_FIELD = "e"
_RETRY_PAUSES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)  # about 4 s of retrying a dropped connection
_STALE = "equal or smaller than the target stream top item"
# One atomic step: a refused XADD (stale seq) must not be published to live followers, nor
# counted. A delta's tokens are added to the creation's running usage, which the log alone
# cannot give once it is trimmed. Several consecutive events go in one step (`started` with
# the first delta when the model is quicker than the start path).
# KEYS: the log, the channel, the running usage, the claim. ARGV[1] maxlen, ARGV[2] ttl,
# ARGV[3] '1': only while no runner has claimed the creation (KEYS[4]), for queue notices;
# then four per event: seq, payload, prompt tokens, completion tokens. Past the first event,
# the log must hold the one before the first (a larger top is left to XADD, which refuses a
# stale producer). Returns the top seq when the log lost it.
_APPEND = """
local first = tonumber(ARGV[4])
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return {'claimed', 0} end
if first > 1 then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  local top_seq = top and tonumber(string.match(top[1], '-(%d+)$')) or 0
  if top_seq < first - 1 then return {'lost', top_seq} end
end
local counted = false
for i = 4, #ARGV, 4 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. ARGV[i], 'e', ARGV[i + 1])
  redis.call('PUBLISH', KEYS[2], ARGV[i + 1])
  if ARGV[i + 2] ~= '0' or ARGV[i + 3] ~= '0' then
    redis.call('HINCRBY', KEYS[3], 'p', ARGV[i + 2])
    redis.call('HINCRBY', KEYS[3], 'c', ARGV[i + 3])
    counted = true
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if counted then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
return {'ok', tonumber(ARGV[#ARGV - 3])}
"""
# Rewrites a lost log, only while it still lacks what it replaces (KEYS[1] the log, KEYS[2]
# the running usage). ARGV: ttl, prompt tokens, completion tokens, then (id, payload) pairs.
_REBUILD = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local top_seq = top and tonumber(string.match(top[1], '-(%d+)$')) or 0
local last = tonumber(string.match(ARGV[#ARGV - 1], '-(%d+)$'))
if top_seq >= last then return 0 end
redis.call('DEL', KEYS[1])
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[1], ARGV[i], 'e', ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'p', ARGV[2], 'c', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""


class StaleProducer(Exception):
    """Another producer already wrote this `seq`: this one must stop writing."""


class LogLost(Exception):
    """The log no longer holds the event before this one (Redis lost its data): the
    producer must `rebuild` it before appending."""

    def __init__(self, creation_id: str, top: int) -> None:
        super().__init__(f"the event log of {creation_id} ends at seq {top}")
        self.top = top


class EventLog(Protocol):
    """What `Feed` and the runners need of an event log: `History` on Redis, or
    `local_history.LocalHistory` in an embedded server. `remote`: an appended event also
    reaches other processes' followers through Redis pub/sub."""

    remote: bool

    async def append(self, *events: Event, unclaimed: bool = False) -> list[str]: ...
    async def rebuild(self, events: list[Event], usage: tuple[int, int]) -> bool: ...
    async def holds(self, event: Event) -> bool: ...
    async def last_event(self, creation_id: str) -> Event | None: ...
    async def read(self, creation_id: str, *, after: int, count: int = 512) -> list[Event]: ...
    async def usage(self, creation_id: str) -> tuple[int, int]: ...
    async def claim(self, creation_id: str) -> None: ...
    async def flag_cancel(self, creation_id: str) -> None: ...
    async def cancel_flagged(self, creation_id: str) -> bool: ...
    async def hold_lease(self, creation_id: str, seconds: float) -> None: ...
    async def lease_held(self, creation_id: str) -> bool: ...
    async def last_seq(self, creation_id: str) -> int: ...


class History:
    """Append to and read from creations' event logs in Redis."""

    remote = True

    def __init__(self, redis: Redis, *, maxlen: int, ttl_seconds: int) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self._ttl = ttl_seconds
        self._append = redis.register_script(_APPEND)
        self._rebuild = redis.register_script(_REBUILD)

    async def append(self, *events: Event, unclaimed: bool = False) -> list[str]:
        """Store consecutive `events` of one creation and publish them, in one atomic step,
        and return them as published; raises StaleProducer if the first seq was taken (or,
        with `unclaimed`, once a runner has claimed the creation), LogLost if the log lacks
        the event before the first.

        A dropped connection is retried for a few seconds (redis-py does not retry); a retry
        that finds its seq taken checks whether the entries are its own earlier attempt."""
        first, last = events[0], events[-1]
        payloads = [event.encode() for event in events]
        args: list[str | int] = [self._maxlen, self._ttl, "1" if unclaimed else "0"]
        for event, payload in zip(consecutive(events), payloads, strict=True):
            args += [event.seq, payload, *counted(event)]
        log_key = keys.event_log(first.creation_id)
        names = [
            log_key,
            keys.event_channel(first.creation_id),
            keys.running_usage(first.creation_id),
            keys.claimed(first.creation_id),
        ]
        for attempt, pause in enumerate((*_RETRY_PAUSES, None)):
            try:
                outcome, top = await self._append(keys=names, args=args)
                if _text(outcome) == "claimed":
                    raise StaleProducer(f"{first.creation_id} was claimed by a runner")
                if _text(outcome) == "lost":
                    if attempt and await self._holds(log_key, last.seq, payloads[-1]):
                        return payloads
                    raise LogLost(first.creation_id, int(top))
                return payloads
            except redis_errors.ResponseError as exc:
                if _STALE not in str(exc):
                    raise ServiceUnavailable("the event log refused a write") from exc
                if attempt and await self._holds(log_key, last.seq, payloads[-1]):
                    return payloads  # the attempt whose answer was lost did land
                raise StaleProducer(f"seq {first.seq} of {first.creation_id} exists") from exc
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                if pause is None:
                    raise ServiceUnavailable("the event log is unreachable") from exc
                await asyncio.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def rebuild(self, events: list[Event], usage: tuple[int, int]) -> bool:
        """Write `events` (seq 1 first) as the whole log of their creation, if it still ends
        before the last of them; False if a producer wrote past it meanwhile. `usage` is the
        creation's running usage (prompt, completion) so far."""
        args: list[str | int] = [self._ttl, *usage]
        for event in events:
            args += [f"0-{event.seq}", event.encode()]
        creation_id = events[0].creation_id
        with _translated():
            done = await self._rebuild(
                keys=[keys.event_log(creation_id), keys.running_usage(creation_id)], args=args
            )
        return bool(done)

    async def holds(self, event: Event) -> bool:
        """True if the log holds exactly `event` (a write whose answer was lost landed)."""
        return await self._holds(keys.event_log(event.creation_id), event.seq, event.encode())

    async def _holds(self, log_key: str, seq: int, payload: str) -> bool:
        with _translated():
            entries = await self._redis.xrange(log_key, min=f"0-{seq}", max=f"0-{seq}")
        if not entries:
            return False
        stored = _field(entries[0][1])
        return (stored.decode() if isinstance(stored, bytes) else stored) == payload

    async def last_event(self, creation_id: str) -> Event | None:
        """The newest event of the log, None when it is empty or expired."""
        with _translated():
            entries = await self._redis.xrevrange(keys.event_log(creation_id), count=1)
        return Event.decode(_field(entries[0][1])) if entries else None

    async def read(self, creation_id: str, *, after: int, count: int = 512) -> list[Event]:
        """Up to `count` events with seq > `after`, in order."""
        with _translated():
            entries = await self._redis.xrange(
                keys.event_log(creation_id), min=f"(0-{after}", max="+", count=count
            )
        return [Event.decode(_field(fields)) for _id, fields in entries]

    async def usage(self, creation_id: str) -> tuple[int, int]:
        """Prompt and completion tokens of the deltas appended so far (0, 0 when none, or
        once the log expired)."""
        with _translated():
            # redis-py types hmget for its sync and async clients alike.
            prompt, completion = await cast(
                Awaitable[list[Any]], self._redis.hmget(keys.running_usage(creation_id), ["p", "c"])
            )
        return int(prompt or 0), int(completion or 0)

    async def claim(self, creation_id: str) -> None:
        """Say that a runner produces this creation from now on: `unclaimed` appends (queue
        notices written while it waited) are refused from here."""
        with _translated():
            await self._redis.set(keys.claimed(creation_id), "1", ex=self._ttl)

    async def flag_cancel(self, creation_id: str) -> None:
        """Remember that a cancel was asked, for a producer that has not started yet."""
        with _translated():
            await self._redis.set(keys.cancel_flag(creation_id), "1", ex=self._ttl)

    async def cancel_flagged(self, creation_id: str) -> bool:
        """True when `flag_cancel` was called for this creation."""
        with _translated():
            return bool(await self._redis.exists(keys.cancel_flag(creation_id)))

    async def hold_lease(self, creation_id: str, seconds: float) -> None:
        """Say for `seconds` that this process produces the creation."""
        with _translated():
            await self._redis.set(keys.producer_lease(creation_id), "1", px=int(seconds * 1000))

    async def lease_held(self, creation_id: str) -> bool:
        """True while some process holds the creation's producer lease."""
        with _translated():
            return bool(await self._redis.exists(keys.producer_lease(creation_id)))

    async def last_seq(self, creation_id: str) -> int:
        """The seq of the newest event, 0 when the log is empty or expired."""
        event = await self.last_event(creation_id)
        return 0 if event is None else event.seq


def consecutive(events: tuple[Event, ...]) -> tuple[Event, ...]:
    """`events`, if they are consecutive events of one creation, from seq 1 or later; else
    ValueError."""
    first = events[0]
    if first.seq < 1:
        raise ValueError(f"seq starts at 1, got {first.seq}")
    expected = [(first.creation_id, first.seq + n) for n in range(len(events))]
    if [(e.creation_id, e.seq) for e in events] != expected:
        raise ValueError("appended events must be consecutive events of one creation")
    return events


def counted(event: Event) -> tuple[int, int]:
    """The (prompt, completion) tokens an event adds to its creation's running usage."""
    if event.kind is EventKind.DELTA:
        return event.prompt_tokens, event.completion_tokens
    return 0, 0


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise ServiceUnavailable("the event log is unreachable") from exc


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _field(fields: dict[Any, Any]) -> str | bytes:
    value = fields.get(_FIELD) if _FIELD in fields else fields.get(_FIELD.encode())
    if value is None:
        raise ValueError("event log entry without payload")
    return value  # type: ignore[no-any-return]
