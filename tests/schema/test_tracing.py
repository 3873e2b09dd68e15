"""OpenTelemetry traces: one creation is one trace, from the client's request through the
API, the arq job on a worker and the model call, collected in memory and checked as a tree."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from resolvers.core import tracing
from resolvers.core.logcontext import ContextFilter
from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, running_worker, serving
from tests.schema.test_subscriptions import START_WRITE

pytestmark = pytest.mark.services

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
START_REPORT = """
mutation R($input: ReportInput!) { report(input: $input) { ... on Creation { id status } } }
"""
STATUS = "query S($id: ID!) { creation(id: $id) { status } }"


class _Switch(Sampler):
    """Records while a test holds it on; afterwards spans are dropped (no-op cost)."""

    on = True

    def should_sample(  # noqa: PLR0917  (the SDK's signature)
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        # The SDK gives a span the attributes its sampler returns.
        decision = Decision.RECORD_AND_SAMPLE if self.on else Decision.DROP
        return SamplingResult(decision, attributes if self.on else None)

    def get_description(self) -> str:
        return "switch"


def _uninstall() -> None:
    # The API offers no uninstall; this is what opentelemetry's own test utils do.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture(autouse=True)
def no_provider_installed() -> Iterator[None]:
    """Each test starts and ends with no provider (one may be left by CK_TRACING=true)."""
    _uninstall()
    yield
    _uninstall()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """An SDK tracer provider collecting spans in memory, installed for this test only."""
    sampler = _Switch()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert tracing.enabled()
    try:
        yield exporter
    finally:
        sampler.on = False
        provider.shutdown()


async def _start_traced(
    graphql: GraphQLClient, mutation: str, input: dict[str, Any], token: str
) -> dict[str, Any]:
    """Start a creation from a client whose own span is CLIENT_SPAN of trace CLIENT_TRACE."""
    response = await graphql.http.post(
        graphql.url,
        json={"query": mutation, "variables": {"input": input}},
        headers={"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT},
    )
    data: dict[str, Any] = response.json()["data"]
    return dict(next(iter(data.values())))


async def _until_terminal(graphql: GraphQLClient, creation_id: str, token: str) -> str:
    async with asyncio.timeout(30):
        while True:
            data = await graphql.query(STATUS, {"id": creation_id}, token=token)
            status: str = data["creation"]["status"]
            if status in ("COMPLETED", "FAILED", "CANCELLED"):
                return status
            await asyncio.sleep(0.05)


def _by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = _by_name(spans, name)
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _parent_of(spans: Sequence[ReadableSpan], child: ReadableSpan) -> ReadableSpan:
    assert child.parent is not None, child.name
    parents = [s for s in spans if s.context.span_id == child.parent.span_id]
    assert len(parents) == 1, (child.name, "has no recorded parent")
    return parents[0]


async def test_a_worker_creation_is_one_trace_from_request_to_job(
    spans: InMemorySpanExporter, settings: Settings
) -> None:
    async with serving(settings) as (server, graphql, token):
        async with running_worker(server):
            creation = await _start_traced(
                graphql, START_REPORT, {"topic": "tidal power", "sections": 2}, token
            )
            assert creation["status"] == "QUEUED"
            assert await _until_terminal(graphql, creation["id"], token) == "COMPLETED"
        await asyncio.sleep(0.1)  # the last query's spans end after its response is sent
    finished = spans.get_finished_spans()
    ours = [s for s in finished if s.context.trace_id == int(CLIENT_TRACE, 16)]

    # The API: the operation continues the client's trace; the resolver enqueues the job.
    operation = _one(ours, "graphql.mutation report")
    assert operation.kind is SpanKind.SERVER
    assert operation.parent is not None and operation.parent.span_id == int(CLIENT_SPAN, 16)
    resolver = _one(ours, "resolve Mutation.report")
    assert _parent_of(ours, resolver) is operation
    enqueue = _one(ours, "queue.enqueue")
    assert enqueue.kind is SpanKind.PRODUCER
    assert _parent_of(ours, enqueue) is resolver
    assert enqueue.attributes is not None
    assert enqueue.attributes["creation.id"] == creation["id"]
    writes = [s for s in ours if s.name.startswith("postgres ")]
    assert any(_parent_of(ours, s) is resolver for s in writes), "the insert is in the trace"

    # The worker: the job continues the trace carried in its arguments (through Redis).
    job = _one(ours, "job run_creation")
    assert job.kind is SpanKind.CONSUMER
    assert _parent_of(ours, job) is enqueue
    run = _one(ours, "creation.run")
    assert _parent_of(ours, run) is job
    assert run.attributes is not None and run.attributes["creation.status"] == "COMPLETED"
    assert run.attributes["creation.tool"] == "report"

    # Under the run: the event log writes to Redis and the row updates in Postgres.
    under_run = [
        s for s in ours if s.parent is not None and s.parent.span_id == run.context.span_id
    ]
    assert any(s.name.startswith("redis ") for s in under_run), [s.name for s in under_run]
    assert any(s.name.startswith("postgres UPDATE") for s in under_run)
    for child in (s for s in ours if s.name.startswith(("redis ", "postgres "))):
        assert child.kind is SpanKind.CLIENT
        assert child.start_time is not None and child.end_time is not None
        assert child.start_time <= child.end_time

    # Every span of the creation is in that one trace, and none was left open.
    assert all(s.end_time is not None for s in ours)
    assert len(_by_name(finished, "creation.run")) == 1  # no run in a trace of its own


async def test_a_triton_call_is_a_client_span_under_the_run(
    spans: InMemorySpanExporter, settings: Settings, triton_url: str
) -> None:
    async with serving(settings, engine="triton", triton_url=triton_url) as (_, graphql, token):
        creation = await _start_traced(
            graphql, START_WRITE, {"prompt": "a lighthouse", "maxTokens": 16}, token
        )
        assert await _until_terminal(graphql, creation["id"], token) == "COMPLETED"
    ours = [s for s in spans.get_finished_spans() if s.context.trace_id == int(CLIENT_TRACE, 16)]
    resolver = _one(ours, "resolve Mutation.write")
    run = _one(ours, "creation.run")
    assert _parent_of(ours, run) is resolver  # a fast run is a task of the resolver
    call = _one(ours, "triton stream_infer")
    assert call.kind is SpanKind.CLIENT
    assert _parent_of(ours, call) is run
    assert call.attributes is not None
    assert call.attributes["triton.model"] == "writer"
    assert call.attributes["triton.tokens"] == 16
    assert [e.name for e in call.events] == ["first token"]
    assert call.status.is_ok


async def test_tracing_is_off_without_the_setting_and_on_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Off: nothing is installed and every span is the API's no-op.
    assert not tracing.configure(enabled_by_settings=False, service="test")
    assert not tracing.enabled()
    with tracing.span("nothing") as span:
        assert not span.is_recording()
    # On: the SDK with the OTLP exporter (pointed nowhere; nothing is sent in this test).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    try:
        assert tracing.configure(enabled_by_settings=True, service="creation-king-test")
        assert tracing.enabled()
        provider: Any = trace.get_tracer_provider()
        assert provider.resource.attributes["service.name"] == "creation-king-test"
    finally:
        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()  # no span was made: nothing to send


def test_a_carrier_round_trips_and_garbage_starts_a_new_trace() -> None:
    assert tracing.extract(None) is None
    assert tracing.extract({}) is None
    context = tracing.extract({"traceparent": TRACEPARENT})
    assert context is not None
    remote = trace.get_current_span(context).get_span_context()
    assert remote.trace_id == int(CLIENT_TRACE, 16) and remote.is_remote
    broken = tracing.extract({"traceparent": "00-zz-yy-01", "other": 3})  # type: ignore[dict-item]
    assert broken is not None
    assert not trace.get_current_span(broken).get_span_context().is_valid


def test_log_lines_name_the_trace_they_happen_in(spans: InMemorySpanExporter) -> None:
    def record() -> logging.LogRecord:
        made = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
        assert ContextFilter().filter(made)
        return made

    assert record().trace_id is None  # type: ignore[attr-defined]
    with tracing.span("work") as current:
        inside = record()
    assert inside.trace_id == format(current.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]
