"""A tool routed to the `openai` backend, through the whole stack over a real websocket.

The provider is the fake of the engine tests (tests/inference/test_openai_compat.py), which
scripts its answer by the prompt. The write tool puts its genre guide above the user's line,
so `StackProvider` hands it only that line; and since the stack's engine caps `Retry-After`
at 20 s (no setting lowers it), it shortens the fake's 30 s to a test's pace.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from inference.base import GenerationRequest
from inference.dev import DevEngine
from inference.write import Genre, WriteSpec, build_prompt
from resolvers.core.models import Creation
from resolvers.core.routing import Variant
from resolvers.core.settings import Settings
from tests.conftest import Server, open_socket, serving
from tests.inference.test_openai_compat import (
    API_KEY,
    FLAKY,
    MODEL,
    NORMAL,
    PROVIDER_USAGE,
    RATE_LIMITED,
    SERVER_ERROR,
    STALL_HEADERS,
    TEXT,
    UNAUTHORIZED,
    Provider,
)
from tests.schema.test_subscriptions import WRITE, assert_well_formed, events_of, text_of

RETRY_AFTER = "0.05"  # seconds
MAX_TOKENS = 64
SEED = 5
ROUTES = {
    "write": [
        Variant(name="deepseek", backend="openai", model=MODEL),
        Variant(name="backup", backend="dev", model="dev", fallback=True),
    ]
}


class StackProvider(Provider):
    """The engine tests' fake provider, scripted by the last line of the prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []  # as the stack sent them

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        message = body["messages"][0]
        self.prompts.append(message["content"])
        message["content"] = message["content"].rsplit("\n", 1)[-1]
        raw = json.dumps(body).encode()
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return await request.receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        response = await super().chat(Request(request.scope, receive))
        if "retry-after" in response.headers:
            response.headers["retry-after"] = RETRY_AFTER
        return response


@pytest.fixture
async def provider() -> AsyncIterator[tuple[StackProvider, Server]]:
    fake = StackProvider()
    async with Server(fake.app()) as server:
        yield fake, server
        fake.release.set()


def routed(provider_server: Server, **changes: Any) -> dict[str, Any]:
    """`serving` changes: the write tool on the openai backend, the dev engine standing by."""
    values: dict[str, Any] = {
        "routes": ROUTES,
        "openai_base_url": provider_server.url + "/v1",
        "openai_api_key": SecretStr(API_KEY),
        "openai_timeout": 5.0,
    }
    values.update(changes)
    return values


async def write_over_socket(
    settings: Settings, provider_server: Server, prompt: str, **changes: Any
) -> tuple[list[dict[str, Any]], Creation]:
    """Run the write tool over a websocket; its events and its stored row."""
    async with serving(settings, **routed(provider_server, **changes)) as (
        server,
        _graphql,
        token,
    ):
        write_input = {"prompt": prompt, "maxTokens": MAX_TOKENS, "seed": SEED}
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(WRITE, {"input": write_input})
            events = events_of(await sock.collect(op, timeout=30))
        row = await Creation.get(id=events[0]["creationId"])
    assert_well_formed(events)
    return events, row


async def test_a_tool_routed_to_openai_streams_the_providers_text(
    settings: Settings, provider: tuple[StackProvider, Server]
) -> None:
    fake, provider_server = provider

    events, row = await write_over_socket(settings, provider_server, NORMAL)

    completed = events[-1]
    assert completed["__typename"] == "CreationCompleted", completed
    assert text_of(events) == "".join(TEXT)
    assert completed["creation"] == {"status": "COMPLETED", "output": "".join(TEXT)}
    assert events[0]["model"] == "openai"
    assert (row.variant, row.model, row.model_name) == ("deepseek", "openai", MODEL)
    # the provider got the route's model and the tool's whole request, with our key
    spec = WriteSpec(prompt=NORMAL, genre=Genre.STORY, max_tokens=MAX_TOKENS, seed=SEED)
    assert fake.prompts == [build_prompt(spec)]
    body = fake.bodies[0]
    assert (body["model"], body["max_tokens"], body["seed"]) == (MODEL, MAX_TOKENS, SEED)
    assert body["stream"] is True
    assert fake.headers[0]["authorization"] == f"Bearer {API_KEY}"


