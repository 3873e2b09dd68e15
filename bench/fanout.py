"""Fan-out latency and idle memory of subscriptions, each against a raw websocket broadcast.

- Fan-out: one creation watched by `subscribers` sockets on one API process. The bench plays
  the producer: it appends events to the creation's log with `resolvers.streaming.history.History`
  (the runner's own Lua script: XADD plus PUBLISH), one `TokenDelta` at a time, waiting until
  every socket has it before the next, and times each from just before the append to its
  arrival in every socket: the latency of fanning out one event. The baseline gets the same
  messages, byte for byte the stack's `next` message, PUBLISHed on the channel that
  `bench.broadcast_app` forwards to the same number of sockets.
- Idle memory: the RSS growth of the server process while `count` sockets each hold one
  subscription to a quiet creation (stack) or are merely connected (raw), per socket.

Sockets are read in this process, separate from the servers; the same reader serves both.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.audience import Audience, Kind, next_message
from bench.procs import cpu_seconds
from bench.stats import Summary, ratio
from resolvers.core import keys
from resolvers.streaming.events import Event, EventKind
from resolvers.streaming.history import History

DELTA_TEXT = " the quiet river light morning city"  # about one 40 ms batch of the writer model
DELTA_TOKENS = 6
WARM_UP_SOCKETS = 20
CLOSE_WAIT_S = 2.0  # how long sockets closed by their clients may take to end on the server
Publish = Callable[[int, bool], Awaitable[None]]  # (seq, terminal) -> sent
Opener = Callable[[int], Awaitable[Audience]]
Say = Callable[[str], None]


@dataclass(frozen=True)
class Side:
    """One server under test: the raw broadcast app or `creation-king serve`."""

    label: str
    kind: Kind
    url: str  # http://host:port
    pid: int
    token: str = ""  # stack: the user owning the creations

    def opener(self, creation_id: str = "") -> Opener:
        """Opens `n` sockets (stack: each subscribed to `creation_id`)."""
        ws_url = self.url.replace("http://", "ws://") + (
            "/ws" if self.kind == "raw" else "/graphql"
        )
        return lambda n: Audience.open(
            self.kind, ws_url, n, token=self.token, creation_id=creation_id
        )

    async def open_sockets(self, http: httpx.AsyncClient) -> float:
        """Sockets the server still serves: raw, its registered sockets; stack, its open
        subscriptions (the `ck_active_subscriptions` gauge of /metrics)."""
        if self.kind == "raw":
            return float((await http.get(f"{self.url}/healthz")).json()["sockets"])
        text = (await http.get(f"{self.url}/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ck_active_subscriptions{")
        )

    async def left_open(self) -> float:
        """Sockets or subscriptions still open CLOSE_WAIT_S after every client closed."""
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(int(CLOSE_WAIT_S / 0.1)):
                if not (count := await self.open_sockets(http)):
                    break
                await asyncio.sleep(0.1)
        return count


@dataclass
class FanoutRun:
    """One side's fan-out: publish times per seq and what every socket read."""

    label: str
    subscribers: int
    published: dict[int, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    last_ms: list[float] = field(default_factory=list)  # per event: until the last socket
    lost: int = 0  # (socket, seq) pairs published but never read
    duplicates: int = 0  # (socket, seq) pairs read more than once
    errors: list[str] = field(default_factory=list)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    window_s: float = math.nan
    open_s: float = math.nan  # opening every socket (stack: and subscribing)
    left_open: float = 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures (ms; CPU in microseconds per delivered event)."""
        deliveries = len(self.published) * self.subscribers
        return {
            "label": self.label,
            "subscribers": self.subscribers,
            "events": len(self.published),
            "latency": Summary.of(self.latencies_ms).as_dict(),
            "last_subscriber": Summary.of(self.last_ms).as_dict(),
            # in publishing order: one slow event moves the p99 of all the pairs
            "last_subscriber_ms_by_event": [round(ms, 1) for ms in self.last_ms],
            "lost": self.lost,
            "duplicates": self.duplicates,
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else "",
            "server_cpu_us_per_delivery": ratio(self.server_cpu_s * 1e6, deliveries),
            "server_cpu_utilisation": ratio(self.server_cpu_s, self.window_s),
            "client_cpu_utilisation": ratio(self.client_cpu_s, self.window_s),
            "open_s": self.open_s,
            "left_open": self.left_open,
        }


async def fan_out(
    *,
    label: str,
    audience: Audience,
    publish: Publish,
    events: int,
    server_pid: int,
    first_seq: int = 2,
    gap_s: float = 0.02,
    timeout_s: float = 10.0,
) -> FanoutRun:
    """Publish `events` deltas and a terminal event one by one to an open audience."""
    run = FanoutRun(label=label, subscribers=len(audience.sockets))
    # This process reads every socket: a collection of its own garbage (50-190 ms here, the
    # whole audience's objects) would stall the reading of one event on one side only, and
    # one stalled event moves the p99 of 21,000 pairs. The servers' GC stays as it is.
    gc.collect()
    gc.disable()
    try:
        server0, client0, t0 = cpu_seconds([server_pid]), time.process_time(), time.perf_counter()
        last = first_seq + events
        for seq in range(first_seq, last + 1):
            run.published[seq] = time.perf_counter()
            await publish(seq, seq == last)
            await audience.delivered(seq, timeout_s)
            await asyncio.sleep(gap_s)  # both sides idle again before the next event
        run.window_s = time.perf_counter() - t0
    finally:
        gc.enable()
    run.server_cpu_s = cpu_seconds([server_pid]) - server0
    run.client_cpu_s = time.process_time() - client0
    _tally(run, audience)
    return run


def _tally(run: FanoutRun, audience: Audience) -> None:
    last_arrival: dict[int, float] = {}
    for sock in audience.sockets:
        seen: dict[int, int] = {}
        for first, seq, arrived in sock.arrivals:
            for covered in range(first, seq + 1):
                seen[covered] = seen.get(covered, 0) + 1
                sent = run.published.get(covered)
                if sent is None:
                    continue  # `started`, replayed when the socket subscribed
                run.latencies_ms.append((arrived - sent) * 1000)
                last_arrival[covered] = max(last_arrival.get(covered, 0.0), arrived)
        run.lost += sum(1 for seq in run.published if seq not in seen)
        run.duplicates += sum(count - 1 for count in seen.values() if count > 1)
    run.last_ms = [
        (last_arrival[s] - t) * 1000 for s, t in run.published.items() if s in last_arrival
    ]
    run.errors = audience.errors()


@dataclass
class IdleRun:
    """RSS of a server before and while `count` idle sockets are open."""

    label: str
    count: int
    rss_before: int = 0
    rss_after: int = 0
    idle_cpu_s: float = 0.0
    idle_window_s: float = math.nan
    left_open: float = 0.0

    @property
    def bytes_per_socket(self) -> float:
        """RSS growth per idle socket."""
        return ratio(self.rss_after - self.rss_before, self.count)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures (bytes; idle CPU as a share of one core)."""
        return {
            "label": self.label,
            "count": self.count,
            "rss_before": self.rss_before,
            "rss_after": self.rss_after,
            "bytes_per_socket": self.bytes_per_socket,
            "idle_cpu_utilisation": ratio(self.idle_cpu_s, self.idle_window_s),
            "left_open": self.left_open,
        }


async def idle_memory(
    *, label: str, open_audience: Opener, count: int, server_pid: int, settle_s: float
) -> IdleRun:
    """Warm the server up with a few sockets, then hold `count` idle ones for `settle_s`."""
    warm = await open_audience(min(WARM_UP_SOCKETS, count))
    await warm.aclose()
    await asyncio.sleep(0.3)  # the server finishes closing them
    run = IdleRun(label=label, count=count, rss_before=rss_bytes(server_pid))
    audience = await open_audience(count)
    try:
        # Idle long enough for periodic work (a quiet subscriber's poll) to have run.
        cpu0, t0 = cpu_seconds([server_pid]), time.perf_counter()
        await asyncio.sleep(settle_s)
        run.idle_cpu_s = cpu_seconds([server_pid]) - cpu0
        run.idle_window_s = time.perf_counter() - t0
        run.rss_after = rss_bytes(server_pid)
    finally:
        await audience.aclose()
    return run


async def measure(
    *,
    raw: Side,
    stack: Side,
    redis_url: str,
    channel: str,
    quiet_id: str,
    watched_id: str,
    idle: int,
    settle_s: float,
    subscribers: int,
    events: int,
    say: Say,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Idle memory then fan-out, raw side first; (idle summary, fan-out summary).

    `quiet_id` and `watched_id` are queued creations of `stack.token`'s user that nothing
    produces: the bench writes their `started` event, and the fan-out's events.
    """
    redis = Redis.from_url(redis_url)
    history = History(redis, maxlen=10_000, ttl_seconds=3_600)

    async def publish_raw(seq: int, terminal: bool) -> None:
        await redis.publish(channel, next_message(_fields(seq, terminal)))

    async def publish_stack(seq: int, terminal: bool) -> None:
        await history.append(_event(watched_id, seq, terminal))

    try:
        for creation_id in (quiet_id, watched_id):
            # The server announced the queue in the log (`started`, "queued (position N)"):
            # the bench claims the creation as a worker would, and produces a fresh log.
            await history.claim(creation_id)
            await redis.delete(keys.event_log(creation_id))
            await history.append(Event(creation_id, 1, EventKind.STARTED, model="bench"))
        memory: dict[str, Any] = {}
        for side, creation_id in ((raw, ""), (stack, quiet_id)):
            say(f"idle memory ({side.label}): {idle} sockets for {settle_s} s")
            run = await idle_memory(
                label=side.label,
                open_audience=side.opener(creation_id),
                count=idle,
                server_pid=side.pid,
                settle_s=settle_s,
            )
            run.left_open = await side.left_open()
            memory[side.label] = run.summary()
        spread: dict[str, Any] = {}
        for side, publish, creation_id in (
            (raw, publish_raw, ""),
            (stack, publish_stack, watched_id),
        ):
            say(f"fan-out ({side.label}): {events} events to {subscribers} sockets")
            began = time.perf_counter()
            audience = await side.opener(creation_id)(subscribers)
            opened = time.perf_counter() - began
            try:
                fanned = await fan_out(
                    label=side.label,
                    audience=audience,
                    publish=publish,
                    events=events,
                    server_pid=side.pid,
                )
            finally:
                await audience.aclose()
            fanned.open_s = opened
            fanned.left_open = await side.left_open()
            spread[side.label] = fanned.summary()
            latency = spread[side.label]["latency"]
            say(
                f"  opened in {opened:.1f} s; p50 {latency['p50']:.1f} ms, "
                f"p99 {latency['p99']:.1f} ms"
            )
    finally:
        await redis.aclose()
    memory["ratio"] = ratio(memory["stack"]["bytes_per_socket"], memory["raw"]["bytes_per_socket"])
    raw_latency, stack_latency = spread["raw"]["latency"], spread["stack"]["latency"]
    spread["ratio_p50"] = ratio(stack_latency["p50"], raw_latency["p50"])
    spread["ratio_p99"] = ratio(stack_latency["p99"], raw_latency["p99"])
    return memory, spread


def _fields(seq: int, terminal: bool) -> dict[str, Any]:
    """The audience's `creationEvents` selection, as the stack renders the same event."""
    if terminal:
        return {"__typename": "CreationCompleted", "seq": seq}
    return {"__typename": "TokenDelta", "seq": seq, "text": DELTA_TEXT, "firstSeq": seq}


def _event(creation_id: str, seq: int, terminal: bool) -> Event:
    """The log entry the runner would append for the same event."""
    if terminal:
        tokens = DELTA_TOKENS * (seq - 2)
        return Event(creation_id, seq, EventKind.COMPLETED, completion_tokens=tokens)
    return Event(creation_id, seq, EventKind.DELTA, text=DELTA_TEXT, completion_tokens=DELTA_TOKENS)


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (Linux /proc), 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
