"""The in-process Redis of embedded mode (fakeredis), and a synchronous twin of its client.

Shared by the event log, the rate limiter and the answer cache; nothing here knows them.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def inline_twin(redis: Redis) -> Any | None:
    """A synchronous client of the same in-process server when `redis` is an embedded
    fakeredis, else None.

    Its commands run at once on the calling thread, so a few of them in a row, with no await
    between, are as atomic as a script for everything on the event loop (the only user of an
    embedded server). They also skip Lua: fakeredis runs scripts in lupa, which hands the GIL
    away at every `redis.call`; with a local model generating in another thread, each
    handover can stall the event loop for milliseconds, on the way to the first token too.
    """
    pool = getattr(redis, "connection_pool", None)
    options = getattr(pool, "connection_kwargs", {})
    server = options.get("server")
    if server is None:
        return None
    import fakeredis  # only embedded mode gets here; fakeredis is then installed and loaded

    return fakeredis.FakeRedis(server=server, db=options.get("db", 0))
