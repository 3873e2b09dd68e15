"""Fan-out: subscribers of one process that ask the same thing share one execution per event,
and nobody gets a result rendered for a different question."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import OperationType
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.core import keys
from resolvers.core.settings import Settings
from resolvers.streaming.events import Event, EventKind
from schema.fanout import shared_event
from tests.conftest import Socket, open_socket, serving

pytestmark = pytest.mark.services

START_REPORT = """
mutation R($input: ReportInput!) { report(input: $input) { ... on Creation { id } } }
"""
FULL = """
subscription E($id: ID!) {
  creationEvents(id: $id) { __typename seq ... on TokenDelta { text firstSeq } }
}
"""
TEXT_ONLY = """
subscription T($id: ID!) { creationEvents(id: $id) { seq ... on TokenDelta { text } } }
"""
WITH_ROW = """
subscription C($id: ID!) {
  creationEvents(id: $id) { seq ... on CreationCancelled { creation { id } } }
}
"""
AFTER_TWO = """
subscription A($id: ID!, $after: Int!) {
  creationEvents(id: $id, after: $after) { __typename seq ... on TokenDelta { text firstSeq } }
}
"""


async def _next_event(sock: Socket, op: str) -> dict[str, Any]:
    while True:
        message = await sock.receive()
        if message.get("id") == op:
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            event: dict[str, Any] = message["payload"]["data"]["creationEvents"]
            return event


@pytest.fixture(params=["plain", "traced"])
def execution(request: pytest.FixtureRequest) -> Iterator[str]:
    """Plain: execution is synchronous. Traced: a tracer provider is installed, so a resolve
    middleware makes it asynchronous and subscribers woken together share it in flight."""
    if request.param == "traced":
        trace.set_tracer_provider(TracerProvider())
    try:
        yield request.param
    finally:
        trace._TRACER_PROVIDER_SET_ONCE = Once()  # opentelemetry's own test utils do this
        trace._TRACER_PROVIDER = None


async def test_equal_subscriptions_share_one_execution_per_event(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, execution: str
) -> None:
    executed: list[tuple[str, int]] = []
    real = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counting(self: Any, serially: bool | None = None) -> Any:
        if self.operation.operation is OperationType.SUBSCRIPTION:
            executed.append((self.operation.name.value, self.root_value.seq))
        return real(self, serially)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counting)
    # no worker: the report stays queued and this test writes its log
    async with serving(settings) as (server, graphql, token), contextlib.AsyncExitStack() as stack:
        started = await graphql.query(START_REPORT, {"input": {"topic": "tides"}}, token=token)
        creation_id = started["report"]["id"]
        feed = server.app.state.core.feed
        # this test is the runner: it claims the creation and starts its log over (dropping
        # the queue notices the API wrote while it waited)
        await feed.history.claim(creation_id)
        await server.app.state.core.redis.delete(keys.event_log(creation_id))
        await feed.publish(Event(creation_id, 1, EventKind.STARTED, model="test"))
        subscribers: list[tuple[Socket, str, str]] = []
        for query, variables in [
            (FULL, {}),
            (FULL, {}),
            (FULL, {}),
            (TEXT_ONLY, {}),
            (AFTER_TWO, {"after": 0}),  # the same fields, other variables
            (WITH_ROW, {}),  # the finished creation through each subscriber's context
            (WITH_ROW, {}),
        ]:
            sock = await stack.enter_async_context(open_socket(server.ws_url, token))
            op = await sock.subscribe(query, {"id": creation_id, **variables})
            first = await _next_event(sock, op)
            assert first["seq"] == 1
            subscribers.append((sock, op, query))
        executed.clear()  # the replayed `started` was read by each subscriber on its own

        for seq in range(2, 6):
            await feed.publish(
                Event(creation_id, seq, EventKind.DELTA, text=f"w{seq} ", completion_tokens=1)
            )
            for sock, op, query in subscribers:
                event = await _next_event(sock, op)
                if query == WITH_ROW:
                    assert event == {"seq": seq}  # no text selected
                    continue
                assert event["seq"] == seq and event["text"] == f"w{seq} "
                if query == TEXT_ONLY:
                    assert set(event) == {"seq", "text"}  # its own selection, not FULL's
                else:
                    assert event == {
                        "__typename": "TokenDelta",
                        "seq": seq,
                        "text": f"w{seq} ",
                        "firstSeq": seq,
                    }
        # one execution per event per distinct (document, variables): 4 of 7 subscribers
        assert sorted(executed) == sorted(
            (name, seq) for seq in range(2, 6) for name in ("E", "T", "A", "C")
        )

        # The terminal event is shared too, except where the operation selects `creation`:
        # that reads the row through each subscriber's context, so it runs per subscriber.
        executed.clear()
        await feed.publish(Event(creation_id, 6, EventKind.CANCELLED))
        for sock, op, query in subscribers:
            ending = await _next_event(sock, op)
            assert ending["seq"] == 6
            if query == WITH_ROW:
                assert ending["creation"] == {"id": creation_id}
        assert sorted(executed) == sorted([("E", 6), ("T", 6), ("A", 6), ("C", 6), ("C", 6)])


def test_equal_log_entries_share_one_schema_object() -> None:
    one = Event("c1", 3, EventKind.DELTA, text="hi", completion_tokens=1)
    same = Event("c1", 3, EventKind.DELTA, text="hi", completion_tokens=1)
    merged = Event("c1", 3, EventKind.DELTA, text="hi", completion_tokens=1, first_seq=2)
    assert shared_event(one) is shared_event(same)
    assert shared_event(merged) is not shared_event(one)
    assert shared_event(merged).first_seq == 2  # type: ignore[attr-defined]
