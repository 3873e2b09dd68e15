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
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from resolvers.core import keys
from resolvers.core.embedded_redis import inline_twin
from resolvers.core.errors import ServiceUnavailable
from resolvers.streaming.events import Event, EventKind

_FIELD = "e"
_RETRY_PAUSES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)  # about 4 s of retrying a dropped connection
_STALE = "equal or smaller than the target stream top item"
# One atomic step: a refused XADD (stale seq) must not be published to live followers, nor
# counted. A delta's tokens are added to the creation's running usage, which the log alone
# cannot give once it is trimmed.
# ARGV[7] is the seq: past the first event, the log must hold the one before (a larger top is
# left to XADD, which refuses a stale producer). Returns the top seq when the log lost it.
# ARGV[8] '1': only while no runner has claimed the creation (KEYS[4]), for queue notices.
_APPEND = """
local seq = tonumber(ARGV[7])
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return {'claimed', 0} end
if seq > 1 then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  local top_seq = top and tonumber(string.match(top[1], '-(%d+)$')) or 0
  if top_seq < seq - 1 then return {'lost', top_seq} end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[1], 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], ARGV[2])
if ARGV[5] ~= '0' or ARGV[6] ~= '0' then
  redis.call('HINCRBY', KEYS[3], 'p', ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'c', ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return {'ok', seq}
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


class History:
    """Append to and read from creations' event logs."""

    def __init__(self, redis: Redis, *, maxlen: int, ttl_seconds: int) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self._ttl = ttl_seconds
        self._append = redis.register_script(_APPEND)
        self._rebuild = redis.register_script(_REBUILD)
        self._inline = inline_twin(redis)

    async def append(self, event: Event, *, unclaimed: bool = False) -> str:
        """Store `event` and publish it, and return it as published; raises StaleProducer if
        its seq was taken (or, with `unclaimed`, once a runner has claimed the creation),
        LogLost if the log lacks the event before it.

        A dropped connection is retried for a few seconds (redis-py does not retry); a retry
        that finds its seq taken checks whether the entry is its own earlier attempt."""
        if event.seq < 1:
            raise ValueError(f"seq starts at 1, got {event.seq}")
        payload = event.encode()
        log_key = keys.event_log(event.creation_id)
        counted = (
            (event.prompt_tokens, event.completion_tokens)
            if event.kind is EventKind.DELTA
            else (0, 0)
        )
        for attempt, pause in enumerate((*_RETRY_PAUSES, None)):
            try:
                names = [
                    log_key,
                    keys.event_channel(event.creation_id),
                    keys.running_usage(event.creation_id),
                    keys.claimed(event.creation_id),
                ]
                if self._inline is not None:
                    outcome, top = _append_inline(
                        self._inline,
                        names,
                        payload,
                        seq=event.seq,
                        maxlen=self._maxlen,
                        ttl=self._ttl,
                        counted=counted,
                        unclaimed=unclaimed,
                    )
                else:
                    outcome, top = await self._append(
                        keys=names,
                        args=[
                            f"0-{event.seq}",
                            payload,
                            self._maxlen,
                            self._ttl,
                            *counted,
                            event.seq,
                            "1" if unclaimed else "0",
                        ],
                    )
                if _text(outcome) == "claimed":
                    raise StaleProducer(f"{event.creation_id} was claimed by a runner")
                if _text(outcome) == "lost":
                    if attempt and await self._holds(log_key, event.seq, payload):
                        return payload
                    raise LogLost(event.creation_id, int(top))
                return payload
            except redis_errors.ResponseError as exc:
                if _STALE not in str(exc):
                    raise ServiceUnavailable("the event log refused a write") from exc
                if attempt and await self._holds(log_key, event.seq, payload):
                    return payload  # the attempt whose answer was lost did land
                raise StaleProducer(f"seq {event.seq} of {event.creation_id} exists") from exc
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


def _append_inline(
    client: Any,
    names: list[str],
    payload: str,
    *,
    seq: int,
    maxlen: int,
    ttl: int,
    counted: tuple[int, int],
    unclaimed: bool,
) -> tuple[str, int]:
    """`_APPEND` for an embedded server, step for step (see `inline_twin`)."""
    log_key, channel, usage_key, claimed_key = names
    if unclaimed and client.exists(claimed_key):
        return "claimed", 0
    if seq > 1:
        top = client.xrevrange(log_key, count=1)
        top_seq = int(_text(top[0][0]).rpartition("-")[2]) if top else 0
        if top_seq < seq - 1:
            return "lost", top_seq
    client.xadd(log_key, {_FIELD: payload}, id=f"0-{seq}", maxlen=maxlen, approximate=True)
    client.expire(log_key, ttl)
    client.publish(channel, payload)
    if any(counted):
        client.hincrby(usage_key, "p", counted[0])
        client.hincrby(usage_key, "c", counted[1])
        client.expire(usage_key, ttl)
    return "ok", seq


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
