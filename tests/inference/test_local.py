"""The local engine's text model (SmolLM2-135M-Instruct through llama.cpp), for real: it
streams, stops on request within a token, honours max_tokens, stop sequences and seeds,
queues requests beyond its slots, telling them their place, and outlives a model process
that dies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from inference.base import QUEUE_POSITION, BadInput, Delta, GenerationRequest, ModelUnavailable
from inference.local import LocalConfig, LocalEngine

COLOURS = {"red", "orange", "yellow", "green", "blue", "indigo", "violet", "purple"}


def request(prompt: str, **fields: object) -> GenerationRequest:
    return GenerationRequest(request_id="t", model="smollm2", prompt=prompt, **fields)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[LocalEngine]:
    local = LocalEngine(LocalConfig(slots=1))
    await local.warm_up()
    yield local
    await local.aclose()


async def deltas(engine: LocalEngine, req: GenerationRequest) -> list[Delta]:
    return [delta async for delta in engine.stream(req)]


def text(parts: list[Delta]) -> str:
    return "".join(d.text for d in parts)


@pytest.mark.asyncio(loop_scope="module")
async def test_it_answers_a_simple_instruction_token_by_token(engine: LocalEngine) -> None:
    parts = await deltas(
        engine,
        request("Name three colours of the rainbow.", max_tokens=60, temperature=0.2, seed=3),
    )
    words = set(text(parts).lower().replace(",", " ").replace(".", " ").split())
    assert words & COLOURS, text(parts)
    streamed = [d for d in parts if d.text]
    assert len(streamed) > 5 and all(d.tokens == 1 for d in streamed)
    # and the exact prompt size corrects the tools' estimate, once, at the end
    assert parts[-1].text == "" and parts[-1].tokens == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_max_tokens_and_stop_sequences_are_honoured(engine: LocalEngine) -> None:
    short = await deltas(engine, request("Write a long story about the sea.", max_tokens=5, seed=1))
    assert sum(d.tokens for d in short) == 5
    listed = await deltas(
        engine,
        request(
            "List five fruits as a numbered list.", max_tokens=80, temperature=0.0, stop=("3.",)
        ),
    )
    assert "1." in text(listed) and "3." not in text(listed), text(listed)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_seed_makes_a_request_reproducible(engine: LocalEngine) -> None:
    prompt = "Write one sentence about a lighthouse."
    first = text(await deltas(engine, request(prompt, max_tokens=30, temperature=0.9, seed=42)))
    again = text(await deltas(engine, request(prompt, max_tokens=30, temperature=0.9, seed=42)))
    others = {
        text(await deltas(engine, request(prompt, max_tokens=30, temperature=0.9, seed=seed)))
        for seed in (1, 2, 3)
    }
    unseeded = {
        text(await deltas(engine, request(prompt, max_tokens=30, temperature=0.9)))
        for _ in range(3)
    }
    assert first == again
    assert len(others | {first}) > 1  # the seed matters
    assert len(unseeded) > 1  # no seed: a different draw each time (not llama.cpp's fixed one)


@pytest.mark.asyncio(loop_scope="module")
async def test_closing_the_stream_stops_the_model(engine: LocalEngine) -> None:
    stream = engine.stream(request("Write a very long story.", max_tokens=1500, seed=5))
    got = [await anext(stream) for _ in range(5)]
    assert all(d.text for d in got)
    await stream.aclose()  # 1,500 tokens would take several seconds more
    began = time.monotonic()
    after = await deltas(engine, request("Say yes.", max_tokens=3, seed=1))
    waited = time.monotonic() - began
    # the one model was free again at once: nothing kept generating for the closed stream
    assert sum(d.tokens for d in after) >= 1
    assert waited < 5, f"the next request waited {waited:.1f} s for the model"


@pytest.mark.asyncio(loop_scope="module")
async def test_requests_beyond_the_slots_queue_and_hear_their_place(engine: LocalEngine) -> None:
    positions: list[int] = []
    order: list[str] = []

    async def run(name: str, heard: list[int] | None) -> None:
        if heard is not None:
            QUEUE_POSITION.set(heard.append)
        async for delta in engine.stream(request(f"Count to ten ({name}).", max_tokens=20)):
            if delta.text and name not in order:
                order.append(name)
        order.append(f"{name} done")

    first = asyncio.create_task(run("first", None))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(run("second", positions))
    await asyncio.gather(first, second)
    assert positions and positions[0] == 1
    assert order.index("first done") < order.index("second"), order


@pytest.mark.asyncio(loop_scope="module")
async def test_a_model_process_that_dies_fails_its_stream_and_the_next_gets_a_new_one(
    engine: LocalEngine,
) -> None:
    # given a generation under way and a request waiting for the one slot
    stream = engine.stream(request("Write a very long story.", max_tokens=1500, seed=5))
    assert (await anext(stream)).text
    waiting = asyncio.ensure_future(deltas(engine, request("Say yes.", max_tokens=3, seed=1)))
    await asyncio.sleep(0.1)
    (pid,) = engine.model_pids  # the engine's one model process
    # when the process is killed (out of memory, say)
    os.kill(pid, signal.SIGKILL)
    # then the stream it served fails with a clear error, not a hang
    with pytest.raises(ModelUnavailable, match="died"):
        async with asyncio.timeout(30):
            async for _delta in stream:
                pass
    # and the request that waited runs on a new process
    after = await asyncio.wait_for(waiting, 60)
    assert sum(d.tokens for d in after) >= 1
    (replacement,) = engine.model_pids
    assert replacement != pid


@pytest.mark.asyncio(loop_scope="module")
async def test_a_prompt_beyond_the_context_is_bad_input() -> None:
    small = LocalEngine(LocalConfig(context_tokens=256))
    try:
        with pytest.raises(BadInput, match="256"):
            await deltas(small, request("word " * 600, max_tokens=10))
    finally:
        await small.aclose()


async def test_missing_weights_are_model_unavailable(tmp_path: Path) -> None:
    missing = LocalEngine(LocalConfig(model_path=tmp_path / "none.gguf"))
    with pytest.raises(ModelUnavailable, match="no local text model"):
        await deltas(missing, request("hello", max_tokens=3))
    with contextlib.suppress(Exception):
        await missing.aclose()
