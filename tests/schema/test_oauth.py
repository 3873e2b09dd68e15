"""POST /oauth/token: the client-credentials grant for partners, through authlib."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient, Server

NEW_KEY = """
mutation K($scopes: [String!]!) { createApiKey(input: {name: "partner", scopes: $scopes}) {
  ... on NewApiKey { secret key { id clientId } } } }
"""
REVOKE = "mutation R($id: ID!) { revokeApiKey(id: $id) { __typename } }"
TRANSLATE = """
mutation { translate(input: {text: "Good morning", targetLang: "zh"}) {
  __typename ... on Error { code } } }
"""


async def new_key(client: GraphQLClient, token: str, scopes: list[str]) -> dict[str, Any]:
    made: dict[str, Any] = (await client.query(NEW_KEY, {"scopes": scopes}, token))["createApiKey"]
    return made


async def request_token(
    server: Server, client_id: str, secret: str, *, basic: bool = True, **form: str
) -> httpx.Response:
    data = {"grant_type": "client_credentials", **form}
    async with httpx.AsyncClient() as http:
        if basic:
            return await http.post(f"{server.url}/oauth/token", data=data, auth=(client_id, secret))
        data |= {"client_id": client_id, "client_secret": secret}
        return await http.post(f"{server.url}/oauth/token", data=data)


async def test_client_credentials_give_a_short_lived_scoped_token(
    server: Server, client: GraphQLClient, token: str
) -> None:
    made = await new_key(client, token, ["tools:translate", "creations:read"])
    response = await request_token(server, made["key"]["clientId"], made["secret"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "creations:read tools:translate"
    assert response.headers["cache-control"] == "no-store"
    access = body["access_token"]
    assert (await client.query(TRANSLATE, token=access))["translate"]["__typename"] == "Creation"
    write = await client.query(
        'mutation { write(input: {prompt: "x"}) { __typename ... on Error { code } } }',
        token=access,
    )
    assert write["write"] == {"__typename": "AuthError", "code": "FORBIDDEN"}
    listed = await client.query("{ creations(first: 5) { edges { node { tool } } } }", token=token)
    assert [e["node"]["tool"] for e in listed["creations"]["edges"]] == ["translate"]


async def test_a_narrower_scope_can_be_asked_for_but_not_a_wider_one(
    server: Server, client: GraphQLClient, token: str
) -> None:
    made = await new_key(client, token, ["tools:translate", "creations:read"])
    narrow = await request_token(
        server, made["key"]["clientId"], made["secret"], basic=False, scope="creations:read"
    )
    assert narrow.status_code == 200 and narrow.json()["scope"] == "creations:read"
    access = narrow.json()["access_token"]
    refused = await client.query(TRANSLATE, token=access)
    assert refused["translate"]["code"] == "FORBIDDEN"
    wide = await request_token(server, made["key"]["clientId"], made["secret"], scope="tools:write")
    assert wide.status_code == 400 and wide.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("wrong", ["secret", "client_id", "revoked"])
async def test_bad_client_credentials_are_invalid_client(
    server: Server, client: GraphQLClient, token: str, wrong: str
) -> None:
    made = await new_key(client, token, ["tools:translate"])
    client_id, secret = made["key"]["clientId"], made["secret"]
    if wrong == "secret":
        secret = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    elif wrong == "client_id":
        client_id = "ck_000000000000"
    else:
        await client.query(REVOKE, {"id": made["key"]["id"]}, token)
    response = await request_token(server, client_id, secret)
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


async def test_malformed_token_requests_get_oauth_errors(
    server: Server, client: GraphQLClient, token: str
) -> None:
    made = await new_key(client, token, ["tools:translate"])
    client_id, secret = made["key"]["clientId"], made["secret"]
    async with httpx.AsyncClient() as http:
        url = f"{server.url}/oauth/token"
        password = await http.post(url, data={"grant_type": "password"}, auth=(client_id, secret))
        as_json = await http.post(url, json={"grant_type": "client_credentials"})
        nothing = await http.post(url, data={"grant_type": "client_credentials"})
        huge = await http.post(url, data={"grant_type": "x" * 10_000})
    assert password.status_code == 400 and password.json()["error"] == "unsupported_grant_type"
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    assert nothing.status_code in (400, 401) and nothing.json()["error"] == "invalid_client"
    assert huge.status_code == 413
