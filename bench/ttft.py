"""Streaming overhead: the `write` subscription through the whole stack versus Triton directly.

Both sides ask the local Triton's `writer` model for the same prompt, token budget, temperature
and seed, so they receive the same tokens at the same model pace:

- direct (baseline): `TritonEngine.stream` in this process, one `Delta` per model token;
- stack: `subscription { write(...) }` over graphql-transport-ws against a `creation-king
  serve` subprocess (Postgres, Redis event log and pub/sub, Triton). The server batches tokens
  (CK_BATCH_INTERVAL_MS, leading edge), so one `TokenDelta` may carry several tokens.

Runs alternate between the two sides (which goes first alternates too) so drift hits both.
Every time is measured in this process with `time.perf_counter`, in milliseconds from the
moment the request is sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

from bench.stats import Summary, ratio
from inference.base import GenerationRequest
from inference.triton import TritonEngine
from inference.write import Genre, WriteSpec, build_prompt

PROTOCOL = "graphql-transport-ws"
PROMPT = "a lighthouse keeper's last night"
TEMPERATURE = 0.8
WRITE = """
subscription W($input: WriteInput!) {
  write(input: $input) {
    __typename seq
    ... on TokenDelta { text }
    ... on CreationCompleted { usage { completionTokens } }
    ... on CreationFailed { code message }
  }
}
"""
_TERMINAL = {"CreationCompleted", "CreationFailed", "CreationCancelled"}


@dataclass
class StreamRun:
    """One stream as the client saw it: (ms since request, tokens) per text message."""

    arrivals: list[tuple[float, int]] = field(default_factory=list)
    text: str = ""
    started_ms: float = math.nan  # CreationStarted (stack only)
    done_ms: float = math.nan  # terminal event (stack) or end of stream (direct)

    @property
    def tokens(self) -> int:
        """Model tokens received."""
        return sum(count for _, count in self.arrivals)

    @property
    def ttft_ms(self) -> float:
        """Time to the first message holding text."""
        return self.arrivals[0][0] if self.arrivals else math.nan

    @property
    def last_ms(self) -> float:
        """Time to the last message holding text."""
        return self.arrivals[-1][0] if self.arrivals else math.nan

    def gaps_ms(self) -> list[float]:
        """Inter-arrival times of consecutive text messages."""
        times = [t for t, _ in self.arrivals]
        return [b - a for a, b in itertools.pairwise(times)]

    def token_times_ms(self) -> list[float]:
        """Arrival time of every token (tokens of one message share its time)."""
        return [t for t, count in self.arrivals for _ in range(count)]

    def ms_per_token(self) -> float:
        """Streaming pace after the first message: (last - first) / tokens after the first."""
        if len(self.arrivals) < 2:
            return math.nan
        return (self.last_ms - self.ttft_ms) / (self.tokens - self.arrivals[0][1])


def _token_count(text: str) -> int:
    # The writer model's tokens are " word" with no inner whitespace (tests/triton/server.py).
    return len(text.split())


async def direct_run(engine: TritonEngine, *, max_tokens: int, seed: int) -> StreamRun:
    """Read one generation straight from Triton, as the server's runner would."""
    request = GenerationRequest(
        request_id=uuid.uuid4().hex,
        model="writer",
        prompt=build_prompt(WriteSpec(prompt=PROMPT, genre=Genre.STORY)),
        max_tokens=max_tokens,
        temperature=TEMPERATURE,
        seed=seed,
    )
    run = StreamRun()
    parts: list[str] = []
    start = time.perf_counter()
    async for delta in engine.stream(request):
        run.arrivals.append(((time.perf_counter() - start) * 1000, delta.tokens))
        parts.append(delta.text)
    run.done_ms = (time.perf_counter() - start) * 1000
    run.text = "".join(parts)
    return run


class Subscriber:
    """One authenticated graphql-transport-ws connection running operations one at a time."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = 0

    @classmethod
    async def connect(cls, ws_url: str, token: str) -> Subscriber:
        """Open the socket and pass connection_init with the Bearer token."""
        return cls(await open_authenticated(ws_url, token))

    async def aclose(self) -> None:
        """Close the socket."""
        await self._ws.close()

    async def write(self, *, max_tokens: int, seed: int, limit_s: float = 60.0) -> StreamRun:
        """Run the write subscription to its terminal event."""
        self._ids += 1
        op_id = str(self._ids)
        variables = {"input": {"prompt": PROMPT, "maxTokens": max_tokens, "seed": seed}}
        message = {
            "id": op_id,
            "type": "subscribe",
            "payload": {"query": WRITE, "variables": variables},
        }
        run = StreamRun()
        parts: list[str] = []
        async with asyncio.timeout(limit_s):
            start = time.perf_counter()
            await self._ws.send(json.dumps(message))
            async for arrived, event in write_events(self._ws, op_id):
                now = (arrived - start) * 1000
                typename = event["__typename"]
                if typename == "CreationStarted":
                    run.started_ms = now
                elif typename == "TokenDelta":
                    run.arrivals.append((now, _token_count(event["text"])))
                    parts.append(event["text"])
                elif typename in _TERMINAL:
                    if typename != "CreationCompleted":
                        raise RuntimeError(f"creation did not complete: {event}")
                    run.done_ms = now
        run.text = "".join(parts)
        return run


async def open_authenticated(ws_url: str, token: str) -> Any:
    """A graphql-transport-ws socket, acknowledged after connection_init with the Bearer
    token."""
    ws = await websockets.connect(
        ws_url,
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        compression=None,
        max_size=1 << 22,
    )
    try:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
    except BaseException:
        await ws.close()
        raise
    return ws


async def write_events(ws: Any, op_id: str) -> AsyncIterator[tuple[float, dict[str, Any]]]:
    """The `write` events of subscription `op_id` on a graphql-transport-ws socket, each with
    the `perf_counter` time its message arrived, until `complete`. Answers pings, skips other
    operations' messages, and raises RuntimeError on an error."""
    while True:
        raw = await ws.recv()
        arrived = time.perf_counter()
        data = orjson.loads(raw)
        kind = data.get("type")
        if kind == "ping":
            await ws.send('{"type": "pong"}')
            continue
        if data.get("id") != op_id:
            continue
        if kind == "complete":
            return
        if kind != "next" or data["payload"].get("errors"):
            raise RuntimeError(f"subscription failed: {data}")
        yield arrived, data["payload"]["data"]["write"]