async def test_usage_is_the_providers_final_chunk(
    settings: Settings, provider: tuple[StackProvider, Server]
) -> None:
    events, row = await write_over_socket(settings, provider[1], NORMAL)

    provider_usage = {
        "promptTokens": PROVIDER_USAGE["prompt_tokens"],
        "completionTokens": PROVIDER_USAGE["completion_tokens"],
    }
    assert events[-1]["usage"] == provider_usage
    assert (row.prompt_tokens, row.completion_tokens) == (
        PROVIDER_USAGE["prompt_tokens"],
        PROVIDER_USAGE["completion_tokens"],
    )


async def test_429_then_success_is_retried_transparently(
    settings: Settings, provider: tuple[StackProvider, Server]
) -> None:
    fake, provider_server = provider

    events, row = await write_over_socket(settings, provider_server, RATE_LIMITED)

    assert fake.attempts[RATE_LIMITED] == 3  # 429, 429, then the stream
    assert [e["__typename"] for e in events if e["__typename"] != "TokenDelta"] == [
        "CreationStarted",
        "CreationCompleted",
    ]
    assert text_of(events) == "".join(TEXT)
    assert (row.variant, row.model, row.output) == ("deepseek", "openai", "".join(TEXT))


@pytest.mark.parametrize("prompt", [SERVER_ERROR, UNAUTHORIZED])
async def test_openai_down_before_the_first_token_falls_back(
    settings: Settings, provider: tuple[StackProvider, Server], prompt: str
) -> None:
    fake, provider_server = provider

    events, row = await write_over_socket(settings, provider_server, prompt, openai_max_retries=1)

    # the provider was tried (a 500 once more, refused credentials not again), then the
    # dev engine served the whole text
    assert fake.attempts[prompt] == (2 if prompt == SERVER_ERROR else 1)
    completed = events[-1]
    assert completed["__typename"] == "CreationCompleted", completed
    assert (row.variant, row.model) == ("backup", "dev-engine")
    assert text_of(events) == row.output == await _dev_text(prompt)
    assert completed["usage"]["completionTokens"] == MAX_TOKENS


async def test_openai_timing_out_before_the_first_token_falls_back(
    settings: Settings, provider: tuple[StackProvider, Server]
) -> None:
    events, row = await write_over_socket(settings, provider[1], STALL_HEADERS, openai_timeout=0.5)

    assert events[-1]["__typename"] == "CreationCompleted", events[-1]
    # the fallback that served it is recorded, not the variant that was drawn
    assert (row.model, row.variant, row.model_name) == ("dev-engine", "backup", "dev-engine")


async def test_a_fallback_answer_is_not_reused_for_the_openai_variant(
    settings: Settings, provider: tuple[StackProvider, Server]
) -> None:
    fake, provider_server = provider
    changes = routed(provider_server, openai_max_retries=0)
    write_input = {"prompt": FLAKY, "maxTokens": MAX_TOKENS, "seed": SEED}
    texts: list[str] = []
    async with serving(settings, **changes) as (server, _graphql, token):
        # a 503 without retries: the fallback serves the first; the provider is back for
        # the second, identical request
        for _ in range(2):
            async with open_socket(server.ws_url, token) as sock:
                op = await sock.subscribe(WRITE, {"input": write_input})
                texts.append(text_of(events_of(await sock.collect(op, timeout=30))))

    assert texts == [await _dev_text(FLAKY), "".join(TEXT)]
    assert fake.attempts[FLAKY] == 2


async def _dev_text(prompt: str) -> str:
    """What the fallback variant generates for the write tool's request."""
    spec = WriteSpec(prompt=prompt, genre=Genre.STORY, max_tokens=MAX_TOKENS, seed=SEED)
    request = GenerationRequest(
        request_id="direct",
        model="dev",
        prompt=build_prompt(spec),
        max_tokens=MAX_TOKENS,
        temperature=spec.temperature,
        seed=SEED,
    )
    return (await DevEngine(token_delay=0).complete(request)).text
