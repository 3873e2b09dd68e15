"""The in-process Redis of embedded mode (fakeredis), a synchronous twin of its client, and
plain dicts beside it for state that only this process reads.

Shared by the rate limiter and the answer cache (embedded mode's event log is plain lists,
`resolvers.streaming.local_history`); nothing here knows them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis

T = TypeVar("T")
# embedded server -> name -> that state; gone with the server
_LOCAL: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def local_state(redis: Redis, name: str, kind: Callable[[], T]) -> T | None:
    """A `kind()` (a dict, say) in this process's memory, one per embedded server and `name`
    (the same one for every caller), or None when `redis` is not embedded.

    For state no other process reads, a dict is what an embedded server would be, minus the
    Redis commands: each fakeredis command costs tens of microseconds of the event loop's
    time, on the way to the first token too."""
    server = _server(redis)
    if server is None:
        return None
    states = _LOCAL.setdefault(server, {})
    if name not in states:
        states[name] = kind()
    return cast(T, states[name])


def _server(redis: Redis) -> Any | None:
    pool = getattr(redis, "connection_pool", None)
    return getattr(pool, "connection_kwargs", {}).get("server")


def inline_twin(redis: Redis) -> Any | None:
    """A synchronous client of the same in-process server when `redis` is an embedded
    fakeredis, else None.

    Its commands run at once on the calling thread, so a few of them in a row, with no await
    between, are as atomic as a script for everything on the event loop (the only user of an
    embedded server). They also skip Lua: fakeredis runs scripts in lupa, which hands the GIL
    away at every `redis.call`; with a local model generating in another thread, each
    handover can stall the event loop for milliseconds, on the way to the first token too.
    """
    server = _server(redis)
    if server is None:
        return None
    import fakeredis  # only embedded mode gets here; fakeredis is then installed and loaded

    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return fakeredis.FakeRedis(server=server, db=db)
