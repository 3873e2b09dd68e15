"""The bench's mock upstream: numbered tokens in order, the OpenAI stream format, and our own
OpenAIEngine reading it back exactly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bench.upstream_mock import Pace, answer, create_app, parse_pace
from inference.base import GenerationRequest
from inference.openai_compat import OpenAIConfig, OpenAIEngine
from tests.conftest import Server


@pytest.fixture
async def upstream() -> AsyncIterator[Server]:
    async with Server(create_app()) as server:
        yield server


def _body(prompt: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "bench-mock",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(changes)
    return body


async def _events(server: Server, body: dict[str, Any]) -> list[str]:
    async with (
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]


def test_the_pace_comes_from_the_prompts_last_line() -> None:
    assert parse_pace("numbered tokens\nD=5 T=200") == Pace(delay_ms=5, tokens=200)
    assert parse_pace("D=9 T=9 on an earlier line\nT=1000 D=0") == Pace(0, 1000)
    assert parse_pace("D=2.5", max_tokens=12) == Pace(2.5, 12)
    assert parse_pace("no pace here") == Pace(0, 16)


def test_the_answer_is_numbered_tokens() -> None:
    assert answer(3) == "t0 t1 t2 "


@pytest.mark.parametrize("pace", ["D=0 T=200", "D=1 T=30"])
async def test_streams_numbered_tokens_in_order_then_usage_and_done(
    upstream: Server, pace: str
) -> None:
    tokens = int(pace.rsplit("=", 1)[1])

    events = await _events(upstream, _body(f"count for me\n{pace}"))

    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    contents = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(contents) == answer(tokens)
    assert [piece for piece in contents if piece] == [f"t{i} " for i in range(tokens)]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert set(finishes[:-1]) == {None}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == tokens


async def test_no_usage_chunk_unless_asked(upstream: Server) -> None:
    events = await _events(upstream, _body("D=0 T=3", stream_options=None))

    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


async def test_refuses_a_request_that_does_not_stream(upstream: Server) -> None:
    async with httpx.AsyncClient(base_url=upstream.url) as client:
        response = await client.post("/v1/chat/completions", json=_body("T=3", stream=False))

    assert response.status_code == 400


@pytest.mark.parametrize("pace", ["D=0 T=1000", "D=1 T=40"])
async def test_our_openai_engine_reads_it_back_exactly(upstream: Server, pace: str) -> None:
    tokens = int(pace.rsplit("=", 1)[1])
    engine = OpenAIEngine(OpenAIConfig(base_url=upstream.url + "/v1", api_key="bench-key"))
    request = GenerationRequest(
        request_id="bench-1",
        model="bench-mock",
        prompt=f"count for me\n{pace}",
        max_tokens=tokens,
        temperature=0.0,
        seed=1,
    )
    try:
        deltas = [delta async for delta in engine.stream(request)]
        ready = await engine.ready()
    finally:
        await engine.aclose()

    assert "".join(delta.text for delta in deltas) == answer(tokens)
    assert [d.text for d in deltas if d.text] == [f"t{i} " for i in range(tokens)]
    assert sum(delta.tokens for delta in deltas) == tokens  # the usage chunk agrees
    assert ready
