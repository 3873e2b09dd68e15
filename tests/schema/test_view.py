"""The HTTP edge of /graphql: queries over GET, never mutations; CSRF prevention as Apollo
Server does it; Cache-Control by who asked."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import GraphQLClient, Server

TOOLS = "{ tools { name } }"
ME = "{ me { id } }"
REGISTER = (
    'mutation { register(input: {email: "get@example.com", password: "long enough"}) '
    "{ __typename } }"
)
LOGIN = (
    'mutation { login(input: {email: "get@example.com", password: "long enough"}) { __typename } }'
)
PREFLIGHT = {"apollo-require-preflight": "true"}


async def _get(server: Server, params: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(server.url + "/graphql", params=params, headers=headers)


async def test_a_query_runs_over_get_and_public_answers_may_be_cached(server: Server) -> None:
    response = await _get(server, {"query": TOOLS}, **PREFLIGHT)

    assert response.status_code == 200
    assert response.json()["data"]["tools"]
    assert response.headers["cache-control"] == "public, max-age=60"
    # A cache must not hand this to a caller with credentials, nor across origins.
    vary = response.headers["vary"]
    assert "Authorization" in vary and "X-API-Key" in vary and "Origin" in vary


async def test_signed_in_answers_are_private(server: Server, token: str) -> None:
    response = await _get(server, {"query": ME}, authorization=f"Bearer {token}")

    assert response.status_code == 200
    assert response.json()["data"]["me"]["id"]
    assert response.headers["cache-control"] == "private, no-store"


async def test_post_answers_and_errors_are_never_stored(
    server: Server, client: GraphQLClient
) -> None:
    posted = await client.raw(TOOLS)
    failed = await _get(server, {"query": "{ nope }"}, **PREFLIGHT)

    assert posted.headers["cache-control"] == "private, no-store"
    assert failed.json()["errors"]
    assert failed.headers["cache-control"] == "private, no-store"


async def test_variables_travel_as_json_in_the_query_string(server: Server, token: str) -> None:
    query = "query Page($first: Int!) { creations(first: $first) { pageInfo { hasNextPage } } }"
    params = {"query": query, "variables": json.dumps({"first": 5}), "operationName": "Page"}

    body = (await _get(server, params, authorization=f"Bearer {token}")).json()
    bad = await _get(server, {"query": query, "variables": "{not json"}, **PREFLIGHT)

    assert body == {"data": {"creations": {"pageInfo": {"hasNextPage": False}}}}
    assert bad.status_code == 400


async def test_a_mutation_over_get_is_never_executed(server: Server, client: GraphQLClient) -> None:
    response = await _get(server, {"query": REGISTER}, **PREFLIGHT)
    two = f"query Q {{ __typename }} {REGISTER.replace('mutation', 'mutation M')}"
    named = await _get(server, {"query": two, "operationName": "M"}, **PREFLIGHT)

    for refused in (response, named):
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"
        assert refused.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    login = await client.query(LOGIN)
    assert login["login"]["__typename"] != "AuthSession"  # no account was made


async def test_a_get_that_does_not_parse_is_a_syntax_error_not_a_wrong_method(
    server: Server,
) -> None:
    # found by the HTTP fuzz: these were answered 405 METHOD_NOT_ALLOWED, as if mutations
    empty = await _get(server, {"query": ""}, **PREFLIGHT)
    broken = await _get(server, {"query": "{ tools {"}, **PREFLIGHT)
    unnamed = await _get(server, {"query": "{ __typename }", "operationName": "Nope"}, **PREFLIGHT)

    for response in (empty, unnamed):
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert broken.json()["errors"][0]["message"].startswith("Syntax Error")


async def test_requests_a_page_could_forge_are_refused(
    server: Server, client: GraphQLClient
) -> None:
    async with httpx.AsyncClient() as http:
        plain_get = await http.get(server.url + "/graphql", params={"query": TOOLS})
        text_post = await http.post(
            server.url + "/graphql",
            content=json.dumps({"query": REGISTER}),
            headers={"content-type": "text/plain"},
        )
        form_post = await http.post(server.url + "/graphql", data={"query": REGISTER})

    for refused in (plain_get, text_post, form_post):
        assert refused.status_code == 400
        assert "cross-site request forgery" in refused.json()["errors"][0]["message"]
    login = await client.query(LOGIN)
    assert login["login"]["__typename"] != "AuthSession"  # the forged register did not run


async def test_a_credential_or_apollo_header_proves_a_preflight(server: Server, token: str) -> None:
    with_token = await _get(server, {"query": TOOLS}, authorization=f"Bearer {token}")
    named = await _get(server, {"query": TOOLS}, **{"x-apollo-operation-name": "Tools"})
    json_type = await _get(server, {"query": TOOLS}, **{"content-type": "application/json"})

    for allowed in (with_token, named, json_type):
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["data"]["tools"]


async def test_a_browser_navigation_gets_the_ide_not_a_refusal(server: Server) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(server.url + "/graphql", headers={"accept": "text/html"})

    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
