"""Every tool, start to end over a websocket: in embedded mode (no services, the dev engine)
and against the local Triton server. Large media go through an upload in both."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.core.settings import Settings
from resolvers.tools import TOOLS
from schema.app import create_app
from tests.conftest import GraphQLClient, Server, open_socket, running_worker, serving
from tests.schema.test_subscriptions import assert_well_formed, events_of, text_of
from tests.schema.test_triton_transcribe import spoken_wav
from tests.schema.test_uploads import png, upload

FIELDS = """
  __typename seq
  ... on CreationStarted { model }
  ... on TokenDelta { text firstSeq }
  ... on Progress { stage fraction }
  ... on CreationCompleted { creation { status output details { __typename } } }
  ... on CreationFailed { code message }
"""

# A small valid input per tool; `None` marks the media tools, whose input is an upload.
SAMPLES: dict[str, dict[str, Any] | None] = {
    "write": {"prompt": "a lighthouse keeper's last night", "maxTokens": 40, "genre": "POEM"},
    "translate": {"text": "The train leaves at nine.", "sourceLang": "en", "targetLang": "zh"},
    "code": {"language": "PYTHON", "task": "reverse a string", "maxTokens": 60},
    "socialPost": {"platform": "LINKEDIN", "topic": "a first open-source release"},
    "swot": {"subject": "A tea shop", "facts": ["Skilled staff", "Rising rents"]},
    "tarot": {"question": "What next?", "spread": "SINGLE", "seed": 5},
    "imageCaption": None,
    "transcribe": None,
    "report": {"topic": "urban beekeeping", "sections": 2},
    "videoScript": {"platform": "DOUYIN", "topic": "folding a paper crane", "durationSeconds": 30},
}


def test_the_matrix_covers_every_tool() -> None:
    assert set(SAMPLES) == set(TOOLS)


async def _input(graphql: GraphQLClient, token: str, tool: str) -> dict[str, Any]:
    sample = SAMPLES[tool]
    if sample is not None:
        return sample
    if tool == "imageCaption":
        upload_id, response = await upload(graphql, token, png(40, 40))
    else:
        audio = spoken_wav("hello from the matrix", 1.0)
        upload_id, response = await upload(
            graphql, token, audio, kind="AUDIO", content_type="audio/wav"
        )
    assert response.status_code == 200, response.text
    return {"uploadId": upload_id}


async def _run(server: Server, graphql: GraphQLClient, token: str, tool: str) -> list[Any]:
    input_type = tool[0].upper() + tool[1:] + "Input"
    query = f"subscription S($input: {input_type}!) {{ {tool}(input: $input) {{ {FIELDS} }} }}"
    variables = {"input": await _input(graphql, token, tool)}
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(query, variables)
        events = events_of(await sock.collect(op, timeout=60))
    assert_well_formed(events)
    return events


@pytest.mark.parametrize("tool", list(SAMPLES))
async def test_every_tool_in_embedded_mode(embedded_settings: Settings, tool: str) -> None:
    async with Server(create_app(embedded_settings)) as server:
        graphql = GraphQLClient(server.url)
        try:
            events = await _run(server, graphql, await graphql.register(), tool)
        finally:
            await graphql.aclose()
    assert events[0]["model"] == "dev-engine"
    if tool == "transcribe":  # no speech model: a typed failure, never invented text
        assert events[-1]["__typename"] == "CreationFailed"
        assert events[-1]["code"] == "MODEL_UNAVAILABLE"
        return
    assert events[-1]["__typename"] == "CreationCompleted", events[-1]
    creation = events[-1]["creation"]
    assert creation["output"] == text_of(events) and creation["output"].strip()
    has_details = tool not in ("write", "report")
    assert (creation["details"] is not None) is has_details


@pytest.mark.parametrize("tool", list(SAMPLES))
async def test_every_tool_against_the_local_triton(
    settings: Settings, triton_url: str, tool: str
) -> None:
    async with (
        serving(settings, engine="triton", triton_url=triton_url) as (
            server,
            graphql,
            token,
        ),
        running_worker(server),
    ):  # report and videoScript are LONG
        events = await _run(server, graphql, token, tool)
    assert events[0]["model"] == "triton"
    assert events[-1]["__typename"] == "CreationCompleted", events[-1]
    creation = events[-1]["creation"]
    assert creation["output"] == text_of(events) and creation["output"].strip()
    assert (creation["details"] is not None) is (tool not in ("write", "report"))


@pytest.mark.parametrize("tool", list(SAMPLES))
async def test_every_tool_on_the_local_engine(embedded_settings: Settings, tool: str) -> None:
    """`make run`'s default: embedded mode with the local models (issue 12)."""
    local = embedded_settings.model_copy(update={"engine": "local"})
    async with Server(create_app(local)) as server:
        graphql = GraphQLClient(server.url)
        try:
            events = await _run(server, graphql, await graphql.register(), tool)
        finally:
            await graphql.aclose()
    # the tools no local model can serve keep the dev engine's honest answers
    served_by = "dev-engine" if tool in ("translate", "imageCaption") else "local"
    assert events[0]["model"] == served_by
    assert events[-1]["__typename"] == "CreationCompleted", events[-1]
    creation = events[-1]["creation"]
    assert creation["output"] == text_of(events)
    # (the matrix's audio is a tone, not speech: Whisper rightly hears no words in it; real
    # speech is in tests/inference/test_speech.py)
    assert creation["output"].strip() or tool == "transcribe"
    assert (creation["details"] is not None) is (tool not in ("write", "report"))
