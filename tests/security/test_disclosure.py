"""Issue 11, low findings: production answered with "Did you mean" suggestions (schema
details to callers who may not introspect) and a `server: uvicorn` header."""

from __future__ import annotations

import httpx

from resolvers.core.settings import Settings
from schema.app import create_app
from schema.build import build_schema
from schema.cli import UVICORN_OPTIONS
from tests.conftest import Server, serving

TYPO = "{ tool { name } }"  # the field is `tools`


async def test_suggestions_are_hidden_when_asked() -> None:
    shown = await build_schema().execute(TYPO)
    hidden = await build_schema(hide_suggestions=True).execute(TYPO)

    assert shown.errors and "Did you mean" in shown.errors[0].message
    assert hidden.errors and "Did you mean" not in hidden.errors[0].message
    assert "Cannot query field 'tool'" in hidden.errors[0].message


async def test_production_and_closed_introspection_hide_suggestions(settings: Settings) -> None:
    for changes in ({"env": "production"}, {"introspection": "signed-in"}):
        async with serving(settings, **changes) as (_server, client, _token):
            body = (await client.raw(TYPO)).json()
        assert "Did you mean" not in body["errors"][0]["message"], changes


async def test_the_server_does_not_name_itself(settings: Settings) -> None:
    # uvicorn with the options `creation-king serve` runs it with
    async with (
        Server(create_app(settings), **UVICORN_OPTIONS) as server,
        httpx.AsyncClient() as http,
    ):
        response = await http.get(server.url + "/healthz")

    assert response.status_code == 200
    assert "server" not in response.headers
