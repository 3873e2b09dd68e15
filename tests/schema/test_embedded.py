"""Embedded mode: no services at all; every tool and stream works and data survives restarts."""

from __future__ import annotations

import uuid

from resolvers.core.models import User
from resolvers.core.settings import Settings
from resolvers.resources import open_core
from schema.app import create_app
from tests.conftest import GraphQLClient, Server, open_socket
from tests.schema.test_subscriptions import (
    EVENTS,
    REPORT,
    START_WRITE,
    assert_well_formed,
    events_of,
    text_of,
)

LOGIN = """
mutation L($email: String!) {
  login(input: {email: $email, password: "embedded pass"}) {
    ... on AuthSession { accessToken }
  }
}
"""


async def test_embedded_mode_streams_both_tools_and_survives_a_restart(
    embedded_settings: Settings,
) -> None:
    assert embedded_settings.database_url is None and embedded_settings.redis_url is None
    # given an embedded server with a user, a finished write and a finished report
    async with Server(create_app(embedded_settings)) as server:
        graphql = GraphQLClient(server.url)
        token = await graphql.register("solo@example.com", "embedded pass")
        started = await graphql.query(
            START_WRITE, {"input": {"prompt": "offline", "maxTokens": 30}}, token=token
        )
        write_id = started["write"]["id"]
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(EVENTS, {"id": write_id, "after": 0})
            write_events = events_of(await sock.collect(op))
            op = await sock.subscribe(
                REPORT, {"input": {"topic": "local first software", "sections": 2}}
            )
            report_events = events_of(await sock.collect(op))
        await graphql.aclose()
    assert_well_formed(write_events)
    assert_well_formed(report_events)
    assert report_events[-1]["__typename"] == "CreationCompleted"
    assert sum(e["__typename"] == "Progress" for e in report_events) == 4
    written = text_of(write_events)

    # when the server restarts (the in-process event log is gone, the SQLite file is not)
    async with Server(create_app(embedded_settings)) as server:
        graphql = GraphQLClient(server.url)
        login = await graphql.query(LOGIN, {"email": "solo@example.com"})
        token = login["login"]["accessToken"]
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(EVENTS, {"id": write_id, "after": 0})
            replayed = events_of(await sock.collect(op))
        listed = await graphql.query(
            "{ creations(first: 10) { edges { node { tool status } } } }", token=token
        )
        await graphql.aclose()
    # then the account, the creations and their text are still there
    assert text_of(replayed) == written
    assert replayed[-1]["__typename"] == "CreationCompleted"
    assert replayed[-1]["seq"] == write_events[-1]["seq"]
    assert sorted(e["node"]["tool"] for e in listed["creations"]["edges"]) == ["report", "write"]


async def test_one_process_can_open_sqlite_then_postgres(
    embedded_settings: Settings, settings: Settings
) -> None:
    # Tortoise caches SQL per connection name; the dialect must not leak between the two.
    async with open_core(embedded_settings):
        await User.create(email="sqlite@example.com", password_hash="x")
    async with open_core(settings):
        user = await User.create(email=f"pg-{uuid.uuid4().hex[:6]}@example.com", password_hash="x")
        assert await User.filter(id=user.id).count() == 1
