"""Metrics at /metrics, request ids, and JSON log lines with the request context."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import cast

import pytest
from prometheus_client import REGISTRY
from starlette.middleware import Middleware
from starlette.types import Message, Receive, Scope, Send

from resolvers.core.logcontext import CREATION_ID, OPERATION, REQUEST_ID, USER_ID
from resolvers.core.settings import Settings
from schema import logs
from schema.app import _App
from schema.observe import RequestMetrics
from schema.view import GraphQLView
from tests.conftest import GraphQLClient, Server, open_socket, serving
from tests.schema.test_subscriptions import events_of

WRITE = """
mutation W($input: WriteInput!) { write(input: $input, wait: true) {
  ... on Creation { id usage { completionTokens } cached } } }
"""


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_operations_and_runs_are_measured(
    server: Server, client: GraphQLClient, token: str
) -> None:
    labels = {"tool": "write", "backend": "dev-engine"}
    before = {
        "http": sample(
            "ck_http_request_seconds_count", route="/graphql", method="POST", status="200"
        ),
        "me": sample("ck_graphql_operation_seconds_count", type="query", root="me", outcome="ok"),
        "ttft": sample("ck_time_to_first_token_seconds_count", **labels),
        "tokens": sample("ck_tokens_total", **labels),
        "runs": sample("ck_runs_total", outcome="COMPLETED", **labels),
        "hits": sample("ck_cache_hits_total", tool="write"),
    }
    await client.query("{ me { id } }", token=token)
    variables = {"input": {"prompt": "measure me", "maxTokens": 25, "seed": 4}}
    first = (await client.query(WRITE, variables, token))["write"]
    again = (await client.query(WRITE, variables, token))["write"]
    assert again["cached"] is True
    after_http = sample(
        "ck_http_request_seconds_count", route="/graphql", method="POST", status="200"
    )
    assert after_http >= before["http"] + 3
    me = sample("ck_graphql_operation_seconds_count", type="query", root="me", outcome="ok")
    assert me == before["me"] + 1
    assert sample("ck_time_to_first_token_seconds_count", **labels) == before["ttft"] + 1
    assert (
        sample("ck_tokens_total", **labels) == before["tokens"] + first["usage"]["completionTokens"]
    )
    assert sample("ck_runs_total", outcome="COMPLETED", **labels) == before["runs"] + 1
    assert sample("ck_cache_hits_total", tool="write") == before["hits"] + 1
    body = (await client.http.get(client.url.replace("/graphql", "/metrics"))).text
    assert "ck_queue_depth" in body and "ck_tokens_per_second_bucket" in body


async def test_unknown_fields_never_become_labels(client: GraphQLClient) -> None:
    await client.raw("{ surelyNotAField }")
    body = (await client.http.get(client.url.replace("/graphql", "/metrics"))).text
    assert "surelyNotAField" not in body


async def test_open_subscriptions_are_counted(
    settings: Settings,
) -> None:
    async with serving(settings, dev_token_delay=0.02) as (server, _client, token):
        gauge = sample("ck_active_subscriptions", root="write")
        async with open_socket(server.ws_url, token) as sock:
            op = await sock.subscribe(
                'subscription { write(input: {prompt: "slow", maxTokens: 60}) { __typename } }'
            )
            await sock.receive()
            assert sample("ck_active_subscriptions", root="write") == gauge + 1
            events_of(await sock.collect(op))
        for _ in range(50):
            if sample("ck_active_subscriptions", root="write") == gauge:
                break
            await asyncio.sleep(0.05)
        assert sample("ck_active_subscriptions", root="write") == gauge


async def test_rate_limit_refusals_are_counted(settings: Settings) -> None:
    async with serving(settings, rate_limit_per_minute=60, rate_limit_burst=1) as (_, gql, tok):
        before = sample("ck_rate_limited_total", limit="requests")
        await gql.raw("{ me { id } }", token=tok)
        refused = await gql.raw("{ me { id } }", token=tok)
    assert refused.status_code == 429
    assert sample("ck_rate_limited_total", limit="requests") == before + 1


async def test_every_response_carries_a_request_id(client: GraphQLClient) -> None:
    mine = await client.http.post(
        client.url, json={"query": "{ __typename }"}, headers={"X-Request-ID": "abc-123"}
    )
    theirs = await client.http.post(client.url, json={"query": "{ __typename }"})
    bad = await client.http.post(
        client.url, json={"query": "{ __typename }"}, headers={"X-Request-ID": "x" * 500}
    )
    assert mine.headers["x-request-id"] == "abc-123"
    assert len(theirs.headers["x-request-id"]) == 32
    assert bad.headers["x-request-id"] != "x" * 500


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_json_log_lines_carry_the_request_context() -> None:
    logs.configure(json_lines=True)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    tokens = [
        REQUEST_ID.set("req-1"),
        USER_ID.set("7b0c1d2e"),
        OPERATION.set("StartWrite"),
        CREATION_ID.set("c-9"),
    ]
    try:
        logging.getLogger("resolvers.streaming.runner").warning(
            "model failed (%s)", "MODEL_UNAVAILABLE"
        )
    finally:
        for variable, token in zip(
            (REQUEST_ID, USER_ID, OPERATION, CREATION_ID), tokens, strict=True
        ):
            variable.reset(token)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "model failed (MODEL_UNAVAILABLE)"
    assert (line["level"], line["logger"]) == ("WARNING", "resolvers.streaming.runner")
    assert (line["request_id"], line["user_id"], line["operation"], line["creation_id"]) == (
        "req-1",
        "7b0c1d2e",
        "StartWrite",
        "c-9",
    )
    assert "time" in line


class _RecordingView:
    """Stands in for the GraphQL view: notes what a websocket reached it with."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, object]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append((REQUEST_ID.get(), scope.get("app")))


async def test_a_graphql_websocket_skips_the_middleware_but_keeps_its_request_id() -> None:
    """Sockets to /graphql go straight to the view (schema.app._App), with the request id
    the middleware would give them; other websockets still go through the router."""
    view = _RecordingView()
    app = _App(graphql=cast(GraphQLView, view), middleware=[Middleware(RequestMetrics)])
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    def scope(path: str, request_id: bytes) -> Scope:
        headers = [(b"x-request-id", request_id)]
        return {"type": "websocket", "path": path, "root_path": "", "headers": headers}

    await asyncio.create_task(app(scope("/graphql", b"ws-given-1"), receive, send))
    await asyncio.create_task(app(scope("/elsewhere", b"ws-given-2"), receive, send))
    assert view.seen == [("ws-given-1", app)]
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]  # no such route
