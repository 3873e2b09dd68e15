"""Request-level observability: latency metrics, request ids and `/metrics`.

`/metrics` and the details of `/readyz` are for operators: with `CK_METRICS_TOKEN` set they
need `Authorization: Bearer <token>`; without one, production serves no metrics (404) and
readiness as a bare status, while dev and test keep both open. Both tell how many workers
are alive: workers announce themselves in Redis every few seconds (jobs/supervisor.py).
"""

from __future__ import annotations

import contextlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterator
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfo, OperationType
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.extensions.tracing.utils import should_skip_tracing
from strawberry.types import ExecutionContext

from resolvers.core import keys, metrics, tracing
from resolvers.core.logcontext import REQUEST_ID
from resolvers.core.settings import Settings
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


def tag_request(scope: Scope) -> None:
    """Give a websocket that bypasses `RequestMetrics` its request id, as that would (in the
    socket's own task, whose context ends with it: nothing to reset)."""
    REQUEST_ID.set(_request_id(scope))


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = str(value.decode("latin-1"))
            if 0 < len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
                return given
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The route template (`/uploads/{ticket}`), never the raw path: bounded labels. The
    router leaves the matched route in the scope; no route (a 404) is "other"."""
    return str(getattr(scope.get("route"), "path", None) or "other")


class TraceOperations(SchemaExtension):
    """One span per GraphQL operation (continuing the client's `traceparent`, if any) and
    one per resolver that does work; a root resolver's span is current while it runs, so its
    Redis, Postgres, queue and run spans nest under it. Installed only when tracing is on.

    A subscription gets its operation span only: a span per event per subscriber would cost
    more than the stream it describes. Arguments are never recorded (they hold user text).
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        headers = getattr(getattr(context.context, "request", None), "headers", None)
        parent = tracing.extract(
            {"traceparent": headers["traceparent"]}
            if headers is not None and "traceparent" in headers
            else None
        )
        self._operation = tracing.tracer().start_span(
            "graphql.operation", context=parent, kind=SpanKind.SERVER
        )
        self._parent = trace.set_span_in_context(self._operation)
        try:
            yield
        finally:
            kind, root = kind_and_root(context)
            self._operation.update_name(f"graphql.{kind} {root}")
            self._operation.set_attribute("graphql.operation.type", kind)
            self._operation.set_attribute("graphql.operation.name", context.operation_name or "")
            if getattr(context.result, "errors", None):
                self._operation.set_status(Status(StatusCode.ERROR, "operation errors"))
            self._operation.end()

    async def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if info.operation.operation is OperationType.SUBSCRIPTION or should_skip_tracing(
            _next, info
        ):
            result = _next(root, info, *args, **kwargs)
            return await result if isawaitable(result) else result
        with tracing.span(
            f"resolve {info.parent_type.name}.{info.field_name}",
            {"graphql.field.path": ".".join(str(p) for p in info.path.as_list())},
            parent=self._parent,
        ):
            result = _next(root, info, *args, **kwargs)
            return await result if isawaitable(result) else result


def kind_and_root(context: ExecutionContext) -> tuple[str, str]:
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


def operator_may_see(request: Request, settings: Settings) -> bool:
    """Whether the request may read metrics and readiness details: with `metrics_token`
    set, only with `Authorization: Bearer <token>` (compared in constant time); without
    one, only outside production."""
    token = settings.metrics_token
    if token is None:
        return settings.env != "production"
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format; the queue depth is read from Redis at scrape time. Without
    the operator's token: 401 when one is set, 404 in production without one."""
    core: Core = request.app.state.core
    if not operator_may_see(request, core.settings):
        if core.settings.metrics_token is None:
            return PlainTextResponse("Not Found", status_code=404)
        return PlainTextResponse(
            "metrics need Authorization: Bearer <CK_METRICS_TOKEN>",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if core.settings.redis_url:
        # On failure the gauges keep their last values; readiness reports Redis itself.
        with contextlib.suppress(redis_errors.RedisError, OSError):
            metrics.QUEUE_DEPTH.set(await core.redis.zcard(keys.JOB_QUEUE))
            metrics.WORKERS_ALIVE.set(await live_workers(core.redis))
    else:
        metrics.WORKERS_ALIVE.set(1)  # embedded: this process runs the jobs
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def live_workers(redis: Redis) -> int:
    """How many workers announced themselves within their heartbeat TTL, by the Redis
    server's clock (the workers' `announce_alive` scores each with its expiry)."""
    now, _ = await redis.time()
    return int(await redis.zcount(keys.live_workers(), now, "+inf"))
