"""The two sides `bench.local` compares: the stack, through a graphql-transport-ws client of
a `creation-king serve` process, and the local models called directly in this process, each
doing what `inference.local` and `inference.speech` do; and the meters of both."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import math
import os
import queue
import secrets
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench import procs
from inference.local import (
    END_OF_TURN,
    REPEAT_PENALTY,
    LocalConfig,
    chat_prompt,
    default_model_path,
)
from inference.write import Genre, WriteSpec, build_prompt

PROTOCOL = Subprotocol("graphql-transport-ws")
PROMPT = "a lighthouse keeper's last night"
TEMPERATURE = 0.8
T = TypeVar("T")


def ms(start: float) -> float:
    """Milliseconds since `start` (perf_counter)."""
    return (time.perf_counter() - start) * 1000


@dataclass
class Stream:
    """One generation as this process saw it, in ms from the start of its run."""

    sent_ms: float
    started_ms: float = math.nan  # CreationStarted (stack only)
    first_ms: float = math.nan  # first piece of text
    last_ms: float = math.nan  # last piece of text
    done_ms: float = math.nan  # terminal event (stack) or end of the generator (direct)
    tokens: int = 0
    text: str = ""

    @property
    def ttft_ms(self) -> float:
        """Time from sending the request to its first text."""
        return self.first_ms - self.sent_ms


def tokens_per_second(streams: Sequence[Stream]) -> float:
    """All tokens of a run over the time from its start to its last token."""
    return float(sum(s.tokens for s in streams) * 1000 / max(s.last_ms for s in streams))


class StackSocket:
    """One authenticated graphql-transport-ws connection, one operation at a time."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = 0

    @classmethod
    async def open(cls, ws_url: str, token: str) -> StackSocket:
        ws = await connect(ws_url, subprotocols=[PROTOCOL], compression=None, max_size=1 << 22)
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if ack.get("type") != "connection_ack":
            await ws.close()
            raise RuntimeError(f"no connection_ack: {ack}")
        return cls(ws)

    async def aclose(self) -> None:
        await self._ws.close()

    async def run(self, document: str, variables: dict[str, Any], start: float) -> Stream:
        """Run one subscription to its terminal event."""
        self._ids += 1
        op_id = str(self._ids)
        payload = {"query": document, "variables": variables}
        stream = Stream(sent_ms=ms(start))
        parts: list[str] = []
        await self._ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        async with asyncio.timeout(180):
            while True:
                data = json.loads(await self._ws.recv())
                now = ms(start)
                if data.get("type") == "ping":
                    await self._ws.send(json.dumps({"type": "pong"}))
                    continue
                if data.get("id") != op_id:
                    continue
                if data["type"] == "complete":
                    break
                if data["type"] != "next" or data["payload"].get("errors"):
                    raise RuntimeError(f"subscription failed: {data}")
                event = next(iter(data["payload"]["data"].values()))
                kind = event["__typename"]
                if kind == "TokenDelta" and event["text"]:
                    if not parts:
                        stream.first_ms = now
                    stream.last_ms = now
                    parts.append(event["text"])
                elif kind == "CreationStarted":
                    stream.started_ms = now
                elif kind == "CreationCompleted":
                    stream.done_ms = now
                    stream.tokens = event["usage"]["completionTokens"]
                elif kind in ("CreationFailed", "CreationCancelled"):
                    raise RuntimeError(f"creation did not complete: {event}")
        stream.text = "".join(parts)
        return stream


class DirectLlamas:
    """`slots` llama.cpp contexts made as `inference.local` makes them, on `slots` threads;
    generations beyond wait in the pool's queue."""

    def __init__(self, config: LocalConfig) -> None:
        from llama_cpp import Llama

        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(config.slots):
            llama = Llama(
                model_path=str(default_model_path()),
                n_ctx=config.context_tokens,
                n_threads=config.threads,
                n_threads_batch=config.threads,
                verbose=False,
            )
            self._free.put(llama)
        self._pool = ThreadPoolExecutor(config.slots, thread_name_prefix="direct-llm")

    def close(self) -> None:
        self._pool.shutdown()

    async def generate(self, *, max_tokens: int, seed: int | None, start: float) -> Stream:
        """One generation, queued until a context is free; `seed` None: unseeded, as the
        engine runs it (a random seed, and the context's cached prompt prefix is reused)."""
        stream = Stream(sent_ms=ms(start))
        loop = asyncio.get_running_loop()
        work = functools.partial(self._generate, stream, max_tokens, seed, start)
        return await loop.run_in_executor(self._pool, work)

    def _generate(self, stream: Stream, max_tokens: int, seed: int | None, start: float) -> Stream:
        llama = self._free.get()
        try:
            if seed is not None:
                llama.reset()  # as the engine does for a seeded request: read the prompt afresh
            chunks = llama.create_completion(
                chat_prompt(build_prompt(WriteSpec(prompt=PROMPT, genre=Genre.STORY))),
                max_tokens=max_tokens,
                temperature=TEMPERATURE,
                seed=seed if seed is not None else secrets.randbits(31),
                stop=[END_OF_TURN],
                repeat_penalty=REPEAT_PENALTY,
                stream=True,
            )
            parts: list[str] = []
            for chunk in chunks:
                if piece := chunk["choices"][0]["text"]:
                    stream.last_ms = ms(start)
                    if not parts:
                        stream.first_ms = stream.last_ms
                    parts.append(piece)
            stream.done_ms = ms(start)
        finally:
            self._free.put(llama)
        stream.tokens, stream.text = len(parts), "".join(parts)
        return stream


def transcribe_direct(model: Any, audio: bytes, beam_size: int, start: float) -> Stream:
    stream = Stream(sent_ms=ms(start))
    segments, _info = model.transcribe(io.BytesIO(audio), language="en", beam_size=beam_size)
    stream.text = " ".join(segment.text.strip() for segment in segments)
    stream.done_ms = stream.last_ms = ms(start)
    return stream


@dataclass
class Meter:
    """Wall time of some runs; CPU of the process doing the work (the server with its model
    processes, or this process for the direct side), of this process (the client, for the
    stack) and of the machine."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    own_s: float = 0.0
    machine_s: float = 0.0

    async def measure(self, pid: int, work: Awaitable[T]) -> T:
        me = os.getpid()
        wall, machine = time.perf_counter(), procs.machine_cpu_seconds()
        cpu, own = procs.tree_cpu_seconds(pid), procs.cpu_seconds([me])
        result = await work
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += procs.tree_cpu_seconds(pid) - cpu
        self.own_s += procs.cpu_seconds([me]) - own
        self.machine_s += procs.machine_cpu_seconds() - machine
        return result

    def per_token(self, tokens: int, own: bool = False) -> str:
        """CPU ms per token."""
        return f"{(self.own_s if own else self.cpu_s) * 1000 / tokens:.1f}" if tokens else "-"

    def busy(self) -> str:
        """Busy cores of the whole machine while these runs ran."""
        return f"{self.machine_s / self.wall_s:.2f}" if self.wall_s else "-"
