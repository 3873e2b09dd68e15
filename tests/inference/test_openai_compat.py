"""OpenAIEngine against a local server speaking the chat completions protocol over uvicorn.

The fake provider scripts its answer by the prompt (the constants below) and counts the
attempts it saw per prompt, so the tests can tell a retry from a single call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from inference.base import (
    BadInput,
    Completion,
    Delta,
    Engine,
    GenerationRequest,
    InferenceError,
    InferenceTimeout,
    ModelUnavailable,
    Usage,
    count_tokens,
)
from inference.openai_compat import OpenAIConfig, OpenAIEngine, env_proxy, event_data
from tests.conftest import Server, free_port

API_KEY = "sk-test-5f1d9c2a7e4b4e0f8a3c6d2b1e9f7a0c"
MODEL = "deepseek-coder"
TEXT = ["def", " add", "(a, b):", " return a + b"]
# Deliberately unlike our own counts, so a test can tell whose numbers it got.
PROVIDER_USAGE = {"prompt_tokens": 41, "completion_tokens": 17, "total_tokens": 58}

NORMAL = "write an add function"
NO_USAGE = "no usage please"
RATE_LIMITED = "rate limited twice"
FLAKY = "503 once"
SERVER_ERROR = "always 500"
BAD_REQUEST = "bad request"
UNAUTHORIZED = "wrong key"
STALL_HEADERS = "stall before headers"
STALL_BODY = "stall before the first chunk"
BREAK = "break after two chunks"
TRUNCATED = "end without finishing"
SLOW = "slow stream"
MALFORMED = "malformed chunk"
ERROR_EVENT = "error event mid-stream"
RAGGED = "comments, CRLF and chunks split across reads"
HUGE_REFUSAL = "a refusal with a megabyte of plain text"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": None,
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


class Provider:
    """The fake provider's script and what it observed."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.release = asyncio.Event()  # ends every stall at teardown
        self.disconnected = asyncio.Event()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        model = {"id": MODEL, "object": "model", "created": 1, "owned_by": "test"}
        return JSONResponse({"object": "list", "data": [model]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        prompt = body["messages"][0]["content"]
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        self.attempts[prompt] += 1
        self.arrivals.setdefault(prompt, []).append(time.monotonic())
        attempt = self.attempts[prompt]
        if prompt == RATE_LIMITED and attempt <= 2:
            return _error(429, "slow down", {"Retry-After": "30"})
        if prompt == FLAKY and attempt == 1:
            return _error(503, "overloaded")
        if prompt == SERVER_ERROR:
            return _error(500, "internal error")
        if prompt == BAD_REQUEST:
            return _error(400, f"max_tokens is too large for key {API_KEY}")
        if prompt == HUGE_REFUSAL:
            return Response("no " * 400_000, status_code=422, media_type="text/plain")
        if prompt == UNAUTHORIZED:
            return _error(401, f"Incorrect API key provided: {API_KEY}")
        if prompt == STALL_HEADERS:
            await self._stall()
        return StreamingResponse(self._events(prompt), media_type="text/event-stream")

    async def _stall(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 10)

    async def _events(self, prompt: str) -> AsyncIterator[bytes]:
        try:
            if prompt == RAGGED:
                async for piece in _ragged():
                    yield piece
                return
            yield _sse(_chunk({"role": "assistant", "content": ""}))
            if prompt == MALFORMED:
                yield b'data: {"choices": [{"delta": {"content": "x"\n\n'
                return
            if prompt == ERROR_EVENT:
                yield _sse(_chunk({"content": TEXT[0]}))
                yield _sse({"error": {"message": f"overloaded, key {API_KEY}", "code": 500}})
                return
            if prompt == STALL_BODY:
                await self._stall()
            for index, piece in enumerate(TEXT):
                if prompt == SLOW:
                    await asyncio.sleep(0.05)
                if prompt == BREAK and index == 2:
                    raise RuntimeError("the provider crashed mid-stream")
                if prompt == TRUNCATED and index == 2:
                    return
                yield _sse(_chunk({"content": piece}))
            if prompt == SLOW:
                await self._stall()
            yield _sse(_chunk({}, finish="stop"))
            if prompt != NO_USAGE:
                yield _sse({**_chunk({}), "choices": [], "usage": PROVIDER_USAGE})
            yield _sse("[DONE]")
        finally:
            self.disconnected.set()


async def _ragged() -> AsyncIterator[bytes]:
    """The normal answer as a provider behind a proxy may send it: keep-alive comments, CRLF
    line ends, and events cut at arbitrary bytes across network writes."""
    events = [_chunk({"content": piece}) for piece in TEXT] + [_chunk({}, finish="stop")]
    wire = b": keep-alive\r\n\r\n" + b"".join(
        _sse(event).replace(b"\n", b"\r\n") for event in events
    )
    wire += _sse("[DONE]")
    for start in range(0, len(wire), 7):
        yield wire[start : start + 7]
        await asyncio.sleep(0)


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, Server]]:
    fake = Provider()
    async with Server(fake.app()) as server:
        yield fake, server
        fake.release.set()


