"""Python's gql 4: the schema fetched by introspection over HTTP, a subscription over websockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from tests.conftest import GraphQLClient, Server

pytestmark = [pytest.mark.services, pytest.mark.clients]

# Every option of graphql-core's introspection query, as partners' tools send it.
INTROSPECTION_ARGS = {
    "descriptions": True,
    "specified_by_url": True,
    "directive_is_repeatable": True,
    "schema_description": True,
    "input_value_deprecation": True,
    "input_object_one_of": True,
}
TOOLS = gql("query Tools { tools { name mode } }")
WRITE = """
subscription Write($input: WriteInput!) {
  write(input: $input) {
    __typename
    creationId
    seq
    ... on TokenDelta { text }
    ... on CreationCompleted {
      usage { completionTokens }
      creation { id status output }
    }
    ... on CreationFailed { code message }
  }
}
"""
TERMINAL = {"CreationCompleted", "CreationFailed", "CreationCancelled"}


async def test_gql_fetches_the_schema_by_introspection_over_http(server: Server) -> None:
    transport = HTTPXAsyncTransport(url=f"{server.url}/graphql", timeout=30)
    client = Client(
        transport=transport,
        fetch_schema_from_transport=True,
        introspection_args=INTROSPECTION_ARGS,
        execute_timeout=30,
    )
    async with client as session:
        result = await session.execute(TOOLS)
    assert client.schema is not None, "gql built no schema from the introspection answer"
    assert client.schema.subscription_type is not None
    assert "write" in client.schema.subscription_type.fields
    assert "write" in [tool["name"] for tool in result["tools"]]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_gql_streams_a_write_to_its_terminal_event(
    server: Server, client: GraphQLClient, protocol: str
) -> None:
    token = await client.register()
    # the schema from introspection, so gql validates the subscription before sending it
    http = Client(
        transport=HTTPXAsyncTransport(url=f"{server.url}/graphql", timeout=30),
        fetch_schema_from_transport=True,
        introspection_args=INTROSPECTION_ARGS,
    )
    async with http:
        pass
    assert http.schema is not None
    websocket = WebsocketsTransport(
        url=server.ws_url,
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[protocol],
        connect_timeout=10,
        close_timeout=5,
    )
    request = GraphQLRequest(WRITE, variable_values={"input": {"prompt": "gql", "maxTokens": 24}})
    events: list[dict[str, Any]] = []
    async with Client(transport=websocket, schema=http.schema) as session:
        async with asyncio.timeout(30):
            async for data in session.subscribe(request):
                events.append(data["write"])
                if data["write"]["__typename"] in TERMINAL:
                    break
    assert websocket.subprotocol == protocol
    assert events[0]["__typename"] == "CreationStarted" and events[0]["seq"] == 1
    terminal = events[-1]
    assert terminal["__typename"] == "CreationCompleted", terminal
    text = "".join(e["text"] for e in events if e["__typename"] == "TokenDelta")
    assert text and text == terminal["creation"]["output"]
    assert terminal["creation"]["status"] == "COMPLETED"
