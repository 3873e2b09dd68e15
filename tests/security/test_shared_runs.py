"""Issue 11, finding 9: shared runs. When one of two identical requests that share a run was
cancelled, the other failed INTERRUPTED "the model failed"; and a copy never ran the quiet
check on its source, so a source whose worker died stalled its copies for about 30 minutes
(that fault is in tests/test_faults.py).

A cancel now detaches only the one who asked: the source's owner gets `cancelled`, the run
goes on for the copies; a copy's cancel stops only its copying; when every copy is gone, the
run stops.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from resolvers.core import keys
from resolvers.core.settings import Settings
from resolvers.streaming.events import Event, EventKind
from tests.conftest import GraphQLClient, Server, open_socket, serving
from tests.fault_support import eventually
from tests.schema.test_subscriptions import EVENTS, assert_well_formed, text_of

START_WRITE = """
mutation W($input: WriteInput!) { write(input: $input, wait: false) {
  __typename ... on Creation { id cached } ... on Error { code message } } }
"""
CANCEL = """
mutation C($id: ID!) { cancelCreation(id: $id) {
  __typename ... on Creation { status } ... on Error { code message } } }
"""
ROW = "query C($id: ID!) { creation(id: $id) { status output errorCode cached } }"
SLOW = {"dev_token_delay": 0.01, "producer_lease_seconds": 2, "follow_poll_seconds": 0.3}


async def _start(graphql: GraphQLClient, token: str, prompt: str) -> dict[str, Any]:
    started = await graphql.query(
        START_WRITE, {"input": {"prompt": prompt, "maxTokens": 300}}, token
    )
    assert started["write"]["__typename"] == "Creation", started
    return dict(started["write"])


async def _follow(server: Server, token: str, creation_id: str) -> list[dict[str, Any]]:
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
        return [p["creationEvents"] for p in await sock.collect(op, timeout=60)]


async def _pair(graphql: GraphQLClient, token: str, prompt: str) -> tuple[str, str]:
    """A creation and an identical one that shares its run."""
    source = await _start(graphql, token, prompt)
    copy = await _start(graphql, token, prompt)
    assert not source["cached"] and copy["cached"], (source, copy)
    return source["id"], copy["id"]


async def _row(graphql: GraphQLClient, token: str, creation_id: str) -> dict[str, Any]:
    return dict((await graphql.query(ROW, {"id": creation_id}, token))["creation"])


async def test_the_source_s_cancel_detaches_only_its_owner(settings: Settings) -> None:
    async with serving(settings, **SLOW) as (server, graphql, token):
        # given two identical writes sharing one run, each followed by its client
        source_id, copy_id = await _pair(graphql, token, "one run, two readers")
        copy_events = asyncio.create_task(_follow(server, token, copy_id))
        source_events = asyncio.create_task(_follow(server, token, source_id))
        await asyncio.sleep(0.5)  # both are streaming

        # when the source's owner cancels
        cancelled = await graphql.query(CANCEL, {"id": source_id}, token)
        assert cancelled["cancelCreation"]["status"] == "CANCELLED", cancelled

        # then the source ended cancelled with part of the text...
        source_seen = await source_events
        assert source_seen[-1]["__typename"] == "CreationCancelled"
        source_row = await _row(graphql, token, source_id)
        assert source_row["status"] == "CANCELLED"
        assert 0 < len(source_row["output"].split()) < 300
        assert source_row["output"] == text_of(source_seen)
        # ...while the copy got the whole answer, streamed as it is stored
        copy_seen = await copy_events
        assert_well_formed(copy_seen)
        assert copy_seen[-1]["__typename"] == "CreationCompleted", copy_seen[-1]
        copy_row = await _row(graphql, token, copy_id)
        assert copy_row["status"] == "COMPLETED" and copy_row["cached"]
        assert copy_row["output"] == text_of(copy_seen)
        assert len(copy_row["output"].split()) == 300
        assert copy_row["output"].startswith(source_row["output"])


async def test_a_copy_s_cancel_leaves_the_source_running(settings: Settings) -> None:
    async with serving(settings, **SLOW) as (server, graphql, token):
        source_id, copy_id = await _pair(graphql, token, "the copy leaves early")
        source_events = asyncio.create_task(_follow(server, token, source_id))
        await asyncio.sleep(0.5)

        cancelled = await graphql.query(CANCEL, {"id": copy_id}, token)

        assert cancelled["cancelCreation"]["status"] == "CANCELLED", cancelled
        source_seen = await source_events
        assert_well_formed(source_seen)
        assert source_seen[-1]["__typename"] == "CreationCompleted"
        source_row = await _row(graphql, token, source_id)
        assert len(source_row["output"].split()) == 300
        copy_row = await _row(graphql, token, copy_id)
        assert source_row["output"].startswith(copy_row["output"])


async def test_the_run_stops_once_no_copy_follows_it(settings: Settings, redis: Redis) -> None:
    async with serving(settings, **SLOW) as (_server, graphql, token):
        source_id, copy_id = await _pair(graphql, token, "everyone leaves")
        await asyncio.sleep(0.5)

        # when the source is cancelled (the run goes on for the copy), then the copy too
        await graphql.query(CANCEL, {"id": source_id}, token)
        await graphql.query(CANCEL, {"id": copy_id}, token)

        # then the shared run ends cancelled instead of generating for nobody
        run_log = keys.event_log(keys.shared_run(source_id))

        async def ended() -> Event | None:
            entries = await redis.xrevrange(run_log, count=1)
            event = Event.decode(entries[0][1][b"e"]) if entries else None
            return event if event is not None and event.terminal else None

        ending = await eventually(ended, timeout=20, interval=0.1)
        assert ending.kind is EventKind.CANCELLED
        copy_row = await _row(graphql, token, copy_id)
        assert copy_row["status"] == "CANCELLED"
        assert len(copy_row["output"].split()) < 300
