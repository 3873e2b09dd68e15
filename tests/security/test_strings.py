"""Issue 11, low finding: NUL characters in SWOT facts, templates and tarot positions, and
lone surrogates in preset names, answered INTERNAL (Postgres cannot store NUL; nothing can
encode a lone surrogate) with the value in an ERROR log. Every string is now checked once,
at the GraphQL boundary, on every transport: a typed INVALID_INPUT error naming the field,
before any resolver runs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from resolvers.core.models import Creation, Preset
from resolvers.core.settings import Settings
from schema.strings import refusal, variable_errors
from tests.conftest import GraphQLClient, open_socket, serving
from tests.schema.test_apikeys import CREATE_KEY
from tests.schema.test_lexicons import CREATE as CREATE_LEXICON
from tests.schema.test_lexicons import lexicon
from tests.schema.test_sessions import REFRESH

SWOT = """
mutation S($input: SwotInput!) {
  swot(input: $input) { __typename ... on Creation { id } }
}
"""
SWOT_INLINE = """
mutation {
  swot(input: {subject: "a bakery", facts: ["our team is skilled", "rent \\u0000 rises"]}) {
    __typename
  }
}
"""
SAVE_TEMPLATE = """
mutation T($name: String!, $template: SwotTemplateInput!) {
  saveSwotTemplate(name: $name, template: $template) { __typename }
}
"""
TAROT = """
subscription R($input: TarotInput!) {
  tarot(input: $input) { __typename }
}
"""


def _errors_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    payload = message["payload"]
    if isinstance(payload, list):  # graphql-transport-ws "error"
        return payload
    errors: list[dict[str, Any]] = payload.get("errors") or [payload]
    return errors


def _assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "\x00" not in caplog.text and "INTERNAL" not in caplog.text


@pytest.fixture(params=["postgres", "sqlite"])
def any_settings(
    request: pytest.FixtureRequest, settings: Settings, embedded_settings: Settings
) -> Settings:
    return settings if request.param == "postgres" else embedded_settings


async def test_a_nul_in_a_swot_fact_is_refused_over_http(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(settings) as (_server, client, token):
        before = await Creation.all().count()
        swot_input = {"subject": "a bakery", "facts": ["our team is skilled", "rent\x00rises"]}
        errors = await client.errors(SWOT, {"input": swot_input}, token)
        inline = await client.errors(SWOT_INLINE, token=token)
        stored = await Creation.all().count() - before

    assert errors[0]["extensions"] == {"code": "INVALID_INPUT", "field": "$input.facts.1"}
    assert "U+0000" in errors[0]["message"]
    assert inline[0]["extensions"] == {"code": "INVALID_INPUT", "field": "input.facts.1"}
    assert stored == 0
    _assert_quiet(caplog)


async def test_a_nul_in_a_template_is_refused_over_graphql_transport_ws(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(settings) as (server, _client, token):
        before = await Preset.all().count()
        async with open_socket(server.ws_url, token) as sock:
            template = {"strengthsPrompt": "be brief\x00", "items": 2}
            op = await sock.subscribe(SAVE_TEMPLATE, {"name": "lean", "template": template})
            message = await sock.receive()
        stored = await Preset.all().count() - before

    assert message["id"] == op
    assert _errors_of(message)[0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "$template.strengthsPrompt",
    }
    assert stored == 0
    _assert_quiet(caplog)


async def test_a_nul_in_a_tarot_position_is_refused_over_legacy_graphql_ws(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(settings) as (server, _client, token):
        before = await Creation.all().count()
        async with open_socket(server.ws_url, token, protocol="graphql-ws") as sock:
            op = await sock.subscribe(TAROT, {"input": {"positions": ["past", "now\x00"]}})
            message = await sock.receive()
            while message.get("id") != op:
                message = await sock.receive()
        stored = await Creation.all().count() - before

    assert _errors_of(message)[0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "$input.positions.1",
    }
    assert stored == 0
    _assert_quiet(caplog)


async def test_a_lone_surrogate_in_a_preset_name_is_refused(
    any_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(any_settings) as (_server, client, token):
        before = await Preset.all().count()
        # A JSON escape of half a surrogate pair: what a client's bad string slicing sends.
        body = json.dumps(
            {"query": SAVE_TEMPLATE, "variables": {"name": "plan \ud800", "template": {}}}
        )
        response = await client.http.post(
            client.url,
            content=body.encode("ascii"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        stored = await Preset.all().count() - before

    assert '"\\ud800"' not in response.text
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": "$name"}
    assert "U+D800" in error["message"]
    assert stored == 0
    _assert_quiet(caplog)


@pytest.mark.parametrize(
    ("document", "variables", "field"),
    [
        (REFRESH, {"token": "ckr_\x00\x01"}, "$token"),
        (REFRESH, {"token": "ckr_\ud800"}, "$token"),
        (CREATE_KEY, {"input": {"name": "k", "scopes": ["creations:read\x00"]}}, "$input.scopes.0"),
        (
            CREATE_LEXICON,
            lexicon(entries=[{"source": "nul\x00", "target": "x"}]),
            "$input.entries.0.source",
        ),
    ],
    ids=["refresh-nul", "refresh-surrogate", "api-key-scope", "lexicon-entry"],
)
async def test_every_mutation_refuses_at_the_boundary(
    client: GraphQLClient, token: str, document: str, variables: dict[str, Any], field: str
) -> None:
    body = json.dumps({"query": document, "variables": variables})  # escapes the surrogate
    response = await client.http.post(
        client.url,
        content=body.encode("ascii"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": field}


async def test_text_with_tabs_newlines_and_any_script_still_runs(
    settings: Settings,
) -> None:
    async with serving(settings) as (_server, client, token):
        data = await client.query(
            SAVE_TEMPLATE,
            {"name": "计划 😀", "template": {"strengthsPrompt": "line one\n\tline two\r\n"}},
            token,
        )
    assert data["saveSwotTemplate"]["__typename"] == "Preset"


def test_strings_nested_in_json_values_and_keys_are_checked() -> None:
    # JSON scalars arrive as plain dicts and lists: every string and key in them is walked.
    nested: dict[str, Any] = {"data": {"rows": [{"a": "fine"}, {"b": ["x", "bad\x07"]}]}}
    assert variable_errors({"input": nested})[0].extensions == {
        "code": "INVALID_INPUT",
        "field": "$input.data.rows.1.b.1",
    }
    key = variable_errors({"input": {"k\x00": 1}})[0]
    assert key.extensions is not None and key.extensions["field"] == "$input.k\\x00"
    assert variable_errors({"input": {"ok": ["tab\there", "ünïcödé 中文 \U0001f600"]}}) == []


@pytest.mark.parametrize("text", ["\x00", "a\ud800", "\udfff", "\x1b[31m", "\x0b", "\x7f\x00"])
def test_refused_characters(text: str) -> None:
    assert refusal(text) is not None


@pytest.mark.parametrize("text", ["", "plain", "\t\n\r", "\x7f", "\u2028", "\U0001f600"])
def test_allowed_characters(text: str) -> None:
    assert refusal(text) is None


async def test_a_lone_surrogate_in_the_operation_name_is_refused(settings: Settings) -> None:
    async with serving(settings) as (_server, client, _token):
        body = json.dumps({"query": "query A { tools { name } }", "operationName": "A\udc00"})
        response = await client.http.post(
            client.url, content=body.encode("ascii"), headers={"Content-Type": "application/json"}
        )
    assert response.json()["errors"][0]["extensions"] == {
        "code": "INVALID_INPUT",
        "field": "operationName",
    }
