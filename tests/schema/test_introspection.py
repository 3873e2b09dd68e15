"""Introspection is measured apart from data fields: the standard query passes, abuse does
not, and CK_INTROSPECTION decides who may introspect, over HTTP and both websocket
protocols."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import build_client_schema, get_introspection_query

from resolvers.core.settings import Settings
from schema.build import build_schema
from tests.conftest import open_socket, serving

# What graphql-js's getIntrospectionQuery() sends with every option on (v16 and v17 alike):
# graphql-core mirrors it; tests/clients/ sends graphql-js's own text.
STANDARD = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
    one_of=True,
)
SCHEMA_NAME = "{ __schema { queryType { name } } }"
TYPENAME = "{ __typename }"


def _of_type_chain(depth: int) -> str:
    inner = "name"
    for _ in range(depth):
        inner = f"kind ofType {{ {inner} }}"
    return f"{{ __schema {{ types {{ fields {{ type {{ {inner} }} }} }} }} }}"


async def _run(query: str, **context: Any) -> Any:
    return await build_schema(**context).execute(query)


async def test_the_standard_introspection_query_is_answered_in_full() -> None:
    result = await _run(STANDARD)

    assert result.errors is None
    schema = build_client_schema(result.data)  # what codegen and GraphiQL do with it
    assert schema.query_type is not None
    assert "tools" in schema.query_type.fields


@pytest.mark.parametrize(
    ("query", "refusal"),
    [
        (_of_type_chain(30), "introspects"),
        (
            "{ " + " ".join(f't{i}: __type(name: "Query") {{ name }}' for i in range(16)) + " }",
            "aliases",
        ),
        (
            "{ " + " ".join(f't{i}: __type(name: "Query") {{ name }}' for i in range(4)) + " }",
            "introspection fields",
        ),
        (
            "{ ...A ...B } fragment A on Query { a: __schema { types { name } } } "
            'fragment B on Query { b: __schema { types { name } } c: __type(name: "X") '
            '{ name } d: __type(name: "Y") { name } }',
            "introspection fields",
        ),
    ],
    ids=["30-deep-ofType", "alias-flood", "repeated-__type", "repeated-through-fragments"],
)
async def test_abusive_introspection_is_refused(query: str, refusal: str) -> None:
    result = await _run(query)

    assert result.errors, result
    assert refusal in result.errors[0].message
    assert result.data is None


async def test_data_fields_keep_their_own_depth_limit() -> None:
    eleven_deep = "{ " + "a { " * 10 + "b" + " }" * 10 + " }"
    result = await _run(eleven_deep)

    assert result.errors
    assert any("exceeds maximum operation depth of 10" in e.message for e in result.errors)


async def test_introspection_beside_data_fields_is_measured_apart() -> None:
    both = STANDARD.replace("query IntrospectionQuery {", "query Both { tools { name }", 1)

    result = await _run(both)

    assert result.errors is None
    assert result.data["tools"] and result.data["__schema"]["types"]


# The legacy graphql-ws protocol runs subscriptions only, and a subscription cannot introspect.
@pytest.mark.parametrize("transport", ["http", "graphql-transport-ws"])
async def test_signed_in_mode_refuses_anonymous_introspection_on_every_transport(
    settings: Settings, transport: str
) -> None:
    async with serving(settings, introspection="signed-in") as (server, client, token):
        anonymous = await _introspect(server.url, server.ws_url, client, transport, None)
        signed_in = await _introspect(server.url, server.ws_url, client, transport, token)
        plain = (await client.raw(TYPENAME)).json()

    assert anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert signed_in["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert plain == {"data": {"__typename": "Query"}}


async def test_off_mode_refuses_introspection_to_everyone(settings: Settings) -> None:
    async with serving(settings, introspection="off") as (server, client, token):
        refused = (await client.raw(SCHEMA_NAME, token=token)).json()
        over_ws = await _introspect(
            server.url, server.ws_url, client, "graphql-transport-ws", token
        )
        legacy = await _introspect(server.url, server.ws_url, client, "graphql-ws", token)
        plain = (await client.raw(TYPENAME, token=token)).json()

    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert over_ws["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Refused by the legacy protocol itself, with a clear error rather than a masked one.
    assert legacy["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "graphql-transport-ws" in legacy["errors"][0]["message"]
    assert plain == {"data": {"__typename": "Query"}}


async def _introspect(
    url: str, ws_url: str, client: Any, transport: str, token: str | None
) -> dict[str, Any]:
    if transport == "http":
        body: dict[str, Any] = (await client.raw(SCHEMA_NAME, token=token)).json()
        return body
    async with open_socket(ws_url, token, protocol=transport) as sock:
        op_id = await sock.subscribe(SCHEMA_NAME)
        while True:
            message = await sock.receive()
            if message.get("id") != op_id:
                continue
            if message["type"] in ("next", "data"):
                payload: dict[str, Any] = message["payload"]
                return {"data": payload.get("data"), "errors": payload.get("errors")}
            if message["type"] == "error":
                errors = message["payload"]
                return {"data": None, "errors": errors if isinstance(errors, list) else [errors]}