def _config(server: Server, **changes: Any) -> OpenAIConfig:
    values: dict[str, Any] = {
        "base_url": server.url + "/v1",
        "api_key": API_KEY,
        "timeout": 5.0,
        "max_retries": 3,
        "backoff": 0.001,
        "max_backoff": 0.2,
    }
    values.update(changes)
    return OpenAIConfig(**values)


@pytest.fixture
async def engine(provider: tuple[Provider, Server]) -> AsyncIterator[OpenAIEngine]:
    running = OpenAIEngine(_config(provider[1]))
    yield running
    await running.aclose()


def _request(prompt: str = NORMAL, **changes: Any) -> GenerationRequest:
    fields: dict[str, Any] = {"max_tokens": 64, "temperature": 0.2, "seed": 7}
    fields.update(changes)
    return GenerationRequest(request_id="req-1", model=MODEL, prompt=prompt, **fields)


async def _deltas(engine: OpenAIEngine, request: GenerationRequest) -> list[Delta]:
    return [delta async for delta in engine.stream(request)]


def test_is_an_engine() -> None:
    engine = OpenAIEngine(OpenAIConfig(base_url="http://127.0.0.1:1/v1", api_key=API_KEY))
    assert isinstance(engine, Engine)
    assert engine.name == "openai"


@pytest.mark.parametrize(
    "changes",
    [{"max_retries": -1}, {"max_retries": 11}, {"timeout": 0}, {"backoff": -1.0}],
)
def test_config_refuses_unsafe_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OpenAIConfig(base_url="http://x/v1", api_key=API_KEY, **changes)


