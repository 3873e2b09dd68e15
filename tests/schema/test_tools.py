"""Every tool through GraphQL over a real websocket: typed input, events, structured result."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server, open_socket
from tests.schema.test_subscriptions import assert_well_formed, events_of, text_of

RESULT_FIELDS = """
  __typename seq
  ... on TokenDelta { text }
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
    progress = [e for e in events if e["__typename"] == "Progress"]
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
    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": "duration_seconds"}
