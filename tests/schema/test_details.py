"""`Creation.details`: every tool's structured result as typed GraphQL, equal to the stored JSON."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.core.models import Creation
from tests.conftest import GraphQLClient

START = """
mutation S($input: {input_type}!) {{
  {tool}(input: $input, wait: true) {{
    __typename
    ... on Creation {{ id status result details {{ __typename {fragment} }} }}
  }}
}}
"""
READ = "query R($id: ID!) {{ creation(id: $id) {{ result details {{ __typename {fragment} }} }} }}"


async def start(
    client: GraphQLClient, token: str, tool: str, tool_input: dict[str, Any], fragment: str
) -> dict[str, Any]:
    input_type = tool[0].upper() + tool[1:] + "Input"
    query = START.format(input_type=input_type, tool=tool, fragment=fragment)
    created: dict[str, Any] = (await client.query(query, {"input": tool_input}, token))[tool]
    assert created["status"] == "COMPLETED", created
    return created


async def test_a_tarot_reading_is_typed_card_by_card(client: GraphQLClient, token: str) -> None:
    fragment = """... on TarotResult { spread seed allowReversed
      positions { index position cardId card arcana suit reversed orientation keywords }
      observations { rule text } }"""
    tool_input = {"question": "Which way?", "spread": "THREE_CARD", "seed": 11}
    created = await start(client, token, "tarot", tool_input, fragment)
    details, result = created["details"], created["result"]
    assert details["__typename"] == "TarotResult" and details["seed"] == 11
    assert [p["cardId"] for p in details["positions"]] == [
        p["card_id"] for p in result["positions"]
    ]
    assert [p["reversed"] for p in details["positions"]] == [
        p["reversed"] for p in result["positions"]
    ]
    assert {p["arcana"] for p in details["positions"]} <= {"MAJOR", "MINOR"}
    assert len(details["observations"]) == len(result["observations"])


async def test_a_swot_is_typed_per_quadrant(client: GraphQLClient, token: str) -> None:
    fragment = """... on SwotResult { strengths { item rationale source confidence }
      threats { item } strategies { SO { strategy pair } WT { strategy } }
      unclassified { fact reason } }"""
    tool_input = {
        "subject": "A neighbourhood bakery",
        "facts": ["Loyal local customers", "A chain store opens next door"],
    }
    created = await start(client, token, "swot", tool_input, fragment)
    details, result = created["details"], created["result"]
    assert details["__typename"] == "SwotResult"
    assert [s["item"] for s in details["strengths"]] == [s["item"] for s in result["strengths"]]
    assert [t["item"] for t in details["threats"]] == [t["item"] for t in result["threats"]]
    assert len(details["strategies"]["SO"]) == len(result["strategies"]["SO"])


@pytest.mark.parametrize(
    ("tool", "tool_input", "fragment", "typename", "checks"),
    [
        (
            "socialPost",
            {"platform": "WEIBO", "topic": "city cycling", "hashtags": ["骑行"]},
            "... on SocialPostResult { socialPlatform text length limit hashtags loraAdapter }",
            "SocialPostResult",
            {"text": "text", "length": "length", "limit": "limit", "loraAdapter": "lora_adapter"},
        ),
        (
            "code",
            {"language": "PYTHON", "task": "add two numbers"},
            "... on CodeResult { code blocks languageCheck syntaxOk }",
            "CodeResult",
            {"code": "code", "blocks": "blocks", "syntaxOk": "syntax_ok"},
        ),
    ],
)
async def test_details_equal_the_stored_result(  # noqa: PLR0917 (parametrized)
    client: GraphQLClient,
    token: str,
    tool: str,
    tool_input: dict[str, Any],
    fragment: str,
    typename: str,
    checks: dict[str, str],
) -> None:
    created = await start(client, token, tool, tool_input, fragment)
    details, result = created["details"], created["result"]
    assert details["__typename"] == typename
    for graphql_name, key in checks.items():
        assert details[graphql_name] == result[key], graphql_name


async def test_write_has_no_details(client: GraphQLClient, token: str) -> None:
    created = await start(client, token, "write", {"prompt": "a haiku"}, "")
    assert created["details"] is None and created["result"] is None


async def test_a_stored_result_of_another_shape_reads_as_null_not_an_error(
    client: GraphQLClient, token: str
) -> None:
    fragment = "... on TarotResult { seed }"
    created = await start(client, token, "tarot", {"spread": "SINGLE", "seed": 3}, fragment)
    await Creation.filter(id=created["id"]).update(result={"seed": "not a number"})
    read = await client.query(READ.format(fragment=fragment), {"id": created["id"]}, token)
    assert read["creation"] == {"result": {"seed": "not a number"}, "details": None}
