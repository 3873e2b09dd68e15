"""TritonEngine against a real Triton server (tests/triton/server.py, model `writer`).

The server's `writer` model: one response per token, `SLOW:` prompts wait 2 s before the first
token, `FAIL:` prompts fail after one token. A model failing mid-stream is ModelUnavailable:
the stream broke on the server, which is not the caller's fault and may succeed on retry.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pytest
from tritonclient.utils import InferenceServerException

from inference.base import (
    BadInput,
    Delta,
    Engine,
    GenerationRequest,
    InferenceTimeout,
    ModelUnavailable,
    Usage,
    count_tokens,
)
from inference.triton import TritonConfig, TritonEngine, _translate

pytestmark = pytest.mark.triton

MODEL = "writer"
PROMPT = "Write about a lighthouse keeper and her cat"


def _request(prompt: str = PROMPT, **changes: Any) -> GenerationRequest:
    fields: dict[str, Any] = {"max_tokens": 12, "seed": 7, "temperature": 0.7}
    fields.update(changes)
    return GenerationRequest(request_id="req-1", model=MODEL, prompt=prompt, **fields)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def engine(triton_url: str) -> AsyncIterator[TritonEngine]:
    config = TritonConfig(url=triton_url, stream_timeout=30, idle_timeout=5, connect_timeout=5)
    engine = TritonEngine(config)
    yield engine
    await engine.aclose()


@pytest.fixture
async def unreachable() -> AsyncIterator[TritonEngine]:
    config = TritonConfig(url=f"127.0.0.1:{_closed_port()}", connect_timeout=2, idle_timeout=5)
    engine = TritonEngine(config)
    yield engine
    await engine.aclose()


async def test_engine_implements_the_protocol(engine: TritonEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.name == "triton"


async def test_stream_yields_one_delta_per_token_and_joins_to_complete(
    engine: TritonEngine,
) -> None:
    request = _request(max_tokens=12)

    deltas = [delta async for delta in engine.stream(request)]
    completion = await engine.complete(request)

    assert len(deltas) == 12
    assert all(delta.tokens == 1 and delta.text.startswith(" ") for delta in deltas)
    assert "".join(delta.text for delta in deltas) == completion.text
    assert completion.usage == Usage(count_tokens(PROMPT), 12)
    assert completion.model == MODEL


async def test_a_seed_makes_the_text_reproducible(engine: TritonEngine) -> None:
    first = await engine.complete(_request(seed=42, max_tokens=20))
    again = await engine.complete(_request(seed=42, max_tokens=20))
    other = await engine.complete(_request(seed=43, max_tokens=20))

    assert first.text == again.text
    assert first.text != other.text


async def test_concurrent_streams_on_one_engine_stay_apart(engine: TritonEngine) -> None:
    alone = [(await engine.complete(_request(seed=seed))).text for seed in (1, 2, 3)]

    together = await asyncio.gather(*(engine.complete(_request(seed=seed)) for seed in (1, 2, 3)))

    assert [completion.text for completion in together] == alone


async def test_closing_the_stream_early_returns_at_once_and_engine_stays_usable(
    engine: TritonEngine,
) -> None:
    # 1,000 tokens take the server over 2 s, so a prompt close cannot have waited for them.
    stream = engine.stream(_request(max_tokens=1000))
    assert isinstance(stream, AsyncGenerator)
    first = await anext(stream)
    second = await anext(stream)
    started = time.monotonic()

    await stream.aclose()

    assert time.monotonic() - started < 0.5
    assert first.text and second.text
    async with asyncio.timeout(5):
        after = await engine.complete(_request(max_tokens=3))
    assert after.usage.completion_tokens == 3


async def test_cancelling_the_consumer_task_propagates_cancellation(
    engine: TritonEngine,
) -> None:
    got_token = asyncio.Event()

    async def consume() -> list[Delta]:
        deltas = []
        async for delta in engine.stream(_request(max_tokens=1000)):
            deltas.append(delta)
            got_token.set()
        return deltas

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await got_token.wait()
    task.cancel()

    # A real cancellation stays a CancelledError: only tritonclient's own are translated.
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(1):
            await task
    assert (await engine.complete(_request(max_tokens=2))).usage.completion_tokens == 2


async def test_unknown_model_is_unavailable(engine: TritonEngine) -> None:
    request = GenerationRequest(request_id="r", model="no-such-model", prompt="hi")

    with pytest.raises(ModelUnavailable, match="no-such-model"):
        await engine.complete(request)


async def test_unreachable_server_is_unavailable_within_the_connect_timeout(
    unreachable: TritonEngine,
) -> None:
    started = time.monotonic()

    with pytest.raises(ModelUnavailable):
        await unreachable.complete(_request())

    assert time.monotonic() - started < unreachable.config.connect_timeout + 0.5


async def test_silent_server_is_unavailable_after_the_connect_timeout() -> None:
    with socket.socket() as listener:
        # The kernel completes the TCP handshake; nothing ever answers gRPC's HTTP/2 one.
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"127.0.0.1:{listener.getsockname()[1]}"
        engine = TritonEngine(TritonConfig(url=url, connect_timeout=0.5, idle_timeout=5))
        started = time.monotonic()
        try:
            with pytest.raises(ModelUnavailable, match="cannot connect"):
                await engine.complete(_request())
            assert not await engine.ready()
        finally:
            await engine.aclose()

    assert time.monotonic() - started < 2.5


async def test_no_first_token_within_idle_timeout_is_a_timeout(triton_url: str) -> None:
    engine = TritonEngine(TritonConfig(url=triton_url, idle_timeout=0.5))
    started = time.monotonic()
    try:
        with pytest.raises(InferenceTimeout, match=r"no token within 0\.5 s"):
            await engine.complete(_request("SLOW: a slow start"))
    finally:
        await engine.aclose()

    # The server sleeps 2 s before its first token: we gave up on our own timeout.
    assert 0.45 < time.monotonic() - started < 1.5


async def test_stream_deadline_is_a_timeout(triton_url: str) -> None:
    engine = TritonEngine(TritonConfig(url=triton_url, stream_timeout=0.3, idle_timeout=5))
    try:
        with pytest.raises(InferenceTimeout):
            await engine.complete(_request("SLOW: past the deadline"))
    finally:
        await engine.aclose()


async def test_model_failing_mid_stream_is_unavailable_after_its_first_token(
    engine: TritonEngine,
) -> None:
    received: list[Delta] = []

    with pytest.raises(ModelUnavailable, match="failed on purpose") as caught:
        async for delta in engine.stream(_request("FAIL: a broken model")):
            received.append(delta)

    assert len(received) == 1
    # The raw tritonclient error stays attached for logs.
    assert isinstance(caught.value.__cause__, InferenceServerException)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_tokens": -1},
        {"seed": -5},
        {"temperature": float("nan")},
        {"parameters": {"triton_enable_empty_final_response": True}},
    ],
)
async def test_malformed_requests_are_refused_before_sending(
    unreachable: TritonEngine, changes: dict[str, Any]
) -> None:
    # The engine points at a closed port: BadInput proves nothing was sent.
    with pytest.raises(BadInput):
        await unreachable.complete(_request(**changes))


async def test_request_refused_inside_tritonclient_is_bad_input(engine: TritonEngine) -> None:
    # tritonclient rejects this parameter type inside its request iterator, which surfaces as
    # a bare CancelledError from the stream.
    request = _request(parameters=cast(Any, {"tags": ["a", "b"]}))

    with pytest.raises(BadInput):
        await engine.complete(request)


async def test_custom_parameters_reach_the_model(engine: TritonEngine) -> None:
    completion = await engine.complete(_request(parameters={"style": "poem", "n": 2}))

    assert completion.usage.completion_tokens == 12


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # Messages as Triton 2.51 sends them inside the stream (no status code).
        ("Request for unknown model: 'nope' is not found", ModelUnavailable),
        ("Request for unknown model: 'writer' version 7 is not found", ModelUnavailable),
        (
            "[request id: r] unexpected shape for input 'prompt' for model 'writer'. "
            "Expected [1], got [2]. ",
            BadInput,
        ),
        (
            "[request id: r] inference input 'max_tokens' data-type is 'INT64', "
            "but model 'writer' expects 'INT32'",
            BadInput,
        ),
        ("[request id: r] expected 4 inputs but got 3 inputs for model 'writer'.", BadInput),
        ("unexpected inference output 'nope' for model 'writer'", BadInput),
        ("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n", ModelUnavailable),
    ],
)
def test_in_stream_errors_are_classified_by_message(message: str, expected: type) -> None:
    error = _translate(InferenceServerException(msg=message), MODEL)

    assert type(error) is expected
    assert "Traceback" not in str(error)


async def test_ready_reports_server_and_model(engine: TritonEngine) -> None:
    assert await engine.ready()
    assert await engine.ready(MODEL)
    assert not await engine.ready("no-such-model")


async def test_ready_is_false_for_a_closed_port(unreachable: TritonEngine) -> None:
    started = time.monotonic()

    assert not await unreachable.ready()
    assert time.monotonic() - started < unreachable.config.connect_timeout + 0.5


async def test_closed_engine_refuses_work(triton_url: str) -> None:
    engine = TritonEngine(TritonConfig(url=triton_url))
    assert await engine.ready()

    await engine.aclose()
    await engine.aclose()

    assert not await engine.ready()
    with pytest.raises(ModelUnavailable, match="closed"):
        await engine.complete(_request())


async def test_closing_the_engine_ends_running_streams_as_unavailable(
    engine: TritonEngine,
) -> None:
    stream = engine.stream(_request(max_tokens=1000))
    await anext(stream)

    await engine.aclose()

    with pytest.raises(ModelUnavailable, match="closed"):
        async with asyncio.timeout(2):
            async for _ in stream:
                pass
