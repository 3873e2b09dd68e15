"""API keys under attack: shown once and stored hashed, scopes enforced, revoked, expired
and tampered keys refused, over HTTP and the websocket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from resolvers.core.models import ApiKey
from resolvers.tools import TOOLS
from tests.conftest import GraphQLClient, Server, open_socket
from tests.schema.test_sessions import LOGOUT, bearer, code_of, sign_up, socket_refused
from tests.schema.test_subscriptions import EVENTS, WRITE, events_of
from tests.schema.test_tool_matrix import SAMPLES
from tests.schema.test_uploads import CREATE_UPLOAD, png, wav

CREATE_KEY = """
mutation K($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    __typename
    ... on NewApiKey { secret key { id name clientId scopes expiresAt revokedAt } }
    ... on InvalidInputError { code field message }
    ... on Error { code message }
  }
}
"""
KEYS = "{ apiKeys { id name clientId scopes revokedAt } }"
REVOKE = """
mutation R($id: ID!) {
  revokeApiKey(id: $id) { __typename ... on ApiKey { revokedAt } ... on Error { code } }
}
"""
ME = "{ me { id email } }"
CREATIONS = "{ creations { edges { node { id tool owner { email } } } } }"
CREATION = "query C($id: ID!) { creation(id: $id) { id } }"
LEXICONS = "{ lexicons { id } }"
CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { __typename ... on Error { code } } }"
TRANSLATE_INPUT = {"text": "Good morning.", "sourceLang": "en", "targetLang": "fr"}
TRANSLATE_STREAM = """
subscription T($input: TranslateInput!) {
  translate(input: $input) { __typename seq ... on CreationCompleted { creation { output } } }
}
"""
START_FIELDS = "__typename ... on Creation { id status } ... on Error { code message }"
CREATE_LEXICON = """
mutation L($input: CreateLexiconInput!) {
  createLexicon(input: $input) { __typename ... on Error { code } }
}
"""
SAVE_TEMPLATE = """
mutation S { saveSwotTemplate(name: "lean", template: {}) { __typename ... on Error { code } } }
"""


def start(tool: str) -> str:
    """The mutation that starts `tool`."""
    input_type = tool[0].upper() + tool[1:] + "Input"
    return f"mutation S($input: {input_type}!) {{ {tool}(input: $input) {{ {START_FIELDS} }} }}"


def inline_input(tool: str) -> dict[str, Any]:
    """A small valid input for `tool`, media inline (a key needs no upload scope)."""
    if tool == "imageCaption":
        return {"imageBase64": base64.b64encode(png(16, 16)).decode()}
    if tool == "transcribe":
        return {"audioBase64": base64.b64encode(wav(0.2)).decode()}
    sample = SAMPLES[tool]
    assert sample is not None
    return sample


async def make_key(graphql: GraphQLClient, token: str, *scopes: str) -> tuple[str, str]:
    """A new key with `scopes`: (secret, id)."""
    made = await graphql.query(
        CREATE_KEY, {"input": {"name": "partner", "scopes": list(scopes)}}, token
    )
    result = made["createApiKey"]
    assert result["__typename"] == "NewApiKey", result
    return result["secret"], result["key"]["id"]


async def with_header(graphql: GraphQLClient, query: str, secret: str) -> dict[str, Any]:
    """POST with the key in `X-API-Key`; the response body."""
    response = await graphql.http.post(
        graphql.url, json={"query": query}, headers={"X-API-Key": secret}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(body: dict[str, Any]) -> Any:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"]


async def test_the_secret_is_shown_once_and_stored_hashed(client: GraphQLClient) -> None:
    owner = await sign_up(client)
    variables = {"input": {"name": "  CI bot ", "scopes": ["tools:write", " creations:read"]}}
    made = (await client.query(CREATE_KEY, variables, owner.access))["createApiKey"]
    secret, key = made["secret"], made["key"]
    assert secret.startswith(key["clientId"] + "_") and key["clientId"].startswith("ck_")
    assert key["name"] == "CI bot" and key["scopes"] == ["creations:read", "tools:write"]
    assert key["expiresAt"] is not None and key["revokedAt"] is None
    listed = (await client.query(KEYS, token=owner.access))["apiKeys"]
    assert listed == [{k: key[k] for k in ("id", "name", "clientId", "scopes", "revokedAt")}]
    assert secret not in str(listed)
    row = await ApiKey.get(id=key["id"])
    assert row.secret_hash != secret and secret not in row.secret_hash
    assert len(row.secret_hash) == 64 and secret.split("_", 2)[2] not in str(vars(row))


async def test_a_key_works_as_bearer_as_x_api_key_and_on_sockets(
    server: Server, client: GraphQLClient
) -> None:
    owner = await sign_up(client)
    secret, _ = await make_key(client, owner.access, "tools:translate", "creations:read")
    assert (await client.query(ME, token=secret))["me"]["id"] == owner.id
    assert (await with_header(client, ME, secret))["data"]["me"]["id"] == owner.id
    for payload in (bearer(secret), {"X-API-Key": secret}, {"x-api-key": secret}):
        async with open_socket(server.ws_url, payload=payload) as sock:
            op = await sock.subscribe(TRANSLATE_STREAM, {"input": TRANSLATE_INPUT})
            events = events_of(await sock.collect(op))
        assert events[-1]["__typename"] == "CreationCompleted", events[-1]


async def test_a_translate_only_key_may_translate_and_nothing_else(
    server: Server, client: GraphQLClient
) -> None:
    owner = await sign_up(client)
    mine = await client.query(start("write"), {"input": {"prompt": "mine"}}, owner.access)
    secret, _ = await make_key(client, owner.access, "tools:translate")
    # it starts translations
    started = await client.query(start("translate"), {"input": TRANSLATE_INPUT}, secret)
    assert started["translate"]["__typename"] == "Creation", started
    # but no other tool: a typed FORBIDDEN, nothing stored
    for tool in TOOLS:
        if tool != "translate":
            refused = (await client.query(start(tool), {"input": inline_input(tool)}, secret))[tool]
            assert refused["__typename"] == "AuthError" and refused["code"] == "FORBIDDEN", tool
    # and it reads, follows and manages nothing
    own_id = started["translate"]["id"]
    for query, variables in ((CREATIONS, {}), (LEXICONS, {}), (CREATION, {"id": own_id})):
        assert await code_of(client, query, variables, secret) == "FORBIDDEN", query
    assert (await client.query(CANCEL, {"id": own_id}, secret))["cancelCreation"]["code"] == (
        "FORBIDDEN"
    )
    lexicon = {"name": "x", "sourceLang": "en", "targetLang": "fr", "entries": []}
    writes: list[tuple[str, dict[str, Any]]] = [
        (CREATE_LEXICON, {"input": lexicon}),
        (SAVE_TEMPLATE, {}),
        (CREATE_UPLOAD, {"input": {"kind": "IMAGE", "contentType": "image/png", "size": 10}}),
    ]
    for mutation, variables in writes:
        result = next(iter((await client.query(mutation, variables, secret)).values()))
        assert result["__typename"] == "AuthError" and result["code"] == "FORBIDDEN", mutation
    async with open_socket(server.ws_url, secret) as sock:
        await sock.subscribe(EVENTS, {"id": own_id, "after": 0})
        message = await sock.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    # the owner sees exactly the translation and their own write
    listed = (await client.query(CREATIONS, token=owner.access))["creations"]["edges"]
    assert {edge["node"]["id"] for edge in listed} == {own_id, mine["write"]["id"]}


async def test_a_tool_only_key_may_stream_its_tool(server: Server, client: GraphQLClient) -> None:
    owner = await sign_up(client)
    secret, _ = await make_key(client, owner.access, "tools:translate")
    async with open_socket(server.ws_url, secret) as sock:
        op = await sock.subscribe(TRANSLATE_STREAM, {"input": TRANSLATE_INPUT})
        events = events_of(await sock.collect(op))
    assert events[-1]["__typename"] == "CreationCompleted"


async def test_tools_star_allows_every_tool_and_no_area(client: GraphQLClient) -> None:
    owner = await sign_up(client)
    secret, _ = await make_key(client, owner.access, "tools:*")
    for tool in TOOLS:
        started = (await client.query(start(tool), {"input": inline_input(tool)}, secret))[tool]
        assert started["__typename"] == "Creation", (tool, started)
    listed = (await client.query(CREATIONS, token=owner.access))["creations"]["edges"]
    assert {edge["node"]["tool"] for edge in listed} == set(TOOLS)
    assert await code_of(client, CREATIONS, {}, secret) == "FORBIDDEN"
    assert await code_of(client, LEXICONS, {}, secret) == "FORBIDDEN"


@pytest.mark.parametrize(
    "scopes",
    [
        [],
        ["admin"],
        ["tools:nope"],
        ["creations:*"],
        ["CREATIONS:READ"],
        ["tools:write", "tools:**"],
        [""],
        ["x" * 10_000],
        [f"tools:write{i}" for i in range(50)],
    ],
    ids=lambda scopes: repr(scopes)[:30],
)
async def test_unknown_scopes_are_refused_and_nothing_is_stored(
    client: GraphQLClient, scopes: list[str]
) -> None:
    owner = await sign_up(client)
    made = await client.query(
        CREATE_KEY, {"input": {"name": "bad", "scopes": scopes}}, owner.access
    )
    result = made["createApiKey"]
    assert result["__typename"] == "InvalidInputError" and result["field"] == "scopes", result
    assert (await client.query(KEYS, token=owner.access))["apiKeys"] == []


@pytest.mark.parametrize(
    ("name", "days", "field"),
    [
        (" ", 90, "name"),
        ("x" * 101, 90, "name"),
        ("ok", 0, "expiresInDays"),
        ("ok", 367, "expiresInDays"),
    ],
)
async def test_bad_names_and_lifetimes_are_refused(
    client: GraphQLClient, name: str, days: int, field: str
) -> None:
    owner = await sign_up(client)
    variables = {"input": {"name": name, "scopes": ["tools:write"], "expiresInDays": days}}
    result = (await client.query(CREATE_KEY, variables, owner.access))["createApiKey"]
    assert result["__typename"] == "InvalidInputError" and result["field"] == field, result


async def test_a_key_cannot_manage_credentials(client: GraphQLClient) -> None:
    owner = await sign_up(client)
    everything = [
        "tools:*",
        "creations:read",
        "creations:cancel",
        "lexicons:read",
        "lexicons:write",
        "presets:read",
        "presets:write",
        "uploads:write",
    ]
    secret, key_id = await make_key(client, owner.access, *everything)
    another = {"input": {"name": "child", "scopes": ["tools:*"]}}
    child = (await client.query(CREATE_KEY, another, secret))["createApiKey"]
    assert child["__typename"] == "AuthError" and child["code"] == "FORBIDDEN", child
    assert await code_of(client, KEYS, {}, secret) == "FORBIDDEN"
    revoked = (await client.query(REVOKE, {"id": key_id}, secret))["revokeApiKey"]
    assert revoked == {"__typename": "AuthError", "code": "FORBIDDEN"}
    out = (await client.query(LOGOUT, token=secret))["logout"]
    assert out["__typename"] == "AuthError" and out["code"] == "FORBIDDEN", out
    # the key still works, and there is still only one
    assert (await client.query(ME, token=secret))["me"]["id"] == owner.id
    assert len((await client.query(KEYS, token=owner.access))["apiKeys"]) == 1


async def test_a_revoked_key_stops_working_at_once(server: Server, client: GraphQLClient) -> None:
    owner = await sign_up(client)
    secret, key_id = await make_key(client, owner.access, "tools:write")
    assert (await client.query(ME, token=secret))["me"]["id"] == owner.id
    revoked = (await client.query(REVOKE, {"id": key_id}, owner.access))["revokeApiKey"]
    assert revoked["__typename"] == "ApiKey" and revoked["revokedAt"] is not None
    assert error_code((await client.raw(ME, token=secret)).json()) == "UNAUTHENTICATED"
    assert error_code(await with_header(client, ME, secret)) == "UNAUTHENTICATED"
    started = (await client.query(start("write"), {"input": {"prompt": "x"}}, secret))["write"]
    assert started["__typename"] == "AuthError" and started["code"] == "UNAUTHENTICATED"
    for payload in (bearer(secret), {"X-API-Key": secret}):
        assert await socket_refused(server.ws_url, payload) == 4403
    listed = (await client.query(KEYS, token=owner.access))["apiKeys"]
    assert listed[0]["revokedAt"] is not None
    # revoking again is harmless
    again = (await client.query(REVOKE, {"id": key_id}, owner.access))["revokeApiKey"]
    assert again["revokedAt"] == revoked["revokedAt"]


async def test_a_socket_opened_with_a_key_starts_nothing_after_revocation(
    server: Server, client: GraphQLClient
) -> None:
    owner = await sign_up(client)
    secret, key_id = await make_key(client, owner.access, "tools:write", "creations:read")
    async with open_socket(server.ws_url, secret) as sock:
        await client.query(REVOKE, {"id": key_id}, owner.access)
        with contextlib.suppress(websockets.ConnectionClosed):  # it may be closed already
            await sock.subscribe(WRITE, {"input": {"prompt": "after revocation", "maxTokens": 5}})
            await sock.receive(timeout=5)
    assert (await client.query(CREATIONS, token=owner.access))["creations"]["edges"] == []


async def test_an_expired_key_is_refused(server: Server, client: GraphQLClient) -> None:
    owner = await sign_up(client)
    secret, key_id = await make_key(client, owner.access, "tools:write")
    await ApiKey.filter(id=key_id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert error_code((await client.raw(ME, token=secret)).json()) == "UNAUTHENTICATED"
    assert error_code(await with_header(client, ME, secret)) == "UNAUTHENTICATED"
    assert await socket_refused(server.ws_url, {"X-API-Key": secret}) == 4403


async def test_a_key_expiring_mid_socket_closes_it_with_4401(
    server: Server, client: GraphQLClient
) -> None:
    owner = await sign_up(client)
    secret, key_id = await make_key(client, owner.access, "tools:write")
    expires = datetime.now(UTC) + timedelta(seconds=2)
    await ApiKey.filter(id=key_id).update(expires_at=expires)
    protocols = [Subprotocol("graphql-transport-ws")]
    async with websockets.connect(server.ws_url, subprotocols=protocols) as ws:
        init = {"type": "connection_init", "payload": {"X-API-Key": secret}}
        await ws.send(json.dumps(init))
        ack = json.loads(await ws.recv())
        # the ack tells when the key runs out, and the socket closes then
        payload = {"expiresAt": int(expires.timestamp())}
        assert ack == {"type": "connection_ack", "payload": payload}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 6)
    closed_at = time.time()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert closed_at - expires.timestamp() < 3


def _tampered(secret: str) -> dict[str, str]:
    prefix, _, rest = secret.removeprefix("ck_").partition("_")
    flip = "A" if rest[5] != "A" else "B"
    return {
        "secret changed": f"ck_{prefix}_{rest[:5]}{flip}{rest[6:]}",
        "prefix changed": f"ck_{prefix[:-1]}{'0' if prefix[-1] != '0' else '1'}_{rest}",
        "cut short": secret[:-1],
        "one more": secret + "A",
        "upper-cased": secret.upper(),
        "no secret": f"ck_{prefix}_",
        "only prefix": f"ck_{prefix}",
        "spaces inside": f"ck_{prefix}_ {rest}",
        "secret replaced": f"ck_{prefix}_{'Z' * len(rest)}",
    }


async def test_a_tampered_key_is_refused(server: Server, client: GraphQLClient) -> None:
    owner = await sign_up(client)
    secret, _ = await make_key(client, owner.access, "tools:write")
    for name, forged in _tampered(secret).items():
        assert error_code((await client.raw(ME, token=forged)).json()) == "UNAUTHENTICATED", name
        assert error_code(await with_header(client, ME, forged)) == "UNAUTHENTICATED", name
        assert await socket_refused(server.ws_url, {"X-API-Key": forged}) == 4403, name
    assert (await client.query(ME, token=secret))["me"]["id"] == owner.id


@pytest.mark.parametrize("where", ["prefix", "secret"])
async def test_a_key_with_a_lone_surrogate_is_refused_on_a_socket(
    server: Server, client: GraphQLClient, where: str
) -> None:
    owner = await sign_up(client)
    secret, _ = await make_key(client, owner.access, "tools:write")
    forged = "ck_\ud800_abc" if where == "prefix" else secret[:-1] + "\ud800"
    assert await socket_refused(server.ws_url, {"X-API-Key": forged}) == 4403
    assert (await client.query(ME, token=secret))["me"]["id"] == owner.id


async def test_a_key_acts_as_its_owner(client: GraphQLClient) -> None:
    owner = await sign_up(client)
    secret, _ = await make_key(client, owner.access, "tools:translate", "creations:read")
    made = await client.query(start("translate"), {"input": TRANSLATE_INPUT}, secret)
    creation_id = made["translate"]["id"]
    listed = (await client.query(CREATIONS, token=owner.access))["creations"]["edges"]
    assert [edge["node"]["id"] for edge in listed] == [creation_id]
    assert listed[0]["node"]["owner"]["email"] == owner.email
    by_key = (await client.query(CREATIONS, token=secret))["creations"]["edges"]
    assert by_key == listed
    stranger = await client.register()
    assert (await client.query(CREATIONS, token=stranger))["creations"]["edges"] == []
