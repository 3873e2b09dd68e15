"""Pub/sub for live events and control signals, on broadcaster, made safe to depend on.

broadcaster 0.3.1 loses data in three ways (DESIGN.md): its Redis listener dies silently when
the connection drops, two concurrent subscribes to one channel lose a subscriber, and its
queues are unbounded. So:

- `ResilientRedisBackend` is a broadcaster backend over a Redis client we own (real or
  fakeredis). Its listener reconnects with backoff, resubscribes every channel and then
  delivers `RESYNC` on each, telling readers to fill what they missed from the event log.
- `Bus` keeps one broadcaster subscription per channel per process (opened under a lock) and
  fans messages out to bounded `Listener`s; a listener that falls behind is marked
  `OVERFLOW` instead of growing, and its reader catches up from the log.

Pub/sub stays at-most-once: nothing here is the source of truth (resolvers.streaming.history is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

RESYNC: Final = "\x00resync"
OVERFLOW: Final = "\x00overflow"
_CONNECTION_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
_DELIVERED_KEPT = 256  # per channel: local deliveries awaiting their pub/sub copy


class ResilientRedisBackend(BroadcastBackend):
    """A broadcaster backend whose listener survives Redis disconnects."""

    def __init__(self, redis: Redis, *, max_backoff: float = 2.0) -> None:
        self._redis = redis
        self._max_backoff = max_backoff
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._broken = False
        self.reconnects = 0

    async def connect(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._task = asyncio.create_task(self._listen(), name="bus-listener")

    async def disconnect(self) -> None:
        self._closing = True
        self._wake.set()
        # redis-py's get_message can swallow a cancellation, so ask again until it stops.
        while self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=0.1)
        if self._pubsub is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._wake.set()
        try:
            await self._subscribed().subscribe(channel)
        except _CONNECTION_ERRORS:
            # The listener reconnects and resubscribes everything in self._channels.
            log.warning("bus: subscribe to %s failed, the listener will retry", channel)
            self._broken = True

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await self._subscribed().unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._redis.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    def _subscribed(self) -> PubSub:
        if self._pubsub is None:
            raise RuntimeError("bus backend used before connect()")
        return self._pubsub

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._closing:
            if not self._channels:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._broken:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                if await self._reconnect():
                    backoff = 0.05
                continue
            try:
                message = await self._subscribed().get_message(timeout=1.0)
            except _CONNECTION_ERRORS as exc:
                log.warning("bus: pub/sub connection lost (%s), reconnecting", exc)
                self._broken = True
                continue
            except RuntimeError:
                # redis-py raises this while no channel is subscribed yet (a race with
                # subscribe); the next round sees the subscription.
                await asyncio.sleep(0.01)
                continue
            except Exception:  # never die silently (broadcaster #144): log, rebuild, go on
                log.exception("bus: unexpected pub/sub error, reconnecting")
                self._broken = True
                continue
            if message is not None and message.get("type") == "message":
                try:
                    event = Event(_text(message["channel"]), _text(message["data"]))
                except UnicodeDecodeError:
                    log.warning("bus: dropped a message that is not UTF-8")
                    continue
                await self._queue.put(event)

    async def _reconnect(self) -> bool:
        old, self._pubsub = self._pubsub, self._redis.pubsub(ignore_subscribe_messages=True)
        if old is not None:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await old.aclose()  # type: ignore[no-untyped-call]
        channels = sorted(self._channels)
        try:
            if channels:
                await self._pubsub.subscribe(*channels)
        except _CONNECTION_ERRORS:
            self._broken = True
            return False
        self._broken = False
        self.reconnects += 1
        log.info("bus: reconnected, resubscribed %d channels", len(channels))
        for channel in channels:
            await self._queue.put(Event(channel, RESYNC))
        return True


class Listener:
    """One local reader of a channel, holding at most `maxsize` messages.

    Kept small: a thousand idle subscriptions hold a thousand listeners (a list, and a
    future only while a reader waits, instead of a deque and an `asyncio.Event`). And cheap
    per message: a wait's timeout is one timer that outlives the wait. A reader woken by a
    message leaves it armed; when it fires, a wait that is not due yet re-arms it for the
    rest. A thousand followers of a busy stream then set no timer per event, and each timer
    fires about once per timeout."""

    __slots__ = ("_due", "_items", "_maxsize", "_timer", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: list[str] = []
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # loop time at which the current wait ends

    def offer(self, message: str) -> None:
        """Called by the channel pump; never blocks, never grows past maxsize."""
        if len(self._items) >= self._maxsize:
            self._items = [OVERFLOW]
        else:
            self._items.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self, timeout: float) -> str | None:
        """The next message, OVERFLOW/RESYNC markers included; None after `timeout` seconds."""
        if not self._items:
            # Not wait_for nor asyncio.timeout (a timer per wait; and wait_for can swallow a
            # cancellation on Python 3.11): a cancel here simply raises.
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            due = self._due = loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > due:  # none yet, or set for a longer wait
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(due, self._expire)
            try:
                await waiter
            finally:
                self._waiter = None
            if not self._items:
                return None
        return self._items.pop(0)  # at most `maxsize`, usually one

    def close(self) -> None:
        """Drop the timer (the reader is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # no reader waits: the next wait arms a timer
        loop = waiter.get_loop()
        if self._due > loop.time():
            self._timer = loop.call_at(self._due, self._expire)  # a later wait: its own time
        else:
            waiter.set_result(None)


class Listening:
    """`Bus.listen`'s context: a class, not an async generator, as every idle subscription
    holds one for its whole life."""

    __slots__ = ("_bus", "_channel", "_listener", "_state", "_subscribed")

    def __init__(self, bus: Bus, channel: str, *, subscribed: bool) -> None:
        self._bus = bus
        self._channel = channel
        self._subscribed = subscribed
        self._listener = Listener(bus._listener_maxsize)
        self._state: _Channel | None = None

    async def __aenter__(self) -> Listener:
        self._state = await self._bus._join(self._channel, self._listener)
        if self._subscribed:
            try:
                await self._state.ready.wait()
            except BaseException:
                await self._bus._leave(self._channel, self._state, self._listener)
                raise
        return self._listener

    async def __aexit__(self, *_exc: object) -> None:
        self._listener.close()
        if self._state is not None:
            await self._bus._leave(self._channel, self._state, self._listener)


class _Channel:
    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # Messages handed to the listeners here before their pub/sub copy came (oldest
        # first, bounded: a copy that pub/sub lost would otherwise stay forever).
        self.delivered: dict[str, None] = {}


class Bus:
    """Process-wide pub/sub: one broadcaster subscription per channel, bounded fan-out."""

    def __init__(self, backend: BroadcastBackend, *, listener_maxsize: int = 256) -> None:
        self._backend = backend
        self._broadcast = Broadcast(backend=backend)
        self._listener_maxsize = listener_maxsize
        self._channels: dict[str, _Channel] = {}
        self._lock = asyncio.Lock()
        self._handlers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._broadcast.connect()

    async def stop(self) -> None:
        for task in [*self._handlers, *(c.task for c in self._channels.values())]:
            await _cancel(task)
        self._channels.clear()
        await self._broadcast.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        """Fire and forget: delivered to whoever listens now, on any process."""
        try:
            await self._broadcast.publish(channel, message)
        except _CONNECTION_ERRORS as exc:
            log.warning("bus: publish on %s failed: %s", channel, exc)

    def deliver_here(self, channel: str, message: str, *, copy_follows: bool = True) -> None:
        """Offer a message this process just published to its own listeners of `channel` now,
        rather than after the round trip through Redis; its pub/sub copy is then skipped.
        (A listener that starts in between reads the log, which already holds the event.)
        Listeners whose subscription is not confirmed yet get it too: it does not need Redis.
        `copy_follows` False: the message was not published through Redis (an embedded
        server's own event log), so no copy is awaited."""
        state = self._channels.get(channel)
        if state is None:
            return
        if copy_follows:
            if len(state.delivered) >= _DELIVERED_KEPT:
                del state.delivered[next(iter(state.delivered))]
            state.delivered[message] = None
        for listener in list(state.listeners):
            listener.offer(message)

    def listen(self, channel: str, *, subscribed: bool = True) -> Listening:
        """Receive the channel's messages published after entering (`async with`). With
        `subscribed` False it enters before Redis confirmed the subscription: this process's
        own messages (`deliver_here`) arrive at once, other processes' only once it is."""
        return Listening(self, channel, subscribed=subscribed)

    async def _join(self, channel: str, listener: Listener) -> _Channel:
        async with self._lock:
            state = self._channels.get(channel)
            if state is None:
                state = self._channels[channel] = _Channel()
                state.task = asyncio.create_task(self._pump(channel, state), name=f"bus:{channel}")
            state.listeners.add(listener)
        return state

    async def _leave(self, channel: str, state: _Channel, listener: Listener) -> None:
        async with self._lock:
            state.listeners.discard(listener)
            if not state.listeners and self._channels.get(channel) is state:
                del self._channels[channel]
                # Awaited under the lock: the unsubscribe must reach Redis before a new
                # pump for the same channel subscribes again.
                await _cancel(state.task)

    def on_message(self, channel: str, handler: Callable[[str], Awaitable[None]]) -> None:
        """Run `handler` for every message on `channel` until `stop()` (control signals)."""

        async def _run() -> None:
            async with self.listen(channel) as listener:
                while True:
                    message = await listener.get(timeout=60)
                    if message is None or message in (RESYNC, OVERFLOW):
                        continue
                    try:
                        await handler(message)
                    except Exception:  # a bad control message must not stop the loop
                        log.exception("bus: handler for %s failed", channel)

        self._handlers.append(asyncio.create_task(_run(), name=f"bus-handler:{channel}"))

    async def _pump(self, channel: str, state: _Channel) -> None:
        try:
            async with self._broadcast.subscribe(channel) as subscriber:
                state.ready.set()
                while True:
                    event = await subscriber.get()
                    if event.message in state.delivered:
                        del state.delivered[event.message]
                        continue  # offered already, by `deliver_here`
                    for listener in list(state.listeners):
                        listener.offer(event.message)
        except KeyError:
            # broadcaster 0.3.1 cancelled during a channel's first subscribe: its cleanup
            # assumes the subscribe finished and raises KeyError in place of the
            # CancelledError (a shutdown right after startup failed on it). Undo our half
            # of the subscription and stay cancelled.
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._backend.unsubscribe(channel)
            raise asyncio.CancelledError from None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
