"""Request-level observability: latency metrics, request ids and `/metrics`."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import exceptions as redis_errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from resolvers import keys, metrics
from resolvers.logcontext import OPERATION, REQUEST_ID
from resolvers.resources import Core

_MAX_REQUEST_ID = 64


class RequestMetrics:
    """ASGI middleware: a request id for every HTTP request and websocket (the client's
    `X-Request-ID` when sane, else a new one, echoed back), and HTTP latency by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        began = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            REQUEST_ID.reset(token)
            if scope["type"] == "http":
                metrics.HTTP_SECONDS.labels(_route(scope), scope["method"], str(status)).observe(
                    time.perf_counter() - began
                )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = str(value.decode("latin-1"))
            if 0 < len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
                return given
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The route template (`/uploads/{ticket}`), never the raw path: bounded labels."""
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "other") or "other")
    return "other"


class OperationMetrics(SchemaExtension):
    """GraphQL operation latency by type, root field and outcome; the operation name goes to
    the log context."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        token = OPERATION.set(context.operation_name)
        began = time.perf_counter()
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a stream closed by another task
                OPERATION.reset(token)
            errors = getattr(context.result, "errors", None)
            kind, root = _kind_and_root(context)
            metrics.OPERATION_SECONDS.labels(kind, root, "error" if errors else "ok").observe(
                time.perf_counter() - began
            )


def _kind_and_root(context: ExecutionContext) -> tuple[str, str]:
    """The operation type and its first root field, when both are in the schema (labels
    must stay bounded: a client's unknown field names never become one)."""
    try:
        kind = context.operation_type.value
    except Exception:  # no document (it did not parse): nothing more to say
        return "invalid", "none"
    root_type = getattr(context.schema._schema, f"{kind}_type", None)
    fields = getattr(root_type, "fields", {}) or {}
    document = context.graphql_document
    for definition in getattr(document, "definitions", ()) or ():
        selections = getattr(getattr(definition, "selection_set", None), "selections", ())
        for selection in selections or ():
            name = getattr(getattr(selection, "name", None), "value", None)
            if name in fields:
                return kind, str(name)
    return kind, "none"


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format; the queue depth is read from Redis at scrape time."""
    core: Core = request.app.state.core
    if core.settings.redis_url:
        # On failure the gauge keeps its last value; readiness reports Redis itself.
        with contextlib.suppress(redis_errors.RedisError, OSError):
            metrics.QUEUE_DEPTH.set(await core.redis.zcard(keys.JOB_QUEUE))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