@dataclass
class StreamingResult:
    """Paired runs of one configuration (the same seeds on both sides)."""

    label: str
    batch_interval_ms: int
    max_tokens: int
    token_delay_s: float
    direct: list[StreamRun]
    stack: list[StreamRun]

    def mismatches(self) -> int:
        """Pairs whose text differs (should be 0: same prompt and seed, same tokens)."""
        return sum(d.text != s.text for d, s in zip(self.direct, self.stack, strict=True))

    def summary(self) -> dict[str, Any]:
        """Every figure of the report, in ms unless named otherwise."""
        direct_ttft = Summary.of([r.ttft_ms for r in self.direct])
        stack_ttft = Summary.of([r.ttft_ms for r in self.stack])
        direct_gap = Summary.of([g for r in self.direct for g in r.gaps_ms()])
        stack_gap = Summary.of([g for r in self.stack for g in r.gaps_ms()])
        direct_pace = Summary.of([r.ms_per_token() for r in self.direct])
        stack_pace = Summary.of([r.ms_per_token() for r in self.stack])
        direct_last = Summary.of([r.last_ms for r in self.direct])
        stack_last = Summary.of([r.last_ms for r in self.stack])
        lags = [
            s - d
            for direct, stack in zip(self.direct, self.stack, strict=True)
            for d, s in zip(direct.token_times_ms(), stack.token_times_ms(), strict=False)
        ]
        messages = sum(len(r.arrivals) for r in self.stack)
        return {
            "label": self.label,
            "runs": len(self.stack),
            "max_tokens": self.max_tokens,
            "token_delay_s": self.token_delay_s,
            "batch_interval_ms": self.batch_interval_ms,
            "text_mismatches": self.mismatches(),
            "ttft": {
                "direct": direct_ttft.as_dict(),
                "stack": stack_ttft.as_dict(),
                "added_p50": stack_ttft.p50 - direct_ttft.p50,
                "added_p99": stack_ttft.p99 - direct_ttft.p99,
                "ratio_p50": ratio(stack_ttft.p50, direct_ttft.p50),
                "ratio_p99": ratio(stack_ttft.p99, direct_ttft.p99),
            },
            "started_event": Summary.of([r.started_ms for r in self.stack]).as_dict(),
            "inter_arrival": {
                "direct_per_token": direct_gap.as_dict(),
                "stack_per_delta": stack_gap.as_dict(),
                "ratio_p50": ratio(stack_gap.p50, direct_gap.p50),
                "ratio_p99": ratio(stack_gap.p99, direct_gap.p99),
                "tokens_per_delta": ratio(sum(r.tokens for r in self.stack), messages),
            },
            "ms_per_token": {
                "direct": direct_pace.as_dict(),
                "stack": stack_pace.as_dict(),
                "direct_tokens_per_s_p50": ratio(1000, direct_pace.p50),
                "stack_tokens_per_s_p50": ratio(1000, stack_pace.p50),
                "ratio_p50": ratio(stack_pace.p50, direct_pace.p50),
            },
            "last_token": {
                "direct": direct_last.as_dict(),
                "stack": stack_last.as_dict(),
                "added_p50": stack_last.p50 - direct_last.p50,
                "added_p99": stack_last.p99 - direct_last.p99,
                "ratio_p50": ratio(stack_last.p50, direct_last.p50),
            },
            "token_lag": Summary.of(lags).as_dict(),
        }


async def measure(
    *,
    label: str,
    engine: TritonEngine,
    ws_url: str,
    token: str,
    runs: int,
    warmup: int,
    max_tokens: int,
    token_delay_s: float,
    batch_interval_ms: int,
) -> StreamingResult:
    """`warmup` + `runs` sequential pairs (direct, stack) with the same seed per pair."""
    subscriber = await Subscriber.connect(ws_url, token)
    direct: list[StreamRun] = []
    stack: list[StreamRun] = []
    try:
        for index in range(warmup + runs):
            seed = 1_000 + index
            if index % 2 == 0:
                d = await direct_run(engine, max_tokens=max_tokens, seed=seed)
                s = await subscriber.write(max_tokens=max_tokens, seed=seed)
            else:
                s = await subscriber.write(max_tokens=max_tokens, seed=seed)
                d = await direct_run(engine, max_tokens=max_tokens, seed=seed)
            for side, run in (("direct", d), ("stack", s)):
                if run.tokens != max_tokens:
                    raise RuntimeError(f"{label}: {side} run got {run.tokens}/{max_tokens} tokens")
            if index >= warmup:
                direct.append(d)
                stack.append(s)
    finally:
        await subscriber.aclose()
    return StreamingResult(
        label=label,
        batch_interval_ms=batch_interval_ms,
        max_tokens=max_tokens,
        token_delay_s=token_delay_s,
        direct=direct,
        stack=stack,
    )
