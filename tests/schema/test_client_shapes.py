"""Schema shapes that normalised caches and strict validators (Apollo, urql, graphql-js) need:
nullable private root fields, cancel answers as it ended, true running usage, mergeable
`ToolDetails` members, the input in the API's own names, and identities on events."""

from __future__ import annotations

import re
import uuid

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    Undefined,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
)

from resolvers.core.models import Creation, CreationStatus
from resolvers.core.settings import Settings
from schema.build import build_schema
from tests.conftest import GraphQLClient, Server, open_socket, serving
from tests.schema.test_subscriptions import EVENTS, WRITE, events_of, first_text

SIGNED_IN = "{ tools { name } me { id email } }"
START = """
mutation S($input: WriteInput!) { write(input: $input) { ... on Creation { id status } } }
"""
CANCEL = """
mutation C($id: ID!) {
  cancelCreation(id: $id) {
    ... on Creation { id status output usage { promptTokens completionTokens } }
  }
}
"""
STATE = """
query Q($id: ID!) {
  creation(id: $id) { id status output usage { promptTokens completionTokens } }
}
"""
ENDED = """
subscription E($id: ID!) {
  creationEvents(id: $id) {
    __typename id seq
    ... on CreationCancelled {
      usage { promptTokens completionTokens }
      creation { id status output usage { promptTokens completionTokens } }
    }
  }
}
"""
INPUT = "query Q($id: ID!) { creation(id: $id) { input } }"
SWOT = "mutation S($input: SwotInput!) { swot(input: $input) { ... on Creation { id } } }"
SOCIAL = """
mutation S($input: SocialPostInput!) {
  socialPost(input: $input, wait: true) {
    ... on Creation { details { ... on SocialPostResult { socialPlatform length limit } } }
  }
}
"""
SCHEMA = build_schema()._schema


def _selection(field: GraphQLField) -> str:
    """Arguments a required-argument field can be called with, and a minimal selection."""
    args = []
    for name, arg in field.args.items():
        if not isinstance(arg.type, GraphQLNonNull) or arg.default_value is not Undefined:
            continue
        kind = get_named_type(arg.type)
        if isinstance(kind, GraphQLEnumType):
            args.append(f"{name}: {next(iter(kind.values))}")
        else:
            assert kind.name == "ID", f"teach this test an argument of type {kind.name}"
            args.append(f'{name}: "{uuid.uuid4()}"')
    called = f"({', '.join(args)})" if args else ""
    return called + ("" if is_leaf_type(get_named_type(field.type)) else " { __typename }")


def _leaves(kind: GraphQLObjectType, depth: int = 0) -> str:
    """Every field of `kind`, objects recursively, without aliases."""
    parts = []
    for name, field in kind.fields.items():
        inner = get_named_type(field.type)
        if is_leaf_type(inner):
            parts.append(name)
        elif isinstance(inner, GraphQLObjectType) and depth < 4:
            parts.append(f"{name} {{ {_leaves(inner, depth + 1)} }}")
    return " ".join(parts)


# --- 1. a signed-out client keeps the public fields -----------------------------------------


async def test_signed_out_me_is_null_without_an_error(client: GraphQLClient) -> None:
    body = (await client.raw(SIGNED_IN)).json()
    assert "errors" not in body, body
    assert body["data"]["me"] is None and body["data"]["tools"]


async def test_a_bad_credential_is_an_error_on_me_alone(client: GraphQLClient) -> None:
    body = (await client.raw(SIGNED_IN, token="not-a-token")).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert body["errors"][0]["path"] == ["me"]
    assert body["data"]["me"] is None and body["data"]["tools"]


async def test_me_answers_a_signed_in_client(client: GraphQLClient, token: str) -> None:
    data = await client.query(SIGNED_IN, token=token)
    assert data["me"]["email"].endswith("@example.com") and data["tools"]


