"""The ASGI app factory: the API's composition root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from redis import exceptions as redis_errors
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from tortoise import connections

from jobs.worker import run_creation
from resolvers.core import tracing
from resolvers.core.settings import Settings
from resolvers.resources import Core, open_core
from resolvers.streaming.queue import (
    ArqQueue,
    InlineQueue,
    JobQueue,
    deserialize_job,
    serialize_job,
)
from schema.build import build_schema
from schema.documents import Documents, TrustedDocuments
from schema.ide import ide_routes
from schema.logs import redact_tickets
from schema.oauth import token_endpoint
from schema.observe import (
    RequestMetrics,
    live_workers,
    metrics_endpoint,
    operator_may_see,
    tag_request,
)
from schema.origins import CORS, OriginPolicy
from schema.uploads import receive_upload
from schema.view import GraphQLView

log = logging.getLogger(__name__)
READY_TIMEOUT = 2.0


@dataclass
class Resources:
    """Already-open services handed to `create_app` (tests); the app will not close them."""

    core: Core
    queue: JobQueue


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Everything the API process needs, closed on exit."""
    async with open_core(settings) as core:
        queue: JobQueue
        if settings.redis_url:
            arq_redis = await create_pool(
                RedisSettings.from_dsn(settings.redis_url),
                job_serializer=serialize_job,
                job_deserializer=deserialize_job,
            )
            queue = ArqQueue(arq_redis, job_timeout_seconds=settings.job_timeout_seconds)
        else:
            # Embedded: the very job function arq would run, in this process.
            queue = InlineQueue(
                run_creation,
                {"settings": settings, "runner": core.runner},
                concurrency=settings.max_concurrent_jobs,
            )
        try:
            yield Resources(core, queue)
        finally:
            await queue.aclose()


def create_app(settings: Settings, resources: Resources | None = None) -> Starlette:
    """The API: GraphQL over HTTP and both websocket protocols, GraphiQL, health checks."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            opened = resources
            if opened is None:
                opened = await stack.enter_async_context(open_resources(settings))
            app.state.core, app.state.queue = opened.core, opened.queue
            yield

    redact_tickets()  # however the app is served, its access log keeps upload URLs secret
    # Before the schema and the clients are built: both look for an installed tracer.
    tracing.configure(enabled_by_settings=settings.tracing, service="creation-king-api")
    trusted = None
    if settings.persisted_documents is not None:
        trusted = TrustedDocuments.load(settings.persisted_documents)
    origins = OriginPolicy(settings.allowed_origins, loopback=settings.loopback_origins_allowed)
    view = GraphQLView(
        build_schema(
            settings.introspection,
            trusted,
            # Production tells no schema details beyond what introspection is allowed to.
            hide_suggestions=settings.env == "production" or settings.introspection != "public",
        ),
        documents=Documents(
            trusted=trusted,
            shared=not settings.embedded_redis,
            ttl_seconds=settings.apq_ttl_seconds,
        ),
        origins=origins,
        public_max_age=settings.public_max_age_seconds,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allow_queries_via_get=True,
    )
    return _App(
        graphql=view,
        routes=[
            Route("/graphql", view, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            WebSocketRoute("/graphql", view),
            Route("/uploads/{ticket}", receive_upload, methods=["PUT"]),
            Route("/oauth/token", token_endpoint, methods=["POST"]),
            Route("/healthz", _healthz),
            Route("/readyz", _readyz),
            Route("/metrics", metrics_endpoint),
            *(ide_routes() if settings.graphiql_enabled else ()),
        ],
        middleware=[
            Middleware(RequestMetrics),
            Middleware(CORS, policy=origins, max_age=settings.cors_max_age_seconds),
        ],
        lifespan=lifespan,
    )


class _App(Starlette):
    """Starlette, except that a websocket to /graphql goes straight to the GraphQL view.

    An open socket keeps its whole ASGI call chain suspended for its life, and every frame
    it sends passes each middleware's send wrapper. For this socket the middleware and the
    router do nothing (CORS and latency are HTTP's, the view checks the socket's origin),
    so it skips them: a thousand idle subscriptions hold a thousand chains, and a fan-out
    sends through every one (bench/README.md). It still gets its request id."""

    def __init__(self, *args: Any, graphql: GraphQLView, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _route_path(scope) == "/graphql":
            scope["app"] = self
            tag_request(scope)
            await self._graphql(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path a proxy mounted us under."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root + "/") else path


async def _healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> JSONResponse:
    """200 or 503 for anyone (the probes); which checks failed and how many workers are alive
    only for operators (`schema.observe.operator_may_see`). No live worker never makes an API
    replica unready: it still serves everything but the runs of long tools."""
    core: Core = request.app.state.core
    details = operator_may_see(request, core.settings)
    *results, workers = await asyncio.gather(
        _check_db(),
        _check_redis(core),
        _check_engine(core),
        _count_workers(core) if details else _nothing(),
    )
    checks = dict(zip(("database", "redis", "engine"), results, strict=True))
    ready = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable"}
    if details:
        body["checks"] = checks
        body["workers"] = workers
    return JSONResponse(body, status_code=200 if ready else 503)


async def _count_workers(core: Core) -> int | str | None:
    """Live arq workers; "in-process" in embedded mode; None when Redis does not answer."""
    if core.settings.embedded_redis:
        return "in-process"
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            return await live_workers(core.redis)
    except (TimeoutError, redis_errors.RedisError, OSError):
        return None  # the redis check says why


async def _nothing() -> None:
    return None


async def _check_db() -> bool:
    # Not `asyncio.timeout`: cancelling a query to a silent database makes asyncpg wait,
    # shielded, for its cancel request. The probe answers on time and lets that finish alone.
    check = asyncio.ensure_future(connections.get("default").execute_query("SELECT 1"))
    done, _ = await asyncio.wait({check}, timeout=READY_TIMEOUT)
    if not done:
        log.warning("readiness: the database did not answer in %.0f s", READY_TIMEOUT)
        _LINGERING.add(check)
        check.add_done_callback(_LINGERING.discard)
        check.cancel()
        return False
    error = check.exception()
    if error is not None:
        log.warning("readiness: database check failed: %s", error)
        return False
    return True


_LINGERING: set[asyncio.Future[Any]] = set()


async def _check_redis(core: Core) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await core.redis.ping()
    except (TimeoutError, redis_errors.RedisError, OSError) as exc:
        log.warning("readiness: redis check failed: %s", exc)
        return False
    return True


async def _check_engine(core: Core) -> bool:
    ready = getattr(core.engine, "ready", None)
    if ready is None:
        return True  # the dev engine is always ready
    try:
        async with asyncio.timeout(READY_TIMEOUT * 2):
            return bool(await ready())
    except TimeoutError:
        log.warning("readiness: the engine did not answer in %.0f s", READY_TIMEOUT * 2)
        return False
