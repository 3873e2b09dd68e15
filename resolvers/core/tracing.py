"""Traces: spans through opentelemetry-api everywhere, the SDK only when tracing is enabled.

With no SDK configured every span here is the API's no-op span (a few microseconds). With
`CK_TRACING=true` (and the `otel` extra installed) `configure` installs a tracer provider
that batches spans to the OTLP/HTTP endpoint named by the standard `OTEL_EXPORTER_OTLP_*`
variables; `OTEL_SERVICE_NAME` names the process (default: creation-king-api / -worker).

One creation is one trace: the mutation's span is the parent of the run, whether the run
happens here (a task inherits the context) or on a worker (the context travels in the job's
arguments as a W3C `traceparent` carrier and the job's span continues it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from inference.tracing import tracer

__all__ = [  # `tracer` is re-exported for the schema layer
    "Carrier",
    "TracedRedis",
    "carrier",
    "configure",
    "enabled",
    "extract",
    "query_span",
    "span",
    "trace_queries",
    "tracer",
]
log = logging.getLogger(__name__)

Carrier = dict[str, str]


def enabled() -> bool:
    """True once a real tracer provider is installed (by `configure` or by a test)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def configure(*, enabled_by_settings: bool, service: str) -> bool:
    """Install the SDK with an OTLP exporter when tracing is enabled; True if it did.

    Tracing asked for without the `otel` extra installed is logged and left off: a missing
    optional exporter must not stop the service.
    """
    if not enabled_by_settings or enabled():
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("tracing: CK_TRACING is on but the `otel` extra is not installed")
        return False
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP as %s", name)
    return True


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: otel_context.Context | None = None,
) -> Iterator[trace.Span]:
    """A span, current for the block; an exception marks it as an error and propagates."""
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current


def carrier() -> Carrier:
    """The current trace context as W3C headers, to hand to another process."""
    headers: Carrier = {}
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context a carrier holds (None for no carrier or garbage: start a new trace)."""
    if not headers or not isinstance(headers, Mapping):
        return None
    clean = {str(k): v for k, v in headers.items() if isinstance(v, str)}
    return propagate.extract(clean)


def query_span(record: Any) -> None:
    """An asyncpg query logger: one finished span per Postgres query, timed by asyncpg.

    asyncpg calls it with `call_soon` from the querying task, so the current span is the
    query's caller; the span's start is back-dated by the query's elapsed time.
    """
    end = time.time_ns()
    statement = str(record.query)
    verb = statement.split(None, 1)[0].upper() if statement.strip() else "QUERY"
    began = end - int(record.elapsed * 1e9)
    query = tracer().start_span(
        f"postgres {verb}",
        kind=SpanKind.CLIENT,
        start_time=began,
        attributes={"db.system": "postgresql", "db.statement": statement[:2_000]},
    )
    if record.exception is not None:
        query.set_status(Status(StatusCode.ERROR, type(record.exception).__name__))
    query.end(end_time=end)


async def trace_queries(connection: Any) -> None:
    """asyncpg pool `init`: every query on this connection becomes a span."""
    connection.add_query_logger(query_span)


class TracedRedis(Redis):
    """A Redis client whose every command is a client span (`redis XADD`), pipelines one
    span each. Used only when tracing is on: the plain client has no overhead at all."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        with tracer().start_as_current_span(
            f"redis {args[0]}", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}
        ):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return _TracedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _TracedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands = len(self.command_stack)
        with tracer().start_as_current_span(
            "redis PIPELINE",
            kind=SpanKind.CLIENT,
            attributes={"db.system": "redis", "db.redis.commands": commands},
        ):
            return await super().execute(raise_on_error)