async def test_no_root_field_a_signed_out_client_selects_nulls_the_whole_response(
    client: GraphQLClient,
) -> None:
    # given a document selecting every Query field next to the public ones
    fields = SCHEMA.query_type.fields
    document = "{ " + " ".join(f"{n}{_selection(f)}" for n, f in fields.items()) + " }"
    # when a signed-out client sends it
    body = (await client.raw(document)).json()
    # then the public fields are answered, and each field it may not read is null on its own
    assert body["data"] is not None, body
    assert body["data"]["tools"] and body["data"]["scopes"]
    refused = {error["path"][0] for error in body["errors"]}
    assert refused == {n for n, v in body["data"].items() if v is None} - {"me"}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UNAUTHENTICATED"}


# --- 2. cancel answers the creation as the cancel left it ------------------------------------


async def test_cancel_answers_the_ended_creation_and_so_does_the_terminal_event(
    settings: Settings,
) -> None:
    async with (
        serving(settings, dev_token_delay=0.01) as (server, graphql, token),
        open_socket(server.ws_url, token) as sock,
    ):
        # given a creation that has streamed some text
        op = await sock.subscribe(WRITE, {"input": {"prompt": "long", "maxTokens": 2000}})
        creation_id = (await sock.receive())["payload"]["data"]["write"]["creationId"]
        await first_text(sock)
        # when it is cancelled
        answer = (await graphql.query(CANCEL, {"id": creation_id}, token))["cancelCreation"]
        await sock.collect(op)
        # then the answer is the ended creation, with what it spent and made
        assert answer["status"] == "CANCELLED", answer
        assert answer["usage"]["completionTokens"] > 0 and answer["usage"]["promptTokens"] > 0
        assert answer["output"]
        assert (await graphql.query(STATE, {"id": creation_id}, token))["creation"] == answer
        # and the terminal event carries the same creation, for a normalised cache
        op = await sock.subscribe(ENDED, {"id": creation_id})
        ending = events_of(await sock.collect(op))[-1]
    assert ending["__typename"] == "CreationCancelled"
    assert ending["creation"] == answer and ending["usage"] == answer["usage"]


async def test_a_producer_slow_to_cancel_leaves_the_creation_cancelling(
    settings: Settings,
) -> None:
    # given a running creation whose producer (another process) holds its lease but does
    # not answer the cancel
    async with serving(settings, producer_lease_seconds=1) as (server, graphql, token):
        me = (await graphql.query(SIGNED_IN, token=token))["me"]["id"]
        row = await Creation.create(
            owner_id=me, tool="write", input={"prompt": "x"}, status=CreationStatus.RUNNING
        )
        creation_id = str(row.id)
        await server.app.state.core.feed.history.hold_lease(creation_id, 60)
        # when it is cancelled
        answer = (await graphql.query(CANCEL, {"id": creation_id}, token))["cancelCreation"]
        # then the answer says a cancel is under way, and so does every read until it ends
        assert answer["status"] == "CANCELLING", answer
        state = await graphql.query(STATE, {"id": creation_id}, token)
        assert state["creation"]["status"] == "CANCELLING"


# --- 3. usage while running ------------------------------------------------------------------


async def test_usage_while_running_is_what_the_streamed_text_cost(settings: Settings) -> None:
    async with serving(settings, dev_token_delay=0.01) as (server, graphql, token):
        started = await graphql.query(
            START, {"input": {"prompt": "slow", "maxTokens": 2000}}, token
        )
        creation_id = started["write"]["id"]
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
            await first_text(sock)
            running = (await graphql.query(STATE, {"id": creation_id}, token))["creation"]
            answer = (await graphql.query(CANCEL, {"id": creation_id}, token))["cancelCreation"]
            await sock.collect(op)
    assert running["status"] == "RUNNING"
    spent, final = running["usage"], answer["usage"]
    assert 0 < spent["completionTokens"] <= final["completionTokens"] < 2000
    assert spent["promptTokens"] == final["promptTokens"] > 0


# --- 4. every ToolDetails member in one document ---------------------------------------------


