"""The write tool on the real Triton server's `smollm2` model (issue 12): SmolLM2-135M-Instruct
through llama.cpp behind Triton, so that the Triton path carries a real tokenizer's tokens
and real text, not the deterministic `writer` stand-in."""

from __future__ import annotations

import re
from typing import Any

from inference import local
from inference.base import GenerationRequest
from inference.triton import TritonConfig, TritonEngine
from inference.write import WriteSpec, build_prompt
from resolvers.core.settings import Settings
from tests.conftest import Socket, open_socket, serving
from tests.schema.test_http import CREATION
from tests.schema.test_subscriptions import WRITE, assert_well_formed, events_of, text_of
from tests.triton import server as triton_server

RAINBOW = "Name three colours of the rainbow."
COLOUR = re.compile(r"\b(red|orange|yellow|green|blue|indigo|violet|purple)\b", re.IGNORECASE)
# Words no English answer of a few sentences goes without.
FUNCTION_WORD = re.compile(r"\b(the|a|an|and|of|to|in|is|are|with|it|they)\b", re.IGNORECASE)
MAX_TOKENS = 150


async def _write(sock: Socket, seed: int) -> list[dict[str, Any]]:
    variables = {"input": {"prompt": RAINBOW, "maxTokens": MAX_TOKENS, "seed": seed}}
    op = await sock.subscribe(WRITE, variables)
    return events_of(await sock.collect(op, timeout=120))


async def test_write_streams_smollm2_text_through_triton(
    settings: Settings, triton_url: str
) -> None:
    # given the write tool routed to Triton's smollm2, every delta sent as it comes, no cache
    async with (
        serving(
            settings,
            engine="triton",
            triton_url=triton_url,
            write_model="smollm2",
            batch_interval_ms=0,
            cache_ttl_seconds=0,
        ) as (server, graphql, token),
        open_socket(server.ws_url, token) as sock,
    ):
        # when three seeded draws run, then the first seed again
        answers = [await _write(sock, seed) for seed in (1, 2, 3)]
        again = await _write(sock, 1)
        stored = [
            (await graphql.query(CREATION, {"id": events[0]["creationId"]}, token))["creation"]
            for events in answers
        ]
    # then each streams real English, token by token, and is stored as streamed
    for events, creation in zip(answers, stored, strict=True):
        assert_well_formed(events)
        completed = events[-1]
        assert completed["__typename"] == "CreationCompleted", completed
        text = text_of(events)
        assert creation["status"] == "COMPLETED"
        assert creation["output"] == completed["creation"]["output"] == text
        assert len(set(FUNCTION_WORD.findall(text.lower()))) >= 3, text
        usage = completed["usage"]
        assert usage["promptTokens"] > 0
        assert 10 < usage["completionTokens"] <= MAX_TOKENS
        deltas = [e for e in events if e["__typename"] == "TokenDelta"]
        # one Triton response per model token, each its own event with batching off
        assert (
            sum(e["seq"] - (e["firstSeq"] or e["seq"]) + 1 for e in deltas)
            == (usage["completionTokens"])
        )
        # a real tokenizer's pieces: word parts and punctuation, not only " word" tokens
        assert any(not d["text"].startswith(" ") for d in deltas[1:]), deltas
    # a seeded request is reproducible through Triton
    assert text_of(again) == text_of(answers[0])
    assert len({text_of(events) for events in answers}) == 3
    # a 135M-parameter model answers this in most draws, not all
    assert any(COLOUR.search(text_of(events)) for events in answers), [
        text_of(events)[:200] for events in answers
    ]
    # and it is the local engine's model: the same seeded request gives the same text
    engine = local.LocalEngine(local.LocalConfig(threads=1, slots=1))
    spec = WriteSpec(prompt=RAINBOW, max_tokens=MAX_TOKENS, seed=1)
    direct = await engine.complete(_request(build_prompt(spec), MAX_TOKENS, seed=1))
    await engine.aclose()
    assert direct.text == text_of(answers[0])


async def test_unseeded_requests_draw_their_own_seeds(triton_url: str) -> None:
    # llama.cpp alone would reuse one seed for every unseeded call of a process
    engine = TritonEngine(TritonConfig(url=triton_url))
    try:
        texts = {
            (await engine.complete(_request("Write a poem.\nThe sea", 40, seed=None))).text
            for _ in range(3)
        }
    finally:
        await engine.aclose()
    assert len(texts) > 1, texts


def _request(prompt: str, max_tokens: int, *, seed: int | None) -> GenerationRequest:
    return GenerationRequest(
        request_id="direct",
        model="smollm2",
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=0.8,
        seed=seed,
    )


def test_the_triton_model_formats_prompts_as_the_local_engine_does() -> None:
    # tests/triton/server.py runs in .venv-triton and cannot import the project: it copies
    # the local engine's prompt format and pinned weights, which must not drift apart.
    for prompt in (RAINBOW, "Write a poem.\nThe sea", "one\ntwo\nthree", "\nx", ""):
        assert triton_server.chat_prompt(prompt) == local.chat_prompt(prompt)
    assert triton_server.SMOLLM2_GGUF == local.GGUF_FILE
    assert triton_server.SMOLLM2_SHA256 == local.GGUF_SHA256
