"""The write tool through the whole stack on the real (PyTriton, CPU) Triton server."""

from __future__ import annotations

import httpx

from inference.base import GenerationRequest
from inference.triton import TritonConfig, TritonEngine
from inference.write import Genre, WriteSpec, build_prompt
from resolvers.core.settings import Settings
from tests.conftest import free_port, open_socket, serving
from tests.schema.test_http import WRITE
from tests.schema.test_subscriptions import (
    EVENTS,
    START_WRITE,
    assert_well_formed,
    events_of,
    first_text,
    text_of,
)
from tests.schema.test_tools import _png, run_tool

CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { __typename } }"


async def test_write_streams_what_triton_generates(settings: Settings, triton_url: str) -> None:
    async with serving(settings, engine="triton", triton_url=triton_url) as (
        server,
        graphql,
        token,
    ):
        variables = {"input": {"prompt": "a night train", "maxTokens": 48, "seed": 11}}
        started = await graphql.query(START_WRITE, variables, token=token)
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(EVENTS, {"id": started["write"]["id"], "after": 0})
            events = events_of(await sock.collect(op))
    assert_well_formed(events)
    assert events[0]["model"] == "triton"
    assert events[-1]["usage"]["completionTokens"] == 48
    # the same request read straight from Triton gives the same text
    engine = TritonEngine(TritonConfig(url=triton_url))
    spec = WriteSpec(prompt="a night train", genre=Genre.STORY, max_tokens=48, seed=11)
    direct = await engine.complete(
        GenerationRequest(
            request_id="direct",
            model="writer",
            prompt=build_prompt(spec),
            max_tokens=48,
            temperature=0.8,
            seed=11,
        )
    )
    await engine.aclose()
    assert text_of(events) == direct.text


async def test_cancel_stops_a_triton_stream(settings: Settings, triton_url: str) -> None:
    async with serving(settings, engine="triton", triton_url=triton_url) as (
        server,
        graphql,
        token,
    ):
        started = await graphql.query(
            START_WRITE, {"input": {"prompt": "endless", "maxTokens": 2048}}, token=token
        )
        creation_id = started["write"]["id"]
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
            await first_text(sock)
            await graphql.query(CANCEL, {"id": creation_id}, token=token)
            rest = events_of(await sock.collect(op, timeout=10))
    assert rest[-1]["__typename"] == "CreationCancelled"
    assert 0 < rest[-1]["usage"]["completionTokens"] < 2048


async def test_unreachable_triton_fails_typed_and_readiness_goes_red(settings: Settings) -> None:
    async with serving(
        settings, engine="triton", triton_url=f"127.0.0.1:{free_port()}", triton_connect_timeout=1.0
    ) as (server, graphql, token):
        data = await graphql.query(WRITE, {"input": {"prompt": "hello"}, "wait": True}, token=token)
        async with httpx.AsyncClient() as http:
            ready = await http.get(server.url + "/readyz")
    assert data["write"]["status"] == "FAILED"
    assert data["write"]["__typename"] == "Creation"
    assert data["write"]["errorCode"] == "MODEL_UNAVAILABLE"
    assert data["write"]["output"] == ""
    assert ready.status_code == 503
    assert ready.json()["checks"]["engine"] is False


async def test_translate_on_triton_honours_the_lexicon(settings: Settings, triton_url: str) -> None:
    async with serving(settings, engine="triton", triton_url=triton_url) as (
        server,
        graphql,
        token,
    ):
        lexicon = await graphql.query(
            """mutation C($input: CreateLexiconInput!) {
                 createLexicon(input: $input) { ... on Lexicon { id } } }""",
            {
                "input": {
                    "name": "terms",
                    "sourceLang": "en",
                    "targetLang": "zh",
                    "entries": [{"source": "neural network", "target": "神经网络"}],
                }
            },
            token,
        )
        tool_input = {
            "text": "A Neural Network learns.",
            "sourceLang": "en",
            "targetLang": "zh",
            "lexiconId": lexicon["createLexicon"]["id"],
        }
        events, creation = await run_tool(server, token, "translate", "TranslateInput", tool_input)
    result = creation["result"]
    assert result["translated"] is True and result["lexicon_ok"] is True
    assert result["model"] == "opus-mt-en-zh"
    assert text_of(events).split() == ["A译", "神经网络", "learns.译"]


async def test_image_caption_on_triton_sends_the_image(settings: Settings, triton_url: str) -> None:
    async with serving(settings, engine="triton", triton_url=triton_url) as (server, _, token):
        image = _png(16, 16, (255, 0, 0))
        events, creation = await run_tool(
            server, token, "imageCaption", "ImageCaptionInput", {"imageBase64": image}
        )
    assert creation["result"]["model_caption"] is True
    assert f"{len(image)} base64 characters" in text_of(events)
