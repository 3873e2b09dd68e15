"""A long creation waiting for a worker is not silent (issue 12, newcomer's path): its
subscription gets `CreationStarted` and a Progress "queued (position N)" at once, the
position follows the line, and the run that finally takes it goes on from there, with no
seq repeated or skipped. A cancel while it waits ends it after its notices."""

from __future__ import annotations

from typing import Any

from resolvers.core.settings import Settings
from tests.conftest import Socket, open_socket, running_worker, serving
from tests.schema.test_subscriptions import REPORT, assert_well_formed, events_of, text_of

CANCEL = "mutation C($id: ID!) { cancelCreation(id: $id) { ... on Creation { status } } }"


def report(topic: str) -> dict[str, Any]:
    return {"input": {"topic": topic, "sections": 2, "sectionTokens": 20, "seed": 1}}


async def first_events(sock: Socket, count: int) -> list[dict[str, Any]]:
    return [
        next(iter((await sock.receive(timeout=30))["payload"]["data"].values()))
        for _ in range(count)
    ]


async def test_a_queued_report_says_where_it_waits_then_runs(settings: Settings) -> None:
    async with (
        serving(settings, follow_poll_seconds=0.2) as (server, _graphql, token),
        open_socket(server.ws_url, token) as first,
        open_socket(server.ws_url, token) as second,
    ):
        # given no worker running: two reports wait in line
        op_first = await first.subscribe(REPORT, report("queues"))
        head_first = await first_events(first, 2)
        op_second = await second.subscribe(REPORT, report("lines"))
        head_second = await first_events(second, 2)
        # then each hears at once that it started and where it waits
        assert [e["__typename"] for e in head_first] == ["CreationStarted", "Progress"]
        assert head_first[1]["stage"] == "queued (position 1)"
        assert head_second[1]["stage"] == "queued (position 2)"
        # when a worker comes, both run to the end, going on from the notices
        async with running_worker(server):
            rest_first = events_of(await first.collect(op_first, timeout=60))
            rest_second = events_of(await second.collect(op_second, timeout=60))
    for events in (head_first + rest_first, head_second + rest_second):
        assert_well_formed(events)
        assert events[-1]["__typename"] == "CreationCompleted", events[-1]
        assert events[-1]["creation"]["output"] == text_of(events)
        assert [e["__typename"] for e in events].count("CreationStarted") == 1
    # and no notice is repeated: a place is announced when it changes
    stages = [e["stage"] for e in head_second + rest_second if e["__typename"] == "Progress"]
    assert stages.count("queued (position 2)") == 1, stages


async def test_cancelling_a_queued_report_ends_it_after_its_notices(settings: Settings) -> None:
    async with (
        serving(settings) as (server, graphql, token),
        open_socket(server.ws_url, token) as sock,
    ):
        op = await sock.subscribe(REPORT, report("never runs"))
        head = await first_events(sock, 2)
        cancelled = await graphql.query(CANCEL, {"id": head[0]["creationId"]}, token)
        rest = events_of(await sock.collect(op, timeout=30))
    assert cancelled["cancelCreation"]["status"] == "CANCELLED"
    events = head + rest
    assert_well_formed(events)
    assert events[-1]["__typename"] == "CreationCancelled"