def test_every_tool_details_member_can_be_selected_in_one_document_without_aliases() -> None:
    # given a document with an inline fragment on every member, selecting all its fields
    union = SCHEMA.type_map["ToolDetails"]
    fragments = " ".join(f"... on {m.name} {{ {_leaves(m)} }}" for m in union.types)
    document = f"query D($id: ID!) {{ creation(id: $id) {{ details {{ {fragments} }} }} }}"
    # when graphql-core validates it with the standard rules (graphql-js's)
    errors = validate(SCHEMA, parse(document))
    # then it is valid: no field name means two types
    assert [error.message for error in errors] == []
    assert "socialPlatform" in document and "videoPlatform" in document


async def test_a_renamed_details_field_carries_the_stored_value(
    client: GraphQLClient, token: str
) -> None:
    tool_input = {"platform": "WEIBO", "topic": "city cycling"}
    details = (await client.query(SOCIAL, {"input": tool_input}, token))["socialPost"]["details"]
    assert details["socialPlatform"] == "WEIBO" and details["length"] <= details["limit"]


# --- 5. the input in the API's own names -----------------------------------------------------


async def test_the_input_reads_back_as_the_client_sent_it(
    client: GraphQLClient, token: str
) -> None:
    # given inputs with camelCase fields, enums and a nested input object
    write = {"prompt": "a haiku", "genre": "MARKETING_COPY", "maxTokens": 12, "seed": 7}
    swot = {
        "subject": "A neighbourhood bakery",
        "facts": ["Loyal local customers"],
        "template": {"strengthsPrompt": "Our edge?", "items": 2, "strategies": 1},
    }
    written = (await client.query(START, {"input": write}, token))["write"]["id"]
    analysed = (await client.query(SWOT, {"input": swot}, token))["swot"]["id"]
    # when they are read back
    write_back = (await client.query(INPUT, {"id": written}, token))["creation"]["input"]
    swot_back = (await client.query(INPUT, {"id": analysed}, token))["creation"]["input"]
    # then what was sent is there as sent, with the input type's defaults and nothing else
    assert {key: write_back[key] for key in write} == write
    assert set(write_back) == set(SCHEMA.type_map["WriteInput"].fields)
    assert swot_back["template"]["strengthsPrompt"] == "Our edge?"
    assert {key: swot_back["template"][key] for key in ("items", "strategies")} == {
        "items": 2,
        "strategies": 1,
    }
    assert set(swot_back) == set(SCHEMA.type_map["SwotInput"].fields)


# --- 6. events have an identity --------------------------------------------------------------


async def test_every_event_has_a_stable_id(server: Server, token: str) -> None:
    # given a finished creation, streamed live
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(
            "subscription W($input: WriteInput!) { write(input: $input) { id creationId seq "
            "... on TokenDelta { firstSeq } } }",
            {"input": {"prompt": "ids", "maxTokens": 80}},
        )
        live = events_of(await sock.collect(op))
        creation_id = live[0]["creationId"]
        # when it is replayed, its deltas merged
        op = await sock.subscribe(
            "subscription E($id: ID!) { creationEvents(id: $id) { id seq "
            "... on TokenDelta { firstSeq } } }",
            {"id": creation_id},
        )
        replayed = events_of(await sock.collect(op))
    # then every event has an id naming its creation and the log entries it covers
    for event in live + replayed:
        first = event.get("firstSeq") or event["seq"]
        span = str(event["seq"]) if first == event["seq"] else f"{first}-{event['seq']}"
        assert event["id"] == f"{creation_id}:{span}"
    assert len({e["id"] for e in live}) == len(live)
    # and the same entries keep the same id
    assert live[0]["id"] == replayed[0]["id"] and live[-1]["id"] == replayed[-1]["id"]
    assert all(re.fullmatch(rf"{creation_id}:\d+(-\d+)?", e["id"]) for e in replayed)


def test_the_event_interface_declares_the_id() -> None:
    field = SCHEMA.type_map["CreationEvent"].fields["id"]
    assert isinstance(field.type, GraphQLNonNull) and field.type.of_type.name == "ID"
    for name in ("CreationCompleted", "CreationFailed", "CreationCancelled"):
        creation = SCHEMA.type_map[name].fields["creation"].type
        assert isinstance(creation, GraphQLNonNull) and creation.of_type.name == "Creation"
