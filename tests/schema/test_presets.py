"""Saved SWOT templates and tarot spreads: saved, used by id, private."""

from __future__ import annotations

from tests.conftest import GraphQLClient, Server
from tests.schema.test_tools import run_tool

SAVE_TEMPLATE = """
mutation S($name: String!, $template: SwotTemplateInput!) {
  saveSwotTemplate(name: $name, template: $template) {
    __typename ... on Preset { id name data } ... on InvalidInputError { field }
  }
}
"""
SAVE_SPREAD = """
mutation S($name: String!, $positions: [String!]!) {
  saveTarotSpread(name: $name, positions: $positions) {
    __typename ... on Preset { id data } ... on InvalidInputError { field }
  }
}
"""
LIST = "query L($kind: PresetKind!) { presets(kind: $kind) { name } }"
DELETE = """
mutation D($kind: PresetKind!, $id: ID!) {
  deletePreset(kind: $kind, id: $id) { __typename ... on Error { code } }
}
"""


async def test_a_saved_template_and_spread_drive_later_runs(
    server: Server, client: GraphQLClient, token: str
) -> None:
    saved = await client.query(
        SAVE_TEMPLATE, {"name": "lean", "template": {"items": 2, "strategies": 1}}, token
    )
    template_id = saved["saveSwotTemplate"]["id"]
    _events, creation = await run_tool(
        server, token, "swot", "SwotInput", {"subject": "a bakery", "templateId": template_id}
    )
    assert all(len(creation["result"][q]) == 2 for q in ("strengths", "threats"))

    spread = await client.query(SAVE_SPREAD, {"name": "choice", "positions": ["A", "B"]}, token)
    spread_id = spread["saveTarotSpread"]["id"]
    _events, creation = await run_tool(
        server, token, "tarot", "TarotInput", {"spreadId": spread_id, "seed": 3}
    )
    assert [p["position"] for p in creation["result"]["positions"]] == ["A", "B"]


async def test_presets_are_validated_and_private(client: GraphQLClient, token: str) -> None:
    bad = await client.query(SAVE_SPREAD, {"name": "dup", "positions": ["A", "a"]}, token)
    assert bad["saveTarotSpread"] == {"__typename": "InvalidInputError", "field": "positions"}
    bad = await client.query(SAVE_TEMPLATE, {"name": " ", "template": {}}, token)
    assert bad["saveSwotTemplate"]["field"] == "name"
    saved = await client.query(SAVE_SPREAD, {"name": "mine", "positions": ["X"]}, token)
    spread_id = saved["saveTarotSpread"]["id"]
    again = await client.query(SAVE_SPREAD, {"name": "mine", "positions": ["Y"]}, token)
    assert again["saveTarotSpread"]["field"] == "name"

    stranger = await client.register()
    assert (await client.query(LIST, {"kind": "TAROT_SPREAD"}, stranger))["presets"] == []
    gone = await client.query(DELETE, {"kind": "TAROT_SPREAD", "id": spread_id}, stranger)
    assert gone["deletePreset"]["code"] == "NOT_FOUND"
    assert (await client.query(LIST, {"kind": "TAROT_SPREAD"}, token))["presets"] == [
        {"name": "mine"}
    ]
