"""GraphQL over HTTP: auth, typed errors, malformed requests, queries, the fast tool."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from resolvers import creation as use_cases
from resolvers import tools as registry
from tests.conftest import GraphQLClient, Server

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    __typename
    ... on AuthSession { accessToken user { email } }
    ... on Error { code message }
  }
}
"""
ME = "{ me { id email } }"
TOOLS = "{ tools { name description mode } }"
WRITE = """
mutation Write($input: WriteInput!, $wait: Boolean!) {
  write(input: $input, wait: $wait) {
    __typename
    ... on Creation {
      id status tool output model modelName createdAt errorCode
      usage { promptTokens completionTokens }
      owner { email }
    }
    ... on InvalidInputError { code message field }
    ... on Error { code message }
  }
}
"""
CREATION = "query C($id: ID!) { creation(id: $id) { id status output } }"
CREATIONS = """
query List($first: Int!, $after: String) {
  creations(first: $first, after: $after) {
    edges { cursor node { id tool } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
REGISTER_RAW = """
mutation R($email: String!) {
  register(input: {email: $email, password: "long enough"}) { __typename }
}
"""
CANCEL = """
mutation Cancel($id: ID!) {
  cancelCreation(id: $id) { __typename ... on Error { code message } ... on Creation { status } }
}
"""


async def test_register_then_login_and_me(client: GraphQLClient) -> None:
    # given an account
    token = await client.register("Writer@Example.com", "a good password")
    # when logging in with the e-mail in another case
    data = await client.query(LOGIN, {"email": "writer@example.COM", "password": "a good password"})
    # then a session for the same user, and both tokens work
    assert data["login"]["__typename"] == "AuthSession"
    assert data["login"]["user"]["email"] == "writer@example.com"
    for access in (token, data["login"]["accessToken"]):
        me = await client.query(ME, token=access)
        assert me["me"]["email"] == "writer@example.com"


async def test_auth_errors_are_typed(client: GraphQLClient) -> None:
    await client.register("taken@example.com", "a good password")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            LOGIN,
            {"email": "taken@example.com", "password": "wrong password"},
            "INVALID_CREDENTIALS",
        ),
        (
            LOGIN,
            {"email": "nobody@example.com", "password": "a good password"},
            "INVALID_CREDENTIALS",
        ),
    ]
    for query, variables, code in cases:
        data = await client.query(query, variables)
        assert data["login"]["__typename"] == "AuthError"
        assert data["login"]["code"] == code
    for email, password, typename, code in (
        ("taken@example.com", "another password", "AuthError", "EMAIL_TAKEN"),
        ("not-an-email", "a good password", "InvalidInputError", "INVALID_INPUT"),
        ("short@example.com", "short", "InvalidInputError", "INVALID_INPUT"),
    ):
        response = await client.raw(
            "mutation R($e: String!, $p: String!) { register(input: {email: $e, password: $p}) "
            "{ __typename ... on Error { code } } }",
            {"e": email, "p": password},
        )
        result = response.json()["data"]["register"]
        assert (result["__typename"], result["code"]) == (typename, code)


async def test_me_needs_a_valid_token(client: GraphQLClient) -> None:
    # no credentials: nobody is signed in, which is an answer, not an error
    assert await client.query(ME) == {"me": None}
    errors = await client.errors(ME, token="not-a-jwt")
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await client.http.post(
        client.url, json={"query": ME}, headers={"Authorization": "Basic abc"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_malformed_requests_get_4xx_in_graphql_shape(server: Server) -> None:
    bodies: list[bytes] = [
        b"{not json",
        b"[1, 2]",
        b"5",
        b'"query"',
        b"{}",
        b'{"query": 5}',
        b"null",
    ]
    async with httpx.AsyncClient() as http:
        for body in bodies:
            response = await http.post(
                server.url + "/graphql", content=body, headers={"content-type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (body, response.status_code)
            assert response.json()["errors"][0]["message"], body
        response = await http.put(server.url + "/graphql", content=b"{}")
        assert 400 <= response.status_code < 500


async def test_graphiql_health_and_readiness(server: Server) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(server.url + "/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        assert (await http.get(server.url + "/healthz")).json() == {"status": "ok"}
        ready = await http.get(server.url + "/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "redis": True, "engine": True}


async def test_tools_catalog(client: GraphQLClient) -> None:
    data = await client.query(TOOLS)
    modes = {tool["name"]: tool["mode"] for tool in data["tools"]}
    assert modes == {name: tool.mode.value for name, tool in registry.TOOLS.items()}
    assert modes["write"] == "FAST" and modes["report"] == "LONG"
    assert all(tool["description"] for tool in data["tools"])


async def test_write_with_wait_returns_the_finished_creation(
    client: GraphQLClient, token: str
) -> None:
    variables = {"input": {"prompt": "a lighthouse", "maxTokens": 40, "seed": 7}, "wait": True}
    data = await client.query(WRITE, variables, token=token)
    creation = data["write"]
    assert creation["__typename"] == "Creation"
    assert creation["status"] == "COMPLETED"
    assert (creation["model"], creation["modelName"]) == ("dev-engine", "dev-engine")
    assert creation["usage"]["completionTokens"] == 40
    assert creation["usage"]["promptTokens"] > 0
    assert len(creation["output"].split()) == 40
    assert creation["owner"]["email"].startswith("user-")
    # and the same seed gives the same text
    again = await client.query(WRITE, variables, token=token)
    assert again["write"]["output"] == creation["output"]


async def test_write_rejects_bad_input_and_stores_nothing(
    client: GraphQLClient, token: str
) -> None:
    bad_inputs = [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 8001}, "prompt"),
        ({"prompt": "ok", "maxTokens": 0}, "maxTokens"),
        ({"prompt": "ok", "maxTokens": 100_000}, "maxTokens"),
        ({"prompt": "ok", "temperature": 2.5}, "temperature"),
        ({"prompt": "ok", "seed": -1}, "seed"),
    ]
    for write_input, field in bad_inputs:
        data = await client.query(WRITE, {"input": write_input, "wait": False}, token=token)
        assert data["write"]["__typename"] == "InvalidInputError", write_input
        assert data["write"]["field"] == field
    listed = await client.query(CREATIONS, {"first": 10}, token=token)
    assert listed["creations"]["edges"] == []


async def test_write_needs_a_user(client: GraphQLClient) -> None:
    data = await client.query(WRITE, {"input": {"prompt": "hi"}, "wait": False})
    assert data["write"] == {
        "__typename": "AuthError",
        "code": "UNAUTHENTICATED",
        "message": "sign in first: this operation needs an access token",
    }


async def test_creations_are_private_and_paginated(client: GraphQLClient, token: str) -> None:
    ids = []
    for index in range(3):
        data = await client.query(
            WRITE, {"input": {"prompt": f"text {index}", "maxTokens": 5}, "wait": True}, token=token
        )
        ids.append(data["write"]["id"])
    first = await client.query(CREATIONS, {"first": 2}, token=token)
    page = first["creations"]
    assert [edge["node"]["id"] for edge in page["edges"]] == ids[::-1][:2]
    assert page["pageInfo"]["hasNextPage"] is True
    second = await client.query(
        CREATIONS, {"first": 2, "after": page["pageInfo"]["endCursor"]}, token=token
    )
    assert [edge["node"]["id"] for edge in second["creations"]["edges"]] == [ids[0]]
    assert second["creations"]["pageInfo"]["hasNextPage"] is False
    errors = await client.errors(CREATIONS, {"first": 1000}, token=token)
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    errors = await client.errors(CREATIONS, {"first": 1, "after": "garbage"}, token=token)
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"

    # another user sees none of them
    stranger = await client.register()
    assert (await client.query(CREATIONS, {"first": 10}, token=stranger))["creations"][
        "edges"
    ] == []
    for creation_id in (ids[0], "00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        errors = await client.errors(CREATION, {"id": creation_id}, token=stranger)
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
    cancel = await client.query(CANCEL, {"id": ids[0]}, token=stranger)
    assert cancel["cancelCreation"]["__typename"] == "NotFoundError"
    # the owner can read it, and cannot cancel a finished creation
    assert (await client.query(CREATION, {"id": ids[0]}, token=token))["creation"]["status"] == (
        "COMPLETED"
    )
    cancel = await client.query(CANCEL, {"id": ids[0]}, token=token)
    assert cancel["cancelCreation"]["code"] == "ALREADY_FINISHED"


async def test_unexpected_errors_are_masked_and_logged_once(
    client: GraphQLClient,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    errors = await client.errors("{ nope }")
    assert "nope" in errors[0]["message"]  # validation errors stay readable

    async def broken(**_kwargs: Any) -> None:
        raise RuntimeError("secret database detail")

    monkeypatch.setattr(use_cases, "list_creations", broken)
    response = await client.raw(CREATIONS, {"first": 1}, token=token)
    error = response.json()["errors"][0]
    assert response.status_code == 200 and "secret" not in response.text
    assert error["extensions"]["code"] == "INTERNAL"
    reference = error["extensions"]["reference"]
    assert reference in error["message"]
    logged = [r for r in caplog.records if "secret database detail" in str(r.exc_info)]
    assert len(logged) == 1 and reference in logged[0].getMessage()


async def test_text_a_database_cannot_store_is_a_typed_error(
    client: GraphQLClient, token: str
) -> None:
    for prompt in ("nul\x00inside", "lone \ud800 surrogate"):
        # json.dumps escapes the lone surrogate as \\ud800, as a browser could send it
        body = json.dumps(
            {"query": WRITE, "variables": {"input": {"prompt": prompt}, "wait": False}}
        )
        response = await client.http.post(
            client.url,
            content=body.encode(),
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert response.status_code == 200
        # refused at the boundary, before any resolver (schema/strings.py)
        error = response.json()["errors"][0]
        assert error["extensions"] == {"code": "INVALID_INPUT", "field": "$input.prompt"}
    register = await client.errors(REGISTER_RAW, {"email": "a\x00b@example.com"})
    assert register[0]["extensions"] == {"code": "INVALID_INPUT", "field": "$email"}
    login = await client.errors(LOGIN, {"email": "x\x00@example.com", "password": "whatever1"})
    assert login[0]["extensions"] == {"code": "INVALID_INPUT", "field": "$email"}
    old = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+00:00|" + b"0" * 32).decode()
    errors = await client.errors(CREATIONS, {"first": 1, "after": old}, token=token)
    assert errors[0]["extensions"]["code"] == "INVALID_INPUT"
    listed = await client.query(CREATIONS, {"first": 10}, token=token)
    assert listed["creations"]["edges"] == []


async def test_oversized_bodies_and_other_methods_are_refused_in_graphql_shape(
    server: Server,
) -> None:
    big = b'{"query": "{ tools { name } }", "variables": {"x": "' + b"a" * (2 << 20) + b'"}}'
    async with httpx.AsyncClient() as http:
        response = await http.post(
            server.url + "/graphql", content=big, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

        async def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(3):
                yield b"a" * (1 << 20)

        response = await http.post(
            server.url + "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        for method in ("PUT", "DELETE", "PATCH"):
            response = await http.request(method, server.url + "/graphql", content=b"{}")
            assert response.status_code == 405
            assert response.json()["errors"][0]["message"]
