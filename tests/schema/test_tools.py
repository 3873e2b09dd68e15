"""Every tool through GraphQL over a real websocket: typed input, events, structured result."""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import pytest

from tests.conftest import GraphQLClient, Server, open_socket
from tests.schema.test_subscriptions import assert_well_formed, events_of, text_of

RESULT_FIELDS = """
  __typename seq
  ... on TokenDelta { text firstSeq }
  ... on Progress { stage fraction }
  ... on CreationCompleted { creation { status result cached } }
  ... on CreationFailed { code message }
"""


def subscription(tool: str, input_type: str) -> str:
    return (
        f"subscription S($input: {input_type}!) {{ {tool}(input: $input) {{ {RESULT_FIELDS} }} }}"
    )


async def run_tool(
    server: Server, token: str, tool: str, input_type: str, tool_input: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(subscription(tool, input_type), {"input": tool_input})
        events = events_of(await sock.collect(op, timeout=30))
    assert_well_formed(events)
    assert events[-1]["__typename"] == "CreationCompleted", events[-1]
    return events, events[-1]["creation"]


async def test_tarot_draws_a_reproducible_reading(server: Server, token: str) -> None:
    tarot_input = {"question": "Should I take the new job?", "spread": "CELTIC_CROSS", "seed": 7}
    events, creation = await run_tool(server, token, "tarot", "TarotInput", tarot_input)
    result = creation["result"]
    assert len(result["positions"]) == 10
    assert len({position["card_id"] for position in result["positions"]}) == 10
    assert result["seed"] == 7
    text = text_of(events)
    for position in result["positions"]:
        assert position["card"] in text and position["position"] in text
    # the same seed draws the same cards (served from the cache: nothing generated again)
    _events, again = await run_tool(server, token, "tarot", "TarotInput", tarot_input)
    assert again["result"] == result and again["cached"] is True


@pytest.mark.parametrize(
    ("positions", "field"),
    [(["same", "Same"], "positions"), ([], "positions"), (["x" * 61], "positions")],
)
async def test_tarot_refuses_bad_custom_spreads(
    server: Server, token: str, positions: list[str], field: str
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(
            subscription("tarot", "TarotInput"), {"input": {"positions": positions}}
        )
        message = await sock.receive()
    assert message["id"] == op
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": field}


async def test_video_script_scenes_add_up_on_the_worker(
    server: Server, token: str, worker: None
) -> None:
    video_input = {"platform": "DOUYIN", "topic": "pour-over coffee at home", "durationSeconds": 47}
    events, creation = await run_tool(server, token, "videoScript", "VideoScriptInput", video_input)
    scenes = creation["result"]["scenes"]
    assert sum(scene["duration"] for scene in scenes) == 47
    assert scenes[0]["start"] == 0 and scenes[-1]["end"] == 47
    assert scenes[0]["role"] == "hook" and scenes[-1]["role"] == "cta"
    progress = [
        e for e in events if e["__typename"] == "Progress" and not e["stage"].startswith("queued (")
    ]
    assert len(progress) == len(scenes) + 2  # planning, one per scene, done


async def test_video_script_refuses_a_duration_the_platform_cannot_take(
    server: Server, token: str
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        query = subscription("videoScript", "VideoScriptInput")
        tool_input = {"platform": "YOUTUBE_SHORTS", "topic": "abc", "durationSeconds": 600}
        await sock.subscribe(query, {"input": tool_input})
        message = await sock.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": "durationSeconds"}


async def test_social_post_fits_the_platform(server: Server, token: str) -> None:
    post_input = {
        "platform": "XIAOHONGSHU",
        "topic": "周末在家做手冲咖啡的三个小技巧",
        "hashtags": ["手冲咖啡", "周末生活"],
        "title": "在家也能做出咖啡馆味道的手冲咖啡秘诀",
    }
    events, creation = await run_tool(server, token, "socialPost", "SocialPostInput", post_input)
    result = creation["result"]
    assert len(result["title"]) <= 20
    assert result["length"] <= result["limit"] == 1000
    assert "#手冲咖啡#" in result["text"] and "#周末生活#" in result["text"]
    assert text_of(events).endswith(result["text"])
    x_input = {"platform": "X", "topic": "data science tips", "hashtags": ["data science"]}
    _events, creation = await run_tool(server, token, "socialPost", "SocialPostInput", x_input)
    assert "#DataScience" in creation["result"]["text"]
    assert creation["result"]["length"] <= 280


CREATE_LEXICON = """
mutation C($input: CreateLexiconInput!) { createLexicon(input: $input) { ... on Lexicon { id } } }
"""


async def test_translate_applies_the_lexicon_and_is_honest_on_the_dev_engine(
    server: Server, client: GraphQLClient, token: str
) -> None:
    lexicon = await client.query(
        CREATE_LEXICON,
        {
            "input": {
                "name": "ml",
                "sourceLang": "en",
                "targetLang": "zh",
                "entries": [
                    {"source": "machine learning", "target": "机器学习"},
                    {"source": "machine learning model", "target": "机器学习模型"},
                ],
            }
        },
        token,
    )
    lexicon_id = lexicon["createLexicon"]["id"]
    translate_input = {
        "text": "Our Machine Learning Model beats every machine learning baseline.",
        "targetLang": "zh",
        "lexiconId": lexicon_id,
    }
    events, creation = await run_tool(server, token, "translate", "TranslateInput", translate_input)
    result = creation["result"]
    assert result["translated"] is False and "dev-engine" in result["note"]
    assert {(a["source"], a["count"]) for a in result["applied"]} == {
        ("machine learning model", 1),
        ("machine learning", 1),
    }
    assert text_of(events) == "Our 机器学习模型 beats every 机器学习 baseline."
    # someone else's lexicon, and a lexicon for another language pair, are refused
    stranger = await client.register()
    for tool_input, user, code in (
        (translate_input, stranger, "NOT_FOUND"),
        ({**translate_input, "targetLang": "ja"}, token, "INVALID_INPUT"),
        ({**translate_input, "targetLang": "xx"}, token, "INVALID_INPUT"),
    ):
        async with open_socket(server.ws_url, user) as sock:
            await sock.subscribe(subscription("translate", "TranslateInput"), {"input": tool_input})
            message = await sock.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == code


async def test_swot_sorts_facts_and_honours_the_template(server: Server, token: str) -> None:
    swot_input = {
        "subject": "a neighbourhood coffee roastery",
        "facts": [
            "Our roasting team has won regional awards",
            "We lack an online shop",
            "Demand for specialty coffee is rising in the city",
            "A new competitor is entering the market",
            "The shop has a blue door",
        ],
        "template": {"items": 3, "strategies": 1},
    }
    _events, creation = await run_tool(server, token, "swot", "SwotInput", swot_input)
    result = creation["result"]
    for quadrant in ("strengths", "weaknesses", "opportunities", "threats"):
        assert len(result[quadrant]) == 3
    assert result["strengths"][0]["source"] == "fact" and "award" in result["strengths"][0]["item"]
    assert result["weaknesses"][0]["source"] == "fact"
    assert result["threats"][0]["source"] == "fact"
    assert [u["fact"] if isinstance(u, dict) else u for u in result["unclassified"]] == [
        "The shop has a blue door"
    ]
    assert {cell: len(items) for cell, items in result["strategies"].items()} == {
        "SO": 1,
        "ST": 1,
        "WO": 1,
        "WT": 1,
    }


async def test_code_extracts_and_checks_the_block(server: Server, token: str) -> None:
    code_input = {"language": "PYTHON", "task": "reverse a string", "maxTokens": 40}
    _events, creation = await run_tool(server, token, "code", "CodeInput", code_input)
    result = creation["result"]
    assert result["language"] == "python"
    assert set(result) >= {"code", "blocks", "language_check", "detected_language", "syntax_ok"}


async def test_a_very_long_write_goes_to_the_worker(
    server: Server, client: GraphQLClient, token: str, worker: None
) -> None:
    start = """
    mutation W($input: WriteInput!) { write(input: $input) { ... on Creation { id status } } }
    """
    short = await client.query(start, {"input": {"prompt": "short", "maxTokens": 10}}, token)
    long = await client.query(start, {"input": {"prompt": "long", "maxTokens": 3000}}, token)
    assert short["write"]["status"] == "RUNNING"  # fast: already generating here
    assert long["write"]["status"] == "QUEUED"  # long: waiting for a worker
    async with open_socket(server.ws_url, token) as sock:
        query = """
        subscription E($id: ID!) { creationEvents(id: $id) { __typename
          ... on CreationCompleted { usage { completionTokens } } } }
        """
        op = await sock.subscribe(query, {"id": long["write"]["id"]})
        events = events_of(await sock.collect(op, timeout=60))
    assert events[-1]["usage"]["completionTokens"] == 3000


def _png(width: int, height: int, colour: tuple[int, int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _wav(seconds: float) -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return base64.b64encode(buffer.getvalue()).decode()


async def test_image_caption_on_the_dev_engine_describes_only_what_it_measured(
    server: Server, token: str
) -> None:
    image = {"imageBase64": _png(300, 200, (0, 0, 128))}
    events, creation = await run_tool(server, token, "imageCaption", "ImageCaptionInput", image)
    result = creation["result"]
    assert (result["width"], result["height"], result["orientation"]) == (300, 200, "landscape")
    assert result["model_caption"] is False and "cannot see" in result["note"]
    assert "300" in text_of(events) and "navy" in text_of(events).lower()


async def test_transcribe_without_a_speech_model_is_a_typed_failure(
    server: Server, token: str
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(
            subscription("transcribe", "TranscribeInput"), {"input": {"audioBase64": _wav(1.5)}}
        )
        events = events_of(await sock.collect(op))
    assert_well_formed(events)
    assert events[-1]["__typename"] == "CreationFailed"
    assert events[-1]["code"] == "MODEL_UNAVAILABLE"


@pytest.mark.parametrize(
    ("tool", "input_type", "tool_input", "field"),
    [
        ("imageCaption", "ImageCaptionInput", {"imageBase64": "not base64!!"}, "imageBase64"),
        ("imageCaption", "ImageCaptionInput", {"imageBase64": "aGVsbG8gd29ybGQ="}, "imageBase64"),
        ("transcribe", "TranscribeInput", {"audioBase64": "aGVsbG8gd29ybGQ="}, "audioBase64"),
    ],
)
async def test_bad_media_is_refused_before_anything_runs(  # noqa: PLR0917 (parametrized)
    server: Server, token: str, tool: str, input_type: str, tool_input: dict[str, Any], field: str
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        await sock.subscribe(subscription(tool, input_type), {"input": tool_input})
        message = await sock.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": field}
