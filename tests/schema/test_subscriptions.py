"""Subscriptions over real websockets against uvicorn: streaming, resume, sharing, cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, Server, Socket, open_socket, serving

EVENT_FIELDS = """
  __typename creationId seq
  ... on CreationStarted { model }
  ... on TokenDelta { text firstSeq }
  ... on Progress { fraction stage }
  ... on CreationCompleted { usage { promptTokens completionTokens } creation { status output } }
  ... on CreationFailed { code message }
  ... on CreationCancelled { usage { completionTokens } }
"""
WRITE = f"subscription W($input: WriteInput!) {{ write(input: $input) {{ {EVENT_FIELDS} }} }}"
REPORT = f"subscription R($input: ReportInput!) {{ report(input: $input) {{ {EVENT_FIELDS} }} }}"
EVENTS = f"""
subscription E($id: ID!, $after: Int!) {{
  creationEvents(id: $id, after: $after) {{ {EVENT_FIELDS} }}
}}
"""
START_WRITE = """
mutation S($input: WriteInput!) { write(input: $input) { ... on Creation { id status } } }
"""
CANCEL = """
mutation C($id: ID!) { cancelCreation(id: $id) { __typename ... on Creation { status } } }
"""
TERMINAL = {"CreationCompleted", "CreationFailed", "CreationCancelled"}


def events_of(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [next(iter(payload.values())) for payload in payloads]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["text"] for e in events if e["__typename"] == "TokenDelta")


async def first_text(sock: Socket) -> None:
    """Read the socket until the first TokenDelta: the model is generating."""
    while True:
        payload = (await sock.receive())["payload"]["data"]
        if next(iter(payload.values()))["__typename"] == "TokenDelta":
            return


def assert_well_formed(events: list[dict[str, Any]], after: int = 0) -> None:
    """Seqs grow without gaps (merged deltas cover firstSeq..seq); one terminal, last."""
    expected = after + 1
    for event in events:
        first = event.get("firstSeq") or event["seq"]
        assert first == expected, events
        expected = event["seq"] + 1
    assert [e["__typename"] in TERMINAL for e in events].count(True) == 1
    assert events[-1]["__typename"] in TERMINAL


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_write_streams_tokens_then_completes(
    server: Server, token: str, protocol: str
) -> None:
    async with open_socket(server.ws_url, token, protocol) as sock:
        op = await sock.subscribe(WRITE, {"input": {"prompt": "a harbor at dawn", "maxTokens": 60}})
        events = events_of(await sock.collect(op))
    assert events[0]["__typename"] == "CreationStarted"
    assert events[0]["model"] == "dev-engine"
    assert_well_formed(events)
    completed = events[-1]
    assert completed["__typename"] == "CreationCompleted"
    assert completed["usage"]["completionTokens"] == 60
    assert completed["creation"]["status"] == "COMPLETED"
    assert completed["creation"]["output"] == text_of(events)


async def test_resume_after_any_seq_gives_exactly_the_rest(
    server: Server, client: GraphQLClient, token: str
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(WRITE, {"input": {"prompt": "resume me", "maxTokens": 200}})
        full = events_of(await sock.collect(op))
        creation_id = full[0]["creationId"]
        text = text_of(full)
        # Cursors a client can hold: seqs it was given. (A live subscriber that fell behind
        # gets merged catch-up deltas, so not every seq is a boundary of `full`.)
        given = [event["seq"] for event in full]
        for after in dict.fromkeys((0, 1, given[1], given[len(given) // 2], given[-2])):
            op = await sock.subscribe(EVENTS, {"id": creation_id, "after": after})
            rest = events_of(await sock.collect(op))
            assert_well_formed(rest, after)
            covered = [e for e in full if e["seq"] > after]
            assert text_of(rest) == text_of(covered)
        op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
        assert text_of(events_of(await sock.collect(op))) == text


async def test_late_joiners_share_a_running_creation(settings: Settings) -> None:
    # given a slow creation (the server paces the dev engine)
    async with serving(settings, dev_token_delay=0.005) as (slow, graphql, token):
        started = await graphql.query(
            START_WRITE, {"input": {"prompt": "shared", "maxTokens": 150}}, token=token
        )
        creation_id = started["write"]["id"]

        async def watch(delay: float) -> list[dict[str, Any]]:
            await asyncio.sleep(delay)  # join at different points of the stream
            async with open_socket(slow.ws_url, token) as sock:
                op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
                return events_of(await sock.collect(op))

        # when five editors join at different times
        results = await asyncio.gather(*(watch(i * 0.1) for i in range(5)))
    # then every one of them gets the whole text, in order
    texts = {text_of(events) for events in results}
    assert len(texts) == 1 and len(next(iter(texts)).split()) == 150
    for events in results:
        assert_well_formed(events)


async def test_cancel_stops_the_model_and_reports_usage(settings: Settings) -> None:
    async with serving(settings, dev_token_delay=0.01) as (slow, graphql, token):
        async with open_socket(slow.ws_url, token) as sock:
            op = await sock.subscribe(WRITE, {"input": {"prompt": "long", "maxTokens": 2000}})
            first = await sock.receive()
            creation_id = first["payload"]["data"]["write"]["creationId"]
            # wait for some text, then cancel
            await first_text(sock)
            cancel = await graphql.query(CANCEL, {"id": creation_id}, token=token)
            assert cancel["cancelCreation"]["__typename"] == "Creation"
            rest = events_of(await sock.collect(op, timeout=10))
        final = rest[-1]
        assert final["__typename"] == "CreationCancelled"
        spent = final["usage"]["completionTokens"]
        assert 0 < spent < 2000
        row = await graphql.query(
            "query Q($id: ID!) { creation(id: $id) { status output usage { completionTokens } } }",
            {"id": creation_id},
            token=token,
        )
        assert row["creation"]["status"] == "CANCELLED"
        assert row["creation"]["usage"]["completionTokens"] == spent
        assert row["creation"]["output"]


async def test_report_runs_on_the_worker_with_progress(
    server: Server, token: str, worker: None
) -> None:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(
            REPORT,
            {"input": {"topic": "solar power in cities", "sections": 3, "sectionTokens": 20}},
        )
        events = events_of(await sock.collect(op, timeout=30))
    assert_well_formed(events)
    progress = [e for e in events if e["__typename"] == "Progress"]
    assert [p["fraction"] for p in progress] == sorted(p["fraction"] for p in progress)
    # a notice of its place in the queue may come first, until the worker takes it
    progress = [p for p in progress if not p["stage"].startswith("queued (")]
    assert progress[0]["stage"] == "outline" and progress[-1]["fraction"] == 1.0
    assert len(progress) == 3 + 2
    text = text_of(events)
    assert text.startswith("# solar power in cities") and text.count("\n## ") == 3
    assert events[-1]["creation"]["output"] == text


async def test_socket_auth(server: Server, client: GraphQLClient, token: str) -> None:
    # a bad token is refused at connection_init
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with open_socket(server.ws_url, "garbage"):
            pass
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    # anonymous sockets may connect but not start creations
    async with open_socket(server.ws_url) as sock:
        op = await sock.subscribe(WRITE, {"input": {"prompt": "hi"}})
        message = await sock.receive()
        assert message["id"] == op
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    # another user's creation is not found
    started = await client.query(START_WRITE, {"input": {"prompt": "mine"}}, token=token)
    stranger = await client.register()
    async with open_socket(server.ws_url, stranger) as sock:
        op = await sock.subscribe(EVENTS, {"id": started["write"]["id"], "after": 0})
        message = await sock.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_stalled_subscriber_blocks_neither_the_producer_nor_others(
    settings: Settings,
) -> None:
    # every token its own event, so an unread socket fills up quickly
    async with serving(settings, batch_max_tokens=1, batch_interval_ms=0) as (
        server,
        graphql,
        token,
    ):
        started = await graphql.query(
            START_WRITE, {"input": {"prompt": "flood", "maxTokens": 2000}}, token=token
        )
        creation_id = started["write"]["id"]
        async with (
            open_socket(server.ws_url, token) as stalled,
            open_socket(server.ws_url, token) as reader,
        ):
            # the stalled editor subscribes and then reads nothing
            await stalled.subscribe(EVENTS, {"id": creation_id, "after": 0})
            op = await reader.subscribe(EVENTS, {"id": creation_id, "after": 0})
            live = events_of(await reader.collect(op, timeout=30))
            status = await graphql.query(
                "query Q($id: ID!) { creation(id: $id) { status } }", {"id": creation_id}, token
            )
            # it catches up later with nothing lost
            late = events_of(await stalled.collect("1", timeout=30))
    assert status["creation"]["status"] == "COMPLETED"
    assert_well_formed(live)
    assert_well_formed(late)
    assert text_of(late) == text_of(live) and len(text_of(live).split()) == 2000
