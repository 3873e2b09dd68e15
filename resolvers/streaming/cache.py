"""The response cache and in-flight sharing: identical requests run one inference.

A request's key hashes the tool, its normalised input and the model (backend and name). A
finished answer stays findable for the tool's TTL (`CK_CACHE_TTL_SECONDS`); while one runs,
identical requests attach to it. Either way the newcomer gets a creation of its own whose
stream copies the source's, so every subscriber still watches tokens arrive.
Only reproducible requests are served from the cache: the input has a seed, or the tool takes
none. Sharing a run in flight is always safe: both get an answer to the same request.

Who shares (`CK_CACHE_SCOPE`): by default one user's identical requests only, so `cached`
never tells anyone what somebody else asked. `global` shares across users, except requests
with user content (an upload, a lexicon, a saved template or spread): those stay per user.

A copy follows its source's log and, when the source goes quiet, runs the same recovery
check its own followers would (`recovery.settle`): a source whose worker died is reclaimed
even when nobody but its copies watches it.

A cancel detaches only the one who asked. A copy's cancel stops its copying. The source's
cancel, while copies follow it, ends the source for its owner (`cancelled`, with the code
`HANDED_OVER` in the log) and the run goes on under `keys.shared_run(source)`, where the
copies read the rest; the run stops once no copy follows it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from inference.base import Delta, InferenceError, Piece, Stage, Structured
from resolvers.core import keys
from resolvers.core.embedded_redis import inline_twin
from resolvers.core.errors import EventsLost
from resolvers.core.models import Creation, CreationStatus
from resolvers.storage.outputs import Outputs
from resolvers.streaming.events import Event, EventKind
from resolvers.streaming.feed import Feed
from resolvers.streaming.queue import JobQueue
from resolvers.streaming.recovery import settle

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
# Forget the run in flight for a key, if it is still the given creation's.
_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_STOP_SECONDS = 2.0  # how long `stop` waits for keys being freed
_RUNS_HERE_KEPT = 10_000  # keys of runs in flight in this process, before the hint resets
_REPLAY_CHARS = 256  # a cached answer is replayed in chunks of about this size
HANDED_OVER = "HANDED_OVER"  # the code of a cancelled source's ending whose run goes on
_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def request_key(tool: str, data: Mapping[str, Any], model: str, owner: str = "") -> str:
    """Canonical hash of what determines an answer (and, unless it is empty, who may share
    it: `owner`)."""
    canonical = json.dumps([tool, model, data, owner], sort_keys=True, separators=(",", ":"))
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

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_seconds: Mapping[str, int],
        default_ttl: int,
        scope: Literal["user", "global"] = "user",
    ) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._default_ttl = default_ttl
        self._scope = scope
        self._lookup = redis.register_script(_LOOKUP)
        self._forget = redis.register_script(_FORGET)
        self._inline = inline_twin(redis)
        # Keys whose run in flight this process claimed, and its creation: `running_here`.
        self._here: dict[str, str] = {}
        self._withdrawing: set[asyncio.Task[None]] = set()

    def key(
        self, tool: str, data: Mapping[str, Any], model: str, *, owner: str, personal: bool
    ) -> str:
        """The request's key: shared by `owner`'s identical requests, or by everyone's when
        the scope is global and the request carries no `personal` content."""
        shared = self._scope == "global" and not personal
        return request_key(tool, data, model, "" if shared else owner)

    async def source_for(self, key: str, data: Mapping[str, Any], creation_id: str) -> str | None:
        """The creation to copy (a cached answer or a run in flight), or None: then this
        creation, `creation_id`, is now the run in flight for `key`. One round trip."""
        names = [keys.cache_entry(key), keys.in_flight(key)]
        try:
            if self._inline is not None:
                kind, source = _lookup_inline(
                    self._inline, names, creation_id, reuse=reproducible(data)
                )
            else:
                kind, source = await self._lookup(
                    keys=names,
                    args=[creation_id, _IN_FLIGHT_SECONDS, "1" if reproducible(data) else "0"],
                )
        except _ERRORS:
            return None
        if _text(kind) == "mine":
            if len(self._here) >= _RUNS_HERE_KEPT:
                self._here.clear()  # only a hint: runs lost from it are still shared
            self._here[key] = creation_id
            return None
        return _text(source) or None

    def source_soon(
        self, key: str, data: Mapping[str, Any], creation_id: str
    ) -> asyncio.Task[str | None]:
        """`source_for`, begun now and awaited later: while the request is screened and
        stored. Until its row is committed, a copier that finds this claim cannot attach to
        it and runs alone (`Creation.source` is a foreign key); if the request fails,
        `withdraw` frees the key."""
        return asyncio.ensure_future(self.source_for(key, data, creation_id))

    def withdraw(self, lookup: asyncio.Task[str | None], key: str, creation_id: str) -> None:
        """The request that began `lookup` failed: once the lookup is answered, free the key
        if it claimed it. Returns at once (the caller may be on its way out, cancelled)."""

        async def undo() -> None:
            await asyncio.wait([lookup])
            if not lookup.cancelled():
                lookup.exception()  # retrieved: the request's own error is what counts
            await self.release(key, creation_id)

        task = asyncio.get_running_loop().create_task(undo())
        self._withdrawing.add(task)
        task.add_done_callback(self._withdrawing.discard)

    async def stop(self) -> None:
        """Before Redis closes: let `withdraw` finish freeing the keys of failed requests
        (one round trip each; a key left behind would expire in `_IN_FLIGHT_SECONDS`)."""
        if self._withdrawing:
            await asyncio.wait(set(self._withdrawing), timeout=_STOP_SECONDS)

    def keeps_answers(self, tool: str) -> bool:
        """Whether `tool`'s completed answers are stored for reuse (its TTL is above 0)."""
        return self._ttl.get(tool, self._default_ttl) > 0

    def running_here(self, key: str) -> bool:
        """Whether this process runs `key`'s run in flight: a hint with no round trip
        (`source_for` decides, and also finds runs in flight in other processes)."""
        return key in self._here

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
        except _ERRORS:
            pass  # the entry expires on its own
        await self.release(creation.cache_key, str(creation.id))

    async def release(self, key: str, creation_id: str) -> None:
        """No new request shares `creation_id`'s run from now on."""
        if self._here.get(key) == creation_id:
            del self._here[key]
        with contextlib.suppress(*_ERRORS):
            if self._inline is not None:
                _forget_inline(self._inline, keys.in_flight(key), creation_id)
            else:
                await self._forget(keys=[keys.in_flight(key)], args=[creation_id])

    async def keep_shared_result(self, source_id: str, result: Mapping[str, Any]) -> None:
        """The structured result of a run that went on for its copies."""
        await self._redis.set(
            keys.shared_result(source_id), json.dumps(result), ex=_IN_FLIGHT_SECONDS
        )

    async def shared_result(self, source_id: str) -> dict[str, Any] | None:
        """What `keep_shared_result` kept, None if nothing (or Redis lost it)."""
        try:
            kept = await self._redis.get(keys.shared_result(source_id))
        except _ERRORS:
            return None
        return dict(json.loads(kept)) if kept else None