async def test_streams_the_text_one_token_per_chunk(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    fake, _ = provider

    deltas = await _deltas(engine, _request())

    # the text, one token per chunk, then one empty delta correcting both estimates to the
    # provider's final-chunk usage
    assert deltas[:-1] == [Delta(piece, 1) for piece in TEXT]
    assert deltas[-1] == Delta(
        "",
        tokens=PROVIDER_USAGE["completion_tokens"] - len(TEXT),
        prompt_tokens=PROVIDER_USAGE["prompt_tokens"] - count_tokens(NORMAL),
    )
    assert sum(d.tokens for d in deltas) == PROVIDER_USAGE["completion_tokens"]
    body = fake.bodies[0]
    assert body["model"] == MODEL
    assert body["messages"] == [{"role": "user", "content": NORMAL}]
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (64, 0.2, 7)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert fake.headers[0]["authorization"] == f"Bearer {API_KEY}"


async def test_sends_no_seed_when_none_is_given(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    await _deltas(engine, _request(seed=None))

    assert "seed" not in provider[0].bodies[0]


async def test_sends_the_organization(provider: tuple[Provider, Server]) -> None:
    fake, server = provider
    engine = OpenAIEngine(_config(server, organization="org-creation-king"))
    try:
        await _deltas(engine, _request())
    finally:
        await engine.aclose()

    assert fake.headers[0]["openai-organization"] == "org-creation-king"


async def test_complete_reports_the_providers_usage(engine: OpenAIEngine) -> None:
    completion = await engine.complete(_request())

    assert completion == Completion(
        text="".join(TEXT),
        usage=Usage(PROVIDER_USAGE["prompt_tokens"], PROVIDER_USAGE["completion_tokens"]),
        model=MODEL,
    )


async def test_a_stream_without_provider_usage_has_no_correction(engine: OpenAIEngine) -> None:
    deltas = await _deltas(engine, _request(NO_USAGE))
    assert deltas == [Delta(piece, 1) for piece in TEXT]


async def test_complete_counts_when_the_provider_reports_no_usage(engine: OpenAIEngine) -> None:
    completion = await engine.complete(_request(NO_USAGE))

    assert completion.usage == Usage(count_tokens(NO_USAGE), len(TEXT))


async def test_retries_429_honouring_a_capped_retry_after(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    fake, _ = provider
    started = time.monotonic()

    deltas = await _deltas(engine, _request(RATE_LIMITED))

    assert "".join(delta.text for delta in deltas) == "".join(TEXT)
    assert fake.attempts[RATE_LIMITED] == 3
    arrivals = fake.arrivals[RATE_LIMITED]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # Retry-After: 30 is honoured over our 1 ms backoff, but capped at max_backoff (0.2 s).
    assert all(gap >= 0.18 for gap in gaps), gaps
    assert time.monotonic() - started < 3


async def test_retries_a_5xx_with_backoff(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    deltas = await _deltas(engine, _request(FLAKY))

    assert [delta.text for delta in deltas if delta.text] == TEXT
    assert provider[0].attempts[FLAKY] == 2


async def test_gives_up_on_5xx_after_max_retries(provider: tuple[Provider, Server]) -> None:
    fake, server = provider
    engine = OpenAIEngine(_config(server, max_retries=2))
    try:
        with pytest.raises(ModelUnavailable, match="HTTP 500"):
            await _deltas(engine, _request(SERVER_ERROR))
    finally:
        await engine.aclose()

    assert fake.attempts[SERVER_ERROR] == 3


async def test_bad_request_is_bad_input_and_not_retried(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    with pytest.raises(BadInput, match="max_tokens is too large") as caught:
        await _deltas(engine, _request(BAD_REQUEST))

    assert provider[0].attempts[BAD_REQUEST] == 1
    assert API_KEY not in str(caught.value)


async def test_refused_credentials_are_model_unavailable(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    with pytest.raises(ModelUnavailable, match="provider refused the credentials"):
        await _deltas(engine, _request(UNAUTHORIZED))

    assert provider[0].attempts[UNAUTHORIZED] == 1


@pytest.mark.parametrize("prompt", [STALL_HEADERS, STALL_BODY])
async def test_a_stalled_provider_times_out(provider: tuple[Provider, Server], prompt: str) -> None:
    fake, server = provider
    engine = OpenAIEngine(_config(server, timeout=0.3))
    started = time.monotonic()
    try:
        with pytest.raises(InferenceTimeout):
            await _deltas(engine, _request(prompt))
    finally:
        await engine.aclose()

    assert time.monotonic() - started < 3
    assert fake.attempts[prompt] == 1


async def test_a_stream_broken_after_tokens_is_not_retried(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    received: list[str] = []

    with pytest.raises(ModelUnavailable):
        async for delta in engine.stream(_request(BREAK)):
            received.append(delta.text)

    assert received == TEXT[:2]
    assert provider[0].attempts[BREAK] == 1


async def test_reads_comments_crlf_and_events_split_across_reads(engine: OpenAIEngine) -> None:
    deltas = await _deltas(engine, _request(RAGGED))

    assert deltas == [Delta(piece, 1) for piece in TEXT]  # no usage chunk: no correction


async def test_a_malformed_chunk_is_model_unavailable(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    with pytest.raises(ModelUnavailable, match="malformed chunk"):
        await _deltas(engine, _request(MALFORMED))

    assert provider[0].attempts[MALFORMED] == 1


async def test_an_error_event_mid_stream_ends_it_without_the_key(engine: OpenAIEngine) -> None:
    received: list[str] = []

    with pytest.raises(ModelUnavailable, match="failed mid-stream: overloaded") as failure:
        async for delta in engine.stream(_request(ERROR_EVENT)):
            received.append(delta.text)

    assert received == TEXT[:1]
    assert API_KEY not in str(failure.value)


async def test_a_stream_ending_before_the_finish_is_model_unavailable(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    with pytest.raises(ModelUnavailable, match="before the model finished"):
        await _deltas(engine, _request(TRUNCATED))

    assert provider[0].attempts[TRUNCATED] == 1


async def test_closing_the_stream_closes_the_response(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    fake, _ = provider
    deltas = engine.stream(_request(SLOW))

    first = await anext(deltas)
    await deltas.aclose()  # type: ignore[attr-defined]

    assert first == Delta(TEXT[0], 1)
    await asyncio.wait_for(fake.disconnected.wait(), 5)


async def test_cancelling_the_consumer_closes_the_response(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    fake, _ = provider
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.stream(_request(SLOW)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.disconnected.wait(), 5)


async def test_an_unreachable_provider_is_model_unavailable_after_retries() -> None:
    config = OpenAIConfig(
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key=API_KEY,
        max_retries=2,
        backoff=0.001,
    )
    engine = OpenAIEngine(config)
    try:
        with pytest.raises(ModelUnavailable, match="cannot reach"):
            await _deltas(engine, _request())
        assert await engine.ready() is False
    finally:
        await engine.aclose()


async def test_ready(engine: OpenAIEngine) -> None:
    assert await engine.ready() is True

    await engine.aclose()

    assert await engine.ready() is False


async def test_the_api_key_never_shows(
    engine: OpenAIEngine, provider: tuple[Provider, Server]
) -> None:
    errors: list[InferenceError] = []
    for prompt in (BAD_REQUEST, UNAUTHORIZED, SERVER_ERROR):
        with pytest.raises(InferenceError) as caught:
            await _deltas(engine, _request(prompt))
        errors.append(caught.value)

    shown = [repr(engine), repr(engine.config), str(engine.config)]
    shown += [text for error in errors for text in (str(error), repr(error))]
    assert len(errors) == 3
    assert not [text for text in shown if API_KEY in text]


async def test_a_refusal_in_plain_text_is_summarised_from_its_start(engine: OpenAIEngine) -> None:
    with pytest.raises(BadInput, match="HTTP 422: no no no") as caught:
        await _deltas(engine, _request(HUGE_REFUSAL))

    assert len(str(caught.value)) < 400  # the summary is capped, the body read only in part


async def _lines(*lines: bytes) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"data: a\n", b"\n", b"data: b\n", b"\n"], [b"a", b"b"]),
        ([b"data: one\r\n", b"data:two\r\n", b"\r\n"], [b"one\ntwo"]),  # joined; no space
        ([b": keep-alive\n", b"event: x\n", b"id: 7\n", b"data: c\n", b"\n"], [b"c"]),
        ([b"data:  two spaces\n", b"\n"], [b" two spaces"]),  # only one space is cut
        ([b'data: {"a": "x: y"}\n', b"\n"], [b'{"a": "x: y"}']),
        ([b"\n", b"\n", b"data: d\n", b"\n", b"\n"], [b"d"]),  # no empty events
        ([b"data: done\n", b"\n", b"data: cut off\n"], [b"done"]),  # never dispatched
        ([b"retry: 10\n", b"\n"], []),
    ],
)
async def test_event_data_reads_the_event_stream_format(
    lines: list[bytes], expected: list[bytes]
) -> None:
    assert [data async for data in event_data(_lines(*lines))] == expected


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert env_proxy("https://api.example.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.cluster.local")
    assert env_proxy("https://api.example.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert env_proxy("http://api.example.com/v1") is None  # no HTTP_PROXY
    assert env_proxy("https://llm.ns.svc.cluster.local/v1") is None  # NO_PROXY covers it
