"""Many websocket subscribers in the bench process, for the fan-out and idle-memory phases.

Two kinds of socket, read by the same code:

- stack: graphql-transport-ws against `creation-king serve`, authenticated, with one
  `creationEvents(id, after: 0)` subscription each;
- raw: a plain websocket of `bench.broadcast_app`, which forwards Redis messages verbatim
  (the bench publishes there the very `next` messages the stack would send).

Every socket has a reader task that records, per event message, the seqs it covers
(`firstSeq`..`seq`) and when it was read (`time.perf_counter`, in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import websockets
from websockets.asyncio.client import ClientConnection

PROTOCOL = "graphql-transport-ws"
FIELD = "creationEvents"
EVENTS = f"""
subscription E($id: ID!, $after: Int!) {{
  {FIELD}(id: $id, after: $after) {{ __typename seq ... on TokenDelta {{ text firstSeq }} }}
}}
"""
TERMINAL = frozenset({"CreationCompleted", "CreationFailed", "CreationCancelled"})
OPEN_CONCURRENCY = 50  # sockets opened at a time: a burst, not a SYN flood
Kind = Literal["stack", "raw"]


@dataclass
class Socket:
    """One subscriber: what it read, and whether it is ready (its first message came)."""

    ws: ClientConnection
    arrivals: list[tuple[int, int, float]] = field(default_factory=list)  # first, seq, time
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    error: str = ""


class Audience:
    """`count` open subscriber sockets of one kind on one server; `aclose()` closes them."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.sockets: list[Socket] = []
        self._covered: Counter[int] = Counter()  # seq -> sockets that have it
        self._waiting: dict[int, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(
        cls,
        kind: Kind,
        url: str,
        count: int,
        *,
        token: str = "",
        creation_id: str = "",
        timeout: float = 60.0,
    ) -> Audience:
        """Open `count` sockets (stack: with their subscription) and wait until each has
        read its first message (stack: the replayed `started`; raw: the app's READY)."""
        audience = cls(kind)
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one() -> None:
            async with gate:
                ws = await _connect(kind, url, token, creation_id)
                sock = Socket(ws)
                audience.sockets.append(sock)
                audience._tasks.append(asyncio.create_task(audience._read(sock)))
                await asyncio.wait_for(sock.ready.wait(), timeout)

        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(one() for _ in range(count)))
        except BaseException:
            await audience.aclose()
            raise
        return audience

    async def aclose(self) -> None:
        """Stop the readers and close every socket."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.ws.close() for s in self.sockets), return_exceptions=True)

    async def delivered(self, seq: int, timeout: float) -> bool:
        """Wait until every socket has read `seq`; False on timeout (something was lost)."""
        if self._covered[seq] >= len(self.sockets):
            return True
        event = self._waiting.setdefault(seq, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def errors(self) -> list[str]:
        """What went wrong on sockets (protocol errors, unexpected closes)."""
        return [s.error for s in self.sockets if s.error]

    def _cover(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            self._covered[seq] += 1
            if self._covered[seq] >= len(self.sockets) and seq in self._waiting:
                self._waiting[seq].set()

    async def _read(self, sock: Socket) -> None:
        try:
            async for raw in sock.ws:
                now = time.perf_counter()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    payload = message["payload"]
                    if payload.get("errors"):
                        sock.error = json.dumps(payload["errors"])[:300]
                        break
                    event = payload["data"][FIELD]
                    seq = int(event["seq"])
                    first = int(event.get("firstSeq") or seq)
                    sock.arrivals.append((first, seq, now))
                    self._cover(range(first, seq + 1))
                    if event["__typename"] in TERMINAL:
                        sock.ended = True
                elif kind == "ping":
                    await sock.ws.send(json.dumps({"type": "pong"}))
                elif kind == "complete":
                    sock.ended = True
                elif kind != "ready":
                    sock.error = str(raw)[:300]
                sock.ready.set()
        except websockets.ConnectionClosed as exc:
            if not sock.ended:
                sock.error = f"closed: {exc}"
        finally:
            sock.ready.set()  # an opener waiting on a failed socket learns it at once


async def _connect(kind: Kind, url: str, token: str, creation_id: str) -> ClientConnection:
    """A connected socket; for the stack, initialised and subscribed."""
    ws = await websockets.connect(
        url,
        subprotocols=[PROTOCOL] if kind == "stack" else None,  # type: ignore[list-item]
        compression=None,
        ping_interval=None,  # no client pings: they would cost both sides differently
        max_size=1 << 22,
        open_timeout=60,
        proxy=None,
    )
    if kind == "raw":
        return ws
    try:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        variables = {"id": creation_id, "after": 0}
        subscribe: dict[str, Any] = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": EVENTS, "variables": variables},
        }
        await ws.send(json.dumps(subscribe))
    except BaseException:
        with contextlib.suppress(Exception):
            await ws.close()
        raise
    return ws


def next_message(event: dict[str, Any]) -> str:
    """The graphql-transport-ws `next` message the stack sends for `event` (raw side)."""
    message = {"id": "1", "type": "next", "payload": {"data": {FIELD: event}}}
    return json.dumps(message, separators=(",", ":"))