async def sharers(source_id: str) -> bool:
    """True while some running creation copies `source_id`'s run."""
    return await Creation.filter(source_id=source_id, status=CreationStatus.RUNNING).exists()


async def copy_of(
    source_id: str, *, feed: Feed, outputs: Outputs, queue: JobQueue, cache: Cache
) -> AsyncIterator[Piece]:
    """The pieces of another creation: its live stream, or its stored answer if finished."""
    source = await Creation.get_or_none(id=source_id)
    if source is None:
        raise SharedRunFailed("INTERNAL", "the answer to copy is gone")
    copy = _Copy()
    if not source.status.terminal:

        async def on_quiet(_last: int) -> None:
            await feed.once_per_poll(source_id, lambda: settle(source_id, feed=feed, queue=queue))

        with contextlib.suppress(EventsLost):  # then the source's row holds the rest
            async for piece in copy.pieces(feed.follow(source_id, on_quiet=on_quiet)):
                yield piece
        if copy.ending is not None and copy.ending.code == HANDED_OVER:
            async for piece in _shared_run(source_id, feed, cache):
                yield piece
            return
        await source.refresh_from_db()
        if copy.ending is None and not source.status.terminal:
            raise SharedRunFailed("INTERRUPTED", "the run this request shared lost its events")
    if copy.ending is None:
        output = await outputs.full(source)
        for start in range(copy.chars, len(output), _REPLAY_CHARS):
            yield Delta(output[start : start + _REPLAY_CHARS], tokens=0)
    if source.status is not CreationStatus.COMPLETED:
        raise SharedRunFailed(
            source.error_code or "INTERRUPTED",
            source.error_message or "the identical request this one shared did not complete",
        )
    if source.result is not None:
        yield Structured(source.result)


class _Copy:
    """Turns another creation's events into pieces, counting what it passed on."""

    def __init__(self) -> None:
        self.chars = 0
        self.ending: Event | None = None

    async def pieces(self, events: AsyncIterator[Event]) -> AsyncIterator[Piece]:
        async for event in events:
            if event.kind is EventKind.DELTA:
                self.chars += len(event.text)
                yield Delta(event.text, tokens=0)
            elif event.kind is EventKind.PROGRESS:
                yield Stage(event.fraction, event.stage)
            elif event.terminal:
                self.ending = event


async def _shared_run(source_id: str, feed: Feed, cache: Cache) -> AsyncIterator[Piece]:
    """The rest of a run whose source was cancelled while this copy followed it."""
    run_id = keys.shared_run(source_id)

    async def on_quiet(_last: int) -> None:
        if not await feed.history.lease_held(run_id):
            raise SharedRunFailed("INTERRUPTED", "the shared run stopped")

    copy = _Copy()
    async for piece in copy.pieces(feed.follow(run_id, on_quiet=on_quiet)):
        yield piece
    ending = copy.ending
    if ending is None or ending.kind is not EventKind.COMPLETED:
        code, message = (ending.code, ending.message) if ending else ("", "")
        raise SharedRunFailed(code or "INTERRUPTED", message or "the shared run stopped")
    result = await cache.shared_result(source_id)
    if result is not None:
        yield Structured(result)


def _lookup_inline(
    client: Any, names: list[str], creation_id: str, *, reuse: bool
) -> tuple[str, bytes | str]:
    """`_LOOKUP` for an embedded server, step for step (see `embedded_redis.inline_twin`)."""
    entry, in_flight = names
    if reuse:
        cached = client.get(entry)
        if cached:
            return "cached", cached
    if client.set(in_flight, creation_id, nx=True, ex=_IN_FLIGHT_SECONDS):
        return "mine", ""
    return "running", client.get(in_flight) or ""


def _forget_inline(client: Any, in_flight: str, creation_id: str) -> int:
    """`_FORGET` for an embedded server, step for step (see `embedded_redis.inline_twin`)."""
    if _text(client.get(in_flight) or b"") == creation_id:
        return int(client.delete(in_flight))
    return 0


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
