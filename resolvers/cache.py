"""The response cache and in-flight sharing: identical requests run one inference.

A request's key hashes the tool, its normalised input and the model (backend and name). A
finished answer stays findable for the tool's TTL (`CK_CACHE_TTL_SECONDS`); while one runs,
identical requests attach to it. Either way the newcomer gets a creation of its own whose
stream copies the source's, so every subscriber still watches tokens arrive.
Only reproducible requests are served from the cache: the input has a seed, or the tool takes
none. Sharing a run in flight is always safe: both get an answer to the same request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from inference.base import Delta, InferenceError, Piece, Stage, Structured
from resolvers import keys
from resolvers.events import EventKind
from resolvers.feed import Feed
from resolvers.models import Creation, CreationStatus
from resolvers.outputs import Outputs

_IN_FLIGHT_SECONDS = 600
# A cached answer, else claim the request as in flight, else who already runs it.
_LOOKUP = """
if ARGV[3] == '1' then
  local cached = redis.call('GET', KEYS[1])
  if cached then return {'cached', cached} end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return {'mine', ''} end
return {'running', redis.call('GET', KEYS[2]) or ''}
"""
_REPLAY_CHARS = 256  # a cached answer is replayed in chunks of about this size
_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def request_key(tool: str, data: Mapping[str, Any], model: str) -> str:
    """Canonical hash of what determines an answer."""
    canonical = json.dumps([tool, model, data], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def reproducible(data: Mapping[str, Any]) -> bool:
    """An answer may be reused when the request pins its randomness (or has none to pin)."""
    return "seed" not in data or data["seed"] is not None


class SharedRunFailed(InferenceError):
    """The creation this one copies did not complete."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Cache:
    """Finds answers to reuse and runs to share; Redis trouble only means no reuse."""

    def __init__(self, redis: Redis, *, ttl_seconds: Mapping[str, int], default_ttl: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._default_ttl = default_ttl
        self._lookup = redis.register_script(_LOOKUP)

    async def source_for(self, key: str, data: Mapping[str, Any], creation_id: str) -> str | None:
        """The creation to copy (a cached answer or a run in flight), or None: then this
        creation, `creation_id`, is now the run in flight for `key`. One round trip."""
        try:
            kind, source = await self._lookup(
                keys=[keys.cache_entry(key), keys.in_flight(key)],
                args=[creation_id, _IN_FLIGHT_SECONDS, "1" if reproducible(data) else "0"],
            )
        except _ERRORS:
            return None
        return None if _text(kind) == "mine" or not source else _text(source)

    async def finished(self, creation: Creation, tool: str, *, reusable: bool = True) -> None:
        """Called when a run ends: remember a completed reproducible answer (unless it is not
        `reusable`: a fallback answered, not the variant the key names), free the key."""
        if not creation.cache_key:
            return
        try:
            ttl = self._ttl.get(tool, self._default_ttl)
            done = creation.status is CreationStatus.COMPLETED and reusable
            if done and ttl > 0 and reproducible(creation.input):
                await self._redis.set(
                    keys.cache_entry(creation.cache_key), str(creation.id), ex=ttl
                )
            if _text(await self._redis.get(keys.in_flight(creation.cache_key)) or b"") == str(
                creation.id
            ):
                await self._redis.delete(keys.in_flight(creation.cache_key))
        except _ERRORS:
            pass  # the entry expires on its own


async def copy_of(source_id: str, *, feed: Feed, outputs: Outputs) -> AsyncIterator[Piece]:
    """The pieces of another creation: its live stream, or its stored answer if finished."""
    source = await Creation.get_or_none(id=source_id)
    if source is None:
        raise SharedRunFailed("INTERNAL", "the answer to copy is gone")
    if not source.status.terminal:
        async for event in feed.follow(source_id):
            if event.kind is EventKind.DELTA:
                yield Delta(event.text, tokens=0)
            elif event.kind is EventKind.PROGRESS:
                yield Stage(event.fraction, event.stage)
        await source.refresh_from_db()
    else:
        output = await outputs.full(source)
        for start in range(0, len(output), _REPLAY_CHARS):
            yield Delta(output[start : start + _REPLAY_CHARS], tokens=0)
    if source.status is not CreationStatus.COMPLETED:
        raise SharedRunFailed(
            source.error_code or "INTERRUPTED",
            source.error_message or "the identical request this one shared did not complete",
        )
    if source.result is not None:
        yield Structured(source.result)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
