"""The fan-out and idle-memory baseline: a raw websocket broadcast on Starlette and uvicorn.

Run as `python -m bench.broadcast_app --port P --redis URL --channel C`. Every message
published on the Redis channel is sent, unchanged, to every connected websocket: one Redis
subscription per process, one bounded queue and one sender task per socket (the shape of
Starlette's broadcast examples, and of what `resolvers.core.bus` does below the GraphQL layer).
No GraphQL, no auth, no event log. uvicorn gets the options of `creation-king serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from schema.cli import UVICORN_OPTIONS, tune_gc

READY = '{"type":"ready"}'  # the first message of every socket: it is registered
QUEUE_SIZE = 256  # as resolvers.core.bus's listeners (CK_SUBSCRIBER_BUFFER's default)

log = logging.getLogger(__name__)


class Hub:
    """The sockets' queues and the Redis subscription feeding them."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.queues: set[asyncio.Queue[str]] = set()
        self.dropped = 0

    async def pump(self, ready: asyncio.Event) -> None:
        """Forward every message of the channel to every queue (never blocks on a socket)."""
        redis = Redis.from_url(self.redis_url)
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            ready.set()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                for queue in list(self.queues):
                    try:
                        queue.put_nowait(text)
                    except asyncio.QueueFull:
                        self.dropped += 1
        finally:
            await pubsub.aclose()
            await redis.aclose()


async def _send(websocket: WebSocket, queue: asyncio.Queue[str]) -> None:
    while True:
        await websocket.send_text(await queue.get())


async def _socket(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
    queue.put_nowait(READY)
    sender = asyncio.create_task(_send(websocket, queue))
    hub.queues.add(queue)
    try:
        # Reading is how a closed socket is noticed; clients send nothing after the upgrade.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        hub.queues.discard(queue)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def _healthz(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    return JSONResponse({"status": "ok", "sockets": len(hub.queues), "dropped": hub.dropped})


def create_app(redis_url: str, channel: str) -> Starlette:
    """The broadcast app: websockets on /ws, GET /healthz (ready once subscribed to Redis)."""
    hub = Hub(redis_url, channel)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ready = asyncio.Event()
        pump = asyncio.create_task(hub.pump(ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({pump, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if pump.done():
            pump.result()  # raise what stopped it
        try:
            yield
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    app = Starlette(
        routes=[Route("/healthz", _healthz), WebSocketRoute("/ws", _socket)], lifespan=lifespan
    )
    app.state.hub = hub
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the broadcast app on one uvicorn worker."""
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--redis", required=True, help="Redis URL whose channel is broadcast")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    tune_gc()  # as `creation-king serve` does: the same runtime, only the app differs
    uvicorn.run(
        create_app(args.redis, args.channel),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        **UVICORN_OPTIONS,
    )


if __name__ == "__main__":
    main()
