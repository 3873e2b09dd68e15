"""The two sides of `bench.upstream`: a graphql-transport-ws client of the gateway, and the
direct baseline that calls the mock upstream itself."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from bench.ttft import WRITE, StreamRun, open_authenticated, write_events
from inference.base import GenerationRequest
from inference.openai_compat import OpenAIConfig, OpenAIEngine
from inference.write import Genre, WriteSpec, build_prompt

API_KEY = "bench-upstream-key"
MODEL = "bench-mock"
TEMPERATURE = 0.8

Start = Callable[[str, int, int], Awaitable[StreamRun]]


class StackClient:
    """One authenticated graphql-transport-ws socket asking `write` for a prompt and budget."""

    def __init__(self, ws: Any, *, seeded: bool) -> None:
        self._ws = ws
        self._ids = 0
        self.seeded = seeded  # else unseeded requests, as most users send

    @classmethod
    async def connect(cls, ws_url: str, token: str, *, seeded: bool = False) -> StackClient:
        """Open the socket and pass connection_init with the Bearer token."""
        return cls(await open_authenticated(ws_url, token), seeded=seeded)

    async def aclose(self) -> None:
        """Close the socket."""
        await self._ws.close()

    async def stream(self, prompt: str, tokens: int, seed: int) -> StreamRun:
        """Run one write subscription to its terminal event."""
        self._ids += 1
        op_id = str(self._ids)
        fields: dict[str, Any] = {"prompt": prompt, "maxTokens": tokens}
        if self.seeded:  # a reproducible request: the gateway asks its answer cache first
            fields["seed"] = seed
        variables = {"input": fields}
        payload = {"query": WRITE, "variables": variables}
        run = StreamRun()
        parts: list[str] = []
        async with asyncio.timeout(120):
            start = time.perf_counter()
            await self._ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
            async for arrived, event in write_events(self._ws, op_id):
                now = (arrived - start) * 1000
                if event["__typename"] == "TokenDelta" and event["text"]:
                    run.arrivals.append((now, len(event["text"].split())))  # "t<i> " each
                    parts.append(event["text"])
                elif event["__typename"] in ("CreationFailed", "CreationCancelled"):
                    raise RuntimeError(f"creation did not complete: {event}")
                elif event["__typename"] == "CreationCompleted":
                    run.done_ms = now
        run.text = "".join(parts)
        return run


class Direct:
    """The baseline: the same request straight to the mock, read by a lean client (one httpx
    connection per stream slot) or by our `OpenAIEngine` (one pool for all, as the gateway)."""

    def __init__(self, base_url: str, kind: str, slots: int) -> None:
        self.kind = kind
        # One pool per slot: httpcore's pool scans its idle connections quadratically on every
        # request, which would make a 64-connection baseline pay for a client-side quirk.
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._http = [
            httpx.AsyncClient(base_url=base_url, limits=one, timeout=60) for _ in range(slots)
        ]
        self._engine = OpenAIEngine(OpenAIConfig(base_url=base_url, api_key=API_KEY))

    async def aclose(self) -> None:
        """Close every client."""
        await asyncio.gather(*(http.aclose() for http in self._http))
        await self._engine.aclose()

    def slot(self, index: int) -> Start:
        """The stream function of one concurrent slot."""
        return functools.partial(self.stream, index)

    async def stream(self, slot: int, prompt: str, tokens: int, seed: int) -> StreamRun:
        """One completion with the prompt the gateway would send for the same write input."""
        full = build_prompt(WriteSpec(prompt=prompt, genre=Genre.STORY))
        if self.kind == "engine":
            return await self._engine_run(full, tokens, seed)
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": full}],
            "max_tokens": tokens,
            "temperature": TEMPERATURE,
            "stream": True,
            "stream_options": {"include_usage": True},
            "seed": seed,
        }
        headers = {"authorization": f"Bearer {API_KEY}"}
        run, parts = StreamRun(), []
        start = time.perf_counter()
        http = self._http[slot]
        async with http.stream("POST", "chat/completions", json=body, headers=headers) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue  # blank lines, [DONE]
                for choice in orjson.loads(line[6:])["choices"]:
                    content = choice["delta"].get("content")
                    if content:
                        run.arrivals.append(((time.perf_counter() - start) * 1000, 1))
                        parts.append(content)
        run.done_ms = (time.perf_counter() - start) * 1000
        run.text = "".join(parts)
        return run

    async def _engine_run(self, prompt: str, tokens: int, seed: int) -> StreamRun:
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            model=MODEL,
            prompt=prompt,
            max_tokens=tokens,
            temperature=TEMPERATURE,
            seed=seed,
        )
        run, parts = StreamRun(), []
        start = time.perf_counter()
        async for delta in self._engine.stream(request):
            if delta.text:
                run.arrivals.append(((time.perf_counter() - start) * 1000, 1))
                parts.append(delta.text)
        run.done_ms = (time.perf_counter() - start) * 1000
        run.text = "".join(parts)
        return run
